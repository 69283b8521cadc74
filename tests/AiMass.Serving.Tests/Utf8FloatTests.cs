using System.Globalization;
using System.Text;

namespace AiMass.Serving.Tests;

public sealed class Utf8FloatTests
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static void AgreesWithDotNet(string text)
    {
        var utf8 = Encoding.UTF8.GetBytes(text);
        Assert.True(Utf8Float.TryParse(utf8, out double d), text);
        Assert.Equal(BitConverter.DoubleToInt64Bits(double.Parse(text, Inv)), BitConverter.DoubleToInt64Bits(d));
        Assert.True(Utf8Float.TryParse(utf8, out float f), text);
        Assert.Equal(BitConverter.SingleToInt32Bits(float.Parse(text, Inv)), BitConverter.SingleToInt32Bits(f));
        // In a list, as the request reader meets numbers: text follows, so eight digits after the point are read at once.
        var inList = Encoding.UTF8.GetBytes(text + ",1.5, 12345678]");
        var at = 0;
        Assert.True(Utf8Float.TryParseAt(inList, ref at, out float g), text);
        Assert.Equal(utf8.Length, at);
        Assert.Equal(BitConverter.SingleToInt32Bits(f), BitConverter.SingleToInt32Bits(g));
        at = 0;
        Assert.True(Utf8Float.Scan(inList, ref at, out var scanned, out var exact, out _), text);
        Assert.Equal(utf8.Length, at);
        if (exact)
        {
            Assert.Equal(BitConverter.DoubleToInt64Bits(d), BitConverter.DoubleToInt64Bits(scanned));
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-0")]
    [InlineData("0.0")]
    [InlineData("1")]
    [InlineData("-2.5")]
    [InlineData("0.1")]
    [InlineData("0.12345679")]
    [InlineData("1.2345679e-05")]
    [InlineData("1E+5")]
    [InlineData("3.4028235e38")] // float.MaxValue
    [InlineData("1e-45")] // float's smallest subnormal
    [InlineData("4.9406564584124654e-324")] // double's smallest subnormal
    [InlineData("1.7976931348623157e308")]
    [InlineData("16777217")] // 2^24 + 1: exactly between two floats, ties to even
    [InlineData("16777219")]
    [InlineData("9007199254740993")] // 2^53 + 1: more than the fast path holds exactly
    [InlineData("123456789012345678901234567890")]
    [InlineData("0.000000000000000000000000000001")]
    [InlineData("1e22")]
    [InlineData("1e23")]
    [InlineData("9007199254740992e-22")]
    [InlineData("0.30000000000000004")]
    [InlineData("0.5488135")] // fewer than eight digits after the point
    [InlineData("0.54881352")] // eight
    [InlineData("0.548813504")] // nine
    [InlineData("-7.0000001")]
    [InlineData("0.00000000123")]
    public void Numbers_ParseAsDotNetParsesThem(string text) => AgreesWithDotNet(text);

    [Fact]
    public void RandomNumbers_InEveryFormatClientsPrint_ParseAsDotNetParsesThem()
    {
        var random = new Random(20261128);
        for (var i = 0; i < 20_000; i++)
        {
            var bits = random.NextInt64();
            var d = BitConverter.Int64BitsToDouble(bits);
            if (!double.IsFinite(d))
            {
                continue;
            }
            var f = (float)(random.NextDouble() * Math.Pow(10, random.Next(-30, 30)) * (random.Next(2) * 2 - 1));
            // Exactly between two adjacent floats, and one double step either side of it: where rounding twice would differ.
            var mid = ((double)f + (double)MathF.BitIncrement(f)) / 2;
            foreach (var text in (string[])[
                d.ToString("R", Inv), f.ToString("R", Inv), f.ToString("G9", Inv), f.ToString("E3", Inv), f.ToString("F6", Inv),
                mid.ToString("R", Inv), Math.BitIncrement(mid).ToString("R", Inv), Math.BitDecrement(mid).ToString("R", Inv),
                random.Next().ToString(Inv) + "." + random.Next().ToString(Inv)])
            {
                AgreesWithDotNet(text);
            }
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("-")]
    [InlineData("1.5x")]
    [InlineData("1e")]
    [InlineData(".")]
    public void NotNumbers_AreRefused(string text)
    {
        Assert.False(Utf8Float.TryParse(Encoding.UTF8.GetBytes(text), out double _));
        Assert.False(Utf8Float.TryParse(Encoding.UTF8.GetBytes(text), out float _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("-")]
    [InlineData("1e")]
    [InlineData(".")]
    [InlineData("1.")]
    [InlineData("-.5")]
    [InlineData("1.e5")]
    public void NotNumbers_FollowedByMoreText_AreRefused(string text)
    {
        // Followed by more text, as in a request's list, where eight digits after a point are read at once.
        var at = 0;
        Assert.False(Utf8Float.TryParseAt(Encoding.UTF8.GetBytes(text + ",1.5, 12345678]"), ref at, out _));
    }
}
