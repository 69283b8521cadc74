using AiMass.TestSupport;

namespace AiMass.Jobs.Tests;

/// <summary>A control plane restarted while tasks run finds them again: none is forgotten, none runs twice.</summary>
public sealed class RecoveryTests
{
    [Fact]
    public async Task Restart_WhileATaskRuns_FollowsTheSameProcess_AndRecordsItsEnd()
    {
        var directory = new TempDirectory();
        var go = directory.Combine("go");
        long id;
        int pid;
        var first = await JobsHarness.StartAsync(directory: directory);
        {
            var job = await first.Client.SubmitJobAsync($"name: survivor\ncommand: echo before; {JobWaits.WaitFor(go)}; echo after\n");
            id = job.Id;
            var running = await first.Client.WaitForRunningAsync(id);
            pid = Assert.Single(running.Tasks).Pid!.Value;
            await first.ShutdownAsync(); // the control plane goes away; the task does not
        }
        Assert.True(File.Exists($"/proc/{pid}/stat"), "the task must outlive the control plane");

        await using var second = await JobsHarness.StartAsync(directory: directory);
        var found = await second.Client.GetJobAsync(id);
        Assert.Equal(JobState.Running, found.State);
        Assert.Equal(1, found.Attempt);
        Assert.Equal(pid, Assert.Single(found.Tasks).Pid);
        var events = await second.Client.GetEventsAsync();
        Assert.Contains(events, e => e.Kind == "recovery" && e.Message.Contains("1 task(s) still running and followed", StringComparison.Ordinal));

        await File.WriteAllTextAsync(go, "");
        var done = await second.Client.WaitForStateAsync(id, JobState.Succeeded);
        Assert.Equal(1, done.Attempt); // never started a second time
        var logs = await second.Client.LogsAsync(id);
        Assert.Equal(1, logs.Split("==> attempt").Length - 1);
        Assert.Contains("before\nafter\n", logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Restart_AfterATaskEndedWhileDown_RecordsHowItEnded()
    {
        var directory = new TempDirectory();
        var go = directory.Combine("go");
        long id;
        var first = await JobsHarness.StartAsync(directory: directory);
        {
            id = (await first.Client.SubmitJobAsync($"name: ends-while-down\ncommand: {JobWaits.WaitFor(go)}; exit 4\n")).Id;
            await first.Client.WaitForRunningAsync(id);
            await first.ShutdownAsync();
        }
        await File.WriteAllTextAsync(go, "");
        await Poll.UntilAsync(() => Task.FromResult(Directory.GetFiles(directory.Path, "*.log.exit", SearchOption.AllDirectories).Length == 1),
            TimeSpan.FromSeconds(30), "the task to end and record its status");

        await using var second = await JobsHarness.StartAsync(directory: directory);
        var failed = await second.Client.WaitForStateAsync(id, JobState.Failed);
        Assert.Equal("task 0 exited with code 4", failed.Reason);
    }

    [Fact]
    public async Task Restart_WithQueuedJobs_KeepsThemInOrder()
    {
        var directory = new TempDirectory();
        long blocker, queued;
        var first = await JobsHarness.StartAsync(directory: directory);
        {
            blocker = (await first.Client.SubmitJobAsync("name: blocker\nreplicas: 2\nresources: {cpu: 2}\ncommand: sleep 300\n")).Id;
            await first.Client.WaitForStateAsync(blocker, JobState.Running);
            queued = (await first.Client.SubmitJobAsync("name: queued\ncommand: echo finally\n")).Id;
            await first.ShutdownAsync();
        }
        await using var second = await JobsHarness.StartAsync(directory: directory);
        Assert.Equal(JobState.Queued, (await second.Client.GetJobAsync(queued)).State);
        await second.Client.CancelJobAsync(blocker);
        await second.Client.WaitForStateAsync(queued, JobState.Succeeded);
        Assert.Equal(JobState.Cancelled, (await second.Client.GetJobAsync(blocker)).State);
    }
}
