using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

/// <summary><c>aimass sim run</c> as a user runs it: a trace in, a table out, jobs.csv and summary.json written.</summary>
public sealed class SimCommandTests : IDisposable
{
    private readonly TempDirectory _work = new();

    public void Dispose() => _work.Dispose();

    private static Task<CliResult> Run(params string[] args) => CliRunner.RunWithEnvAsync(new Dictionary<string, string>(), null, args);

    [Fact]
    public async Task Run_ReplaysATrace_AndWritesItsResults()
    {
        var trace = _work.Combine("small.swf");
        await File.WriteAllTextAsync(trace, """
            ; MaxProcs: 4
            1 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 1 -1 -1 -1
            2 1 -1 10 4 -1 -1 -1 10 -1 1 1 1 -1 1 -1 -1 -1
            3 2 -1 5 2 -1 -1 2 5 -1 1 2 1 -1 1 -1 -1 -1
            4 3 -1 0 1 -1 -1 1 5 -1 0 2 1 -1 1 -1 -1 -1
            """);
        var output = _work.Combine("out");
        var run = await Run("sim", "run", "--trace", trace, "--policy", "easy", "--output", output);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("1 run time not positive", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("makespan (s)", run.Stdout, StringComparison.Ordinal);
        Assert.Equal(
            ["job_id,submit,start,end,wait,run,processors,bounded_slowdown", "1,0,0,10,0,10,2,1", "2,1,10,20,9,10,4,1.9", "3,2,2,7,0,5,2,1"],
            await File.ReadAllLinesAsync(Path.Combine(output, "jobs.csv")));
        Assert.Contains("\"policy\": \"easy\"", await File.ReadAllTextAsync(Path.Combine(output, "summary.json")), StringComparison.Ordinal);

        var fcfs = await Run("sim", "run", "--trace", trace, "--policy", "fcfs", "--processors", "8");
        Assert.True(fcfs.ExitCode == 0, fcfs.ToString());
        Assert.Contains("│ processors ", fcfs.Stdout, StringComparison.Ordinal);

        // compare: one row per policy (FCFS makes job 3 wait 18 s: mean wait 9), one output directory per policy.
        var compared = _work.Combine("compared");
        var compare = await Run("sim", "compare", "--trace", trace, "--policies", "fcfs,easy", "--output", compared);
        Assert.True(compare.ExitCode == 0, compare.ToString());
        var rows = compare.Stdout.Split('\n').Where(l => l.StartsWith("│ fcfs", StringComparison.Ordinal) || l.StartsWith("│ easy", StringComparison.Ordinal))
            .Select(l => l.Split('│', StringSplitOptions.TrimEntries)).ToList();
        Assert.Equal(["fcfs", "easy"], rows.Select(r => r[1]));
        Assert.Equal(["9", "3"], rows.Select(r => r[4])); // mean wait: (0 + 9 + 18) / 3 and (0 + 9 + 0) / 3
        Assert.True(File.Exists(Path.Combine(compared, "fcfs", "jobs.csv")) && File.Exists(Path.Combine(compared, "easy", "summary.json")));
        var unknown = await Run("sim", "compare", "--trace", trace, "--policies", "easy,sjf");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("--policies: unknown 'sjf'; choose among fcfs, easy, conservative", unknown.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BadTraces_AndOptions_ExitWithTheReason()
    {
        var broken = _work.Combine("broken.swf");
        await File.WriteAllTextAsync(broken, "; MaxProcs: 4\n1 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 1 -1 -1 -1\n2 1 -1 ten 4 -1 -1 -1 10 -1 1 1 1 -1 1 -1 -1 -1\n");
        var bad = await Run("sim", "run", "--trace", broken);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains($"not a valid SWF trace: {broken}:3: field 4 ('ten') is not a number", bad.Stderr, StringComparison.Ordinal);

        var headless = _work.Combine("headless.swf");
        await File.WriteAllTextAsync(headless, "1 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 1 -1 -1 -1\n");
        var noProcessors = await Run("sim", "run", "--trace", headless);
        Assert.Equal(1, noProcessors.ExitCode);
        Assert.Contains("has no MaxProcs (or MaxNodes) in its header: give --processors", noProcessors.Stderr, StringComparison.Ordinal);

        var missing = await Run("sim", "run", "--trace", _work.Combine("nope.swf"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("does not exist", missing.Stderr, StringComparison.Ordinal);
    }
}
