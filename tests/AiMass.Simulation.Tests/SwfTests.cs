namespace AiMass.Simulation.Tests;

/// <summary>Reading the Standard Workload Format.</summary>
public sealed class SwfTests
{
    private const string Trace = """
        ; Version: 2.2
        ; Computer: test machine
        ; MaxNodes: 8
        ; MaxProcs: 16
        ;
        ; a free comment line: Note this one has spaces before its colon
        1 0 5 100 4 90.5 1024 4 200 2048 1 3 1 7 1 1 -1 -1

        2   10	-1 50 -1 -1 -1 2 -1 -1 1 3 1 7 1 1 1 30
        """;

    [Fact]
    public void HeaderFieldsAndUnknowns_AreRead()
    {
        var trace = SwfReader.Read(new StringReader(Trace));
        Assert.Equal("2.2", trace.Header["Version"]);
        Assert.Equal(16, trace.MaxProcessors);
        Assert.Equal(2, trace.Jobs.Count);
        Assert.Equal(new SwfJob(1, 0, 5, 100, 4, 90.5, 1024, 4, 200, 2048, 1, 3, 1, 7, 1, 1, -1, -1), trace.Jobs[0]);
        var second = trace.Jobs[1];
        Assert.Equal((2L, 50L, -1L, 1L, 30L), (second.Processors, second.Estimate, second.Wait, second.PrecedingJob, second.ThinkTime));
        Assert.Equal(200, trace.Jobs[0].Estimate); // field 9 when known
    }

    [Fact]
    public void MaxNodes_StandsIn_WhenThereIsNoMaxProcs()
    {
        Assert.Equal(8, SwfReader.Read(new StringReader("; MaxNodes: 8\n")).MaxProcessors);
        Assert.Null(SwfReader.Read(new StringReader("; Computer: x\n")).MaxProcessors);
    }

    [Theory]
    [InlineData("1 0 5 100 4 -1 -1 4 200 -1 1 3 1 7 1 1 -1", 2, "17 fields where SWF has 18")]
    [InlineData("1 0 5 100 4 -1 -1 4 200 -1 1 3 1 7 1 1 -1 -1 9", 2, "more than 18 fields")]
    [InlineData("1 0 5 1OO 4 -1 -1 4 200 -1 1 3 1 7 1 1 -1 -1", 2, "field 4 ('1OO') is not a number")]
    [InlineData("1 0 5 100 4 -1 -1 -4 200 -1 1 3 1 7 1 1 -1 -1", 2, "field 8 is -4: only -1 (unknown) may be negative")]
    public void MalformedLines_AreRejected_WithTheirLineNumber(string line, int number, string message)
    {
        var e = Assert.Throws<TraceFormatException>(() => SwfReader.Read(new StringReader("; MaxProcs: 4\n" + line + "\n"), "t.swf"));
        Assert.Equal(number, e.Line);
        Assert.Equal($"t.swf:{number}: {message}", e.Message);
    }
}
