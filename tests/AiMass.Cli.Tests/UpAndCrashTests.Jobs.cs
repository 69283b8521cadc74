using System.Globalization;
using System.Text.Json;
using AiMass.Client;
using AiMass.Jobs;
using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

public sealed partial class UpAndCrashTests
{
    [Fact]
    public async Task SigkillWhileAJobRuns_RestartFollowsTheSameTask_AndTheCliShowsIt()
    {
        using var data = new TempDirectory();
        var go = Path.Combine(data.Path, "go");
        var spec = Path.Combine(data.Path, "job.yaml");
        await File.WriteAllTextAsync(spec, $"name: survivor\ncommand: echo started; while [ ! -f {go} ]; do sleep 0.1; done; echo finished\n");
        long id;
        int pid;
        await using (var server = await UpProcess.StartAsync(data.Path))
        {
            var submit = await CliRunner.RunAsync(server.Address, "jobs", "submit", spec, "--json");
            Assert.True(submit.ExitCode == 0, submit.ToString());
            id = JsonDocument.Parse(submit.Stdout).RootElement.GetProperty("id").GetInt64();
            using var client = new AiMassClient(server.Address);
            JobInfo running = null!;
            await Poll.UntilAsync(async () => (running = await client.GetJobAsync(id)).State == JobState.Running && running.Tasks.Count == 1 && running.Tasks[0].Pid is not null, TimeSpan.FromSeconds(30), "the job to run");
            pid = running.Tasks[0].Pid!.Value;
            await server.KillAsync(); // SIGKILL: no chance to clean up
        }
        Assert.True(File.Exists($"/proc/{pid}/stat"), "the task must outlive a crashed control plane");

        await using var restarted = await UpProcess.StartAsync(data.Path);
        var idText = id.ToString(CultureInfo.InvariantCulture);
        var show = await CliRunner.RunAsync(restarted.Address, "jobs", "show", idText);
        Assert.True(show.ExitCode == 0, show.ToString());
        Assert.Contains("running", show.Stdout, StringComparison.Ordinal);
        Assert.Contains(pid.ToString(CultureInfo.InvariantCulture), show.Stdout, StringComparison.Ordinal);

        await File.WriteAllTextAsync(go, "");
        using var again = new AiMassClient(restarted.Address);
        await Poll.UntilAsync(async () => (await again.GetJobAsync(id)).State == JobState.Succeeded, TimeSpan.FromSeconds(30), "the job to succeed");
        var logs = await CliRunner.RunAsync(restarted.Address, "jobs", "logs", idText);
        Assert.Contains("started\nfinished\n", logs.Stdout, StringComparison.Ordinal);
        Assert.Single(logs.Stdout.Split('\n'), l => l.StartsWith("==> attempt", StringComparison.Ordinal));
        var list = await CliRunner.RunAsync(restarted.Address, "jobs", "list");
        Assert.Contains("survivor", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("succeeded", list.Stdout, StringComparison.Ordinal);
        var nodes = await CliRunner.RunAsync(restarted.Address, "nodes");
        Assert.Contains("local", nodes.Stdout, StringComparison.Ordinal);
        var queues = await CliRunner.RunAsync(restarted.Address, "queues");
        Assert.Contains("default", queues.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task JobsSubmitWait_ExitCodeFollowsTheJob_AndBadSpecsNameTheLine()
    {
        using var data = new TempDirectory();
        await using var server = await UpProcess.StartAsync(data.Path);
        var ok = Path.Combine(data.Path, "ok.yaml");
        await File.WriteAllTextAsync(ok, "name: ok\ncommand: [echo, hello]\n");
        var bad = Path.Combine(data.Path, "bad.yaml");
        await File.WriteAllTextAsync(bad, "name: bad\ncommand: exit 3\n");
        var invalid = Path.Combine(data.Path, "invalid.yaml");
        await File.WriteAllTextAsync(invalid, "name: x\ncommand: [true]\nwalltime: soon\n");

        var follow = await CliRunner.RunAsync(server.Address, "jobs", "submit", ok, "--follow");
        Assert.True(follow.ExitCode == 0, follow.ToString());
        Assert.Contains("hello", follow.Stdout, StringComparison.Ordinal);
        Assert.Contains("succeeded", follow.Stdout, StringComparison.Ordinal);

        var failed = await CliRunner.RunAsync(server.Address, "jobs", "submit", bad, "--wait");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("failed: task 0 exited with code 3", failed.Stdout, StringComparison.Ordinal);

        var rejected = await CliRunner.RunAsync(server.Address, "jobs", "submit", invalid);
        Assert.Equal(1, rejected.ExitCode);
        Assert.Contains("invalid.yaml: line 3, column 11: walltime: 'soon' is not a duration", rejected.Stderr, StringComparison.Ordinal);
    }
}
