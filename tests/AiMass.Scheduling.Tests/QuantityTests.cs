using AiMass.Resources;

namespace AiMass.Scheduling.Tests;

public sealed class QuantityTests
{
    [Theory]
    [InlineData("2", 2000)]
    [InlineData("0.5", 500)]
    [InlineData("1.25", 1250)]
    [InlineData("500m", 500)]
    [InlineData(" 3 ", 3000)]
    public void Cpu_Parses(string text, long millis)
    {
        Assert.True(Quantity.TryParseCpu(text, out var value, out var error), error);
        Assert.Equal(millis, value);
    }

    [Theory]
    [InlineData("", "required")]
    [InlineData("two", "not a CPU amount")]
    [InlineData("0.0005", "finer than a millicore")]
    [InlineData("1.5m", "millicores are a whole number")]
    [InlineData("-1", "not a CPU amount")]
    public void Cpu_RejectsWithReason(string text, string reason)
    {
        Assert.False(Quantity.TryParseCpu(text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("512Mi", 512L << 20)]
    [InlineData("4Gi", 4L << 30)]
    [InlineData("4GiB", 4L << 30)]
    [InlineData("1G", 1_000_000_000)]
    [InlineData("1.5Gi", 3L << 29)]
    [InlineData("100k", 100_000)]
    [InlineData("1048576", 1048576)]
    public void Bytes_Parse(string text, long bytes)
    {
        Assert.True(Quantity.TryParseBytes(text, out var value, out var error), error);
        Assert.Equal(bytes, value);
    }

    [Theory]
    [InlineData("4Xi", "unknown unit 'Xi'")]
    [InlineData("lots", "not a memory amount")]
    [InlineData("0.3", "not a whole number of bytes")]
    public void Bytes_RejectWithReason(string text, string reason)
    {
        Assert.False(Quantity.TryParseBytes(text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("45m", 2700)]
    [InlineData("1h30m", 5400)]
    [InlineData("2d", 172800)]
    [InlineData("01:30:00", 5400)]
    [InlineData("90:00", 5400)]
    [InlineData("1-02", 93600)]
    [InlineData("1-02:30:15", 95415)]
    public void Duration_Parses(string text, int seconds)
    {
        Assert.True(Quantity.TryParseDuration(text, out var value, out var error), error);
        Assert.Equal(TimeSpan.FromSeconds(seconds), value);
    }

    [Theory]
    [InlineData("90")]
    [InlineData("an hour")]
    [InlineData("1:99")]
    public void Duration_RejectsAmbiguousOrInvalid(string text)
    {
        Assert.False(Quantity.TryParseDuration(text, out _, out var error));
        Assert.Contains("not a duration", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Formatting_RoundTrips()
    {
        Assert.Equal("4Gi", Quantity.FormatBytes(4L << 30));
        Assert.Equal("1536Mi", Quantity.FormatBytes(1536L << 20));
        Assert.Equal("250m", Quantity.FormatCpu(250));
        Assert.Equal("1.5", Quantity.FormatCpu(1500));
        Assert.Equal("2", Quantity.FormatCpu(2000));
        Assert.Equal("1h30m", Quantity.FormatDuration(TimeSpan.FromMinutes(90)));
        var v = new ResourceVector(4000, 16L << 30, 1, [new("fpga", 2)]);
        Assert.Equal("cpu=4, memory=16Gi, gpu=1, fpga=2", v.ToString());
    }

    [Fact]
    public void Vector_ArithmeticAndFit_IncludeCustomResources()
    {
        var node = new ResourceVector(8000, 32L << 30, 2, [new("fpga", 1)]);
        var task = new ResourceVector(2000, 4L << 30, 0, [new("fpga", 1)]);
        Assert.Equal(1, node.CountFitting(task));
        Assert.True(task.FitsIn(node));
        var left = node - task;
        Assert.Equal(0, left["fpga"]);
        Assert.False(task.FitsIn(left));
        Assert.Equal(node, left + task);
        Assert.Equal(2.0, (task * 2).DominantShare(node), 6); // two FPGAs of one: the dominant resource
        Assert.Throws<ArgumentException>(() => new ResourceVector(0, 0, 0, [new("GPU", 1)]));
    }
}
