using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

/// <summary><c>aimass sim run</c> as a user runs it: a trace in, a table out, jobs.csv and summary.json written.</summary>
public sealed class SimCommandTests : IDisposable
{
    private readonly TempDirectory _work = new();

    public void Dispose() => _work.Dispose();

    /// <summary>The cells of the table rows whose first column is one of <paramref name="policies"/>, in output order.</summary>
    private static List<string[]> Rows(string stdout, params string[] policies) =>
        stdout.Split('\n').Where(l => policies.Any(p => l.StartsWith("│ " + p + " ", StringComparison.Ordinal)))
            .Select(l => l.Split('│', StringSplitOptions.TrimEntries)).ToList();

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
        var rows = Rows(compare.Stdout, "fcfs", "easy");
        Assert.Equal(["fcfs", "easy"], rows.Select(r => r[1]));
        Assert.Equal(["9", "3"], rows.Select(r => r[4])); // mean wait: (0 + 9 + 18) / 3 and (0 + 9 + 0) / 3
        Assert.True(File.Exists(Path.Combine(compared, "fcfs", "jobs.csv")) && File.Exists(Path.Combine(compared, "easy", "summary.json")));
        Assert.True(File.Exists(Path.Combine(compared, "wait-cdf.svg")) && File.Exists(Path.Combine(compared, "utilisation.png")));
        Assert.True(File.Exists(Path.Combine(output, "queue.png")) && File.Exists(Path.Combine(output, "slowdown-cdf.svg")));
        var unknown = await Run("sim", "compare", "--trace", trace, "--policies", "easy,sjf");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("--policies: unknown 'sjf'; choose among fcfs, easy, conservative (a scenario takes more)", unknown.Stderr, StringComparison.Ordinal);
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

    [Fact]
    public async Task Scenario_RunAndCompare_PrintTheFigures_AndWriteResultsAndPlots()
    {
        var scenario = _work.Combine("s.yaml");
        await File.WriteAllTextAsync(_work.Combine("trace.csv"), "job_id,submit_time,duration,num_gpus,user\n1,0,36000,1,alice\n2,3600,600,1,bob\n");
        await File.WriteAllTextAsync(scenario, """
            name: tiny
            cluster:
              policy: {ordering: fifo, backfill: easy}
              nodes: [{name: n1, resources: {cpu: 8, memory: 64Gi, gpu: 1}}]
            workload:
              traces: [{file: trace.csv}]
            las: {thresholds: [30m]}
            """);
        var output = _work.Combine("run");
        var run = await Run("sim", "run", "--scenario", scenario, "--output", output);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("│ jobs finished / unfinished           │ 2 / 0", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("│ wait mean / p50 / p95 / p99          │ 4.5 h / 0 s / 9 h / 9 h", run.Stdout, StringComparison.Ordinal);
        var jobs = await File.ReadAllLinesAsync(Path.Combine(output, "jobs.csv"));
        Assert.StartsWith("job_id,name,user,queue,submit,start,end,wait,run,jct,", jobs[0], StringComparison.Ordinal);
        Assert.Equal("2,,bob,default,3600,36000,36600,32400,600,33000,1,4,1,600,0,0,0,0,55,n1", jobs[2]);
        foreach (var file in new[] { "summary.json", "timeseries.csv", "utilisation.png", "queue.svg", "wait-cdf.png", "slowdown-cdf.svg" })
        {
            Assert.True(File.Exists(Path.Combine(output, file)), file);
        }

        var compared = _work.Combine("cmp");
        var compare = await Run("sim", "compare", "--scenario", scenario, "--policies", "fcfs,las", "--output", compared);
        Assert.True(compare.ExitCode == 0, compare.ToString());
        var rows = Rows(compare.Stdout, "fcfs", "las");
        Assert.Equal(["fcfs", "las"], rows.Select(r => r[1]));
        Assert.Equal(["4.5 h", "0 s"], rows.Select(r => r[5])); // under LAS the short job preempts the long one at once
        Assert.Equal(["0", "1"], rows.Select(r => r[11]));
        Assert.Equal(3, (await File.ReadAllLinesAsync(Path.Combine(compared, "compare.csv"))).Length);
        Assert.True(File.Exists(Path.Combine(compared, "las", "jobs.csv")) && File.Exists(Path.Combine(compared, "wait-cdf.png")));

        var json = await Run("--json", "sim", "run", "--scenario", scenario, "--policy", "las");
        Assert.True(json.ExitCode == 0, json.ToString());
        using (var document = System.Text.Json.JsonDocument.Parse(json.Stdout))
        {
            var summary = document.RootElement.GetProperty("summary");
            Assert.Equal((2, 1, 0.0), (summary.GetProperty("jobs").GetInt32(), summary.GetProperty("preemptions").GetInt32(), summary.GetProperty("mean_wait").GetDouble()));
            Assert.Equal("las", document.RootElement.GetProperty("policy").GetString());
        }

        var badTerm = await Run("sim", "compare", "--scenario", scenario, "--policies", "fcfs,rr");
        Assert.Equal(1, badTerm.ExitCode);
        Assert.Contains("policy 'rr': unknown term 'rr'", badTerm.Stderr, StringComparison.Ordinal);
        var both = await Run("sim", "run", "--scenario", scenario, "--trace", "x.swf");
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("give either --trace FILE.swf or --scenario FILE.yaml", both.Stderr, StringComparison.Ordinal);
        await File.WriteAllTextAsync(scenario, "cluster: {nodes: [{name: n1, resources: {cpu: 8}}]}\nworkload: {traces: [{file: nope.csv}]}\n");
        var missing = await Run("sim", "run", "--scenario", scenario);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("line 2, column 28: workload.traces[0].file: the file", missing.Stderr, StringComparison.Ordinal);
    }
}
