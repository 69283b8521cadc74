using System.Net;
using System.Text.Json;
using AiMass.Client;
using AiMass.TestSupport;

namespace AiMass.Jobs.Tests;

public sealed class JobLifecycleTests
{
    [Fact]
    public async Task Gang_RunsEveryTaskWithItsEnvironment_AndLogsEachAfterAMarker()
    {
        await using var server = await JobsHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("""
            name: gang
            replicas: 2
            resources: {cpu: 2, memory: 1Gi}
            command: echo "task $AIMASS_TASK_INDEX of $AIMASS_NUM_TASKS on $AIMASS_NODE job $AIMASS_JOB_ID peers $AIMASS_TASK_ADDRESSES"; echo oops >&2
            """);
        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded);
        Assert.Equal(["n-1", "n-2"], done.Tasks.Select(t => t.Node).Order());
        Assert.Equal("tester", done.Owner);

        var logs = await server.Client.LogsAsync(job.Id);
        var lines = logs.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, lines.Length);
        Assert.StartsWith("==> attempt 1, task 0, node ", lines[0], StringComparison.Ordinal);
        Assert.StartsWith($"task 0 of 2 on ", lines[1], StringComparison.Ordinal);
        Assert.Contains($"job {job.Id} peers 127.0.0.1:", lines[1], StringComparison.Ordinal);
        Assert.Equal("oops", lines[2]);
        Assert.StartsWith("==> attempt 1, task 1, node ", lines[3], StringComparison.Ordinal);
        Assert.Equal(logs.Split('\n')[1..3], (await server.Client.LogsAsync(job.Id, task: 0)).Split('\n')[1..3]);
    }

    [Fact]
    public async Task Submit_InvalidSpec_Is400WithEveryFieldAndLine()
    {
        await using var server = await JobsHarness.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        using var response = await http.PostAsync(new Uri("api/v1/jobs", UriKind.Relative), new StringContent("name: x\ncommand: [run]\nreplica: 2\nresources: {cpu: lots}\n"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_argument", problem.RootElement.GetProperty("code").GetString());
        var errors = problem.RootElement.GetProperty("errors").EnumerateArray()
            .Select(e => (Field: e.GetProperty("field").GetString(), Line: e.GetProperty("line").GetInt32())).ToList();
        Assert.Contains(("replica", 3), errors);
        Assert.Contains(("resources.cpu", 4), errors);

        var tooBig = await Assert.ThrowsAsync<AiMassApiException>(() => server.Client.SubmitJobAsync("name: x\ncommand: [true]\nresources: {gpu: 1}\n"));
        Assert.Equal(HttpStatusCode.BadRequest, tooBig.Status);
        Assert.Contains("gpu=1", tooBig.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_StopsTheWholeProcessTree()
    {
        await using var server = await JobsHarness.StartAsync();
        var pidFile = server.Directory.Combine("grandchild.pid");
        var job = await server.Client.SubmitJobAsync($"name: tree\ncommand: sleep 300 & echo $! > {pidFile}; wait\n");
        await server.Client.WaitForRunningAsync(job.Id);
        await Poll.UntilAsync(() => Task.FromResult(File.Exists(pidFile) && File.ReadAllText(pidFile).Trim().Length > 0), TimeSpan.FromSeconds(30), "the grandchild to start");
        var grandchild = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Directory.Exists($"/proc/{grandchild}"));

        var cancelling = await server.Client.CancelJobAsync(job.Id);
        Assert.Contains(cancelling.State, new[] { JobState.Stopping, JobState.Cancelled });
        var cancelled = await server.Client.WaitForStateAsync(job.Id, JobState.Cancelled);
        Assert.Equal("cancelled by a user", cancelled.Reason);
        await Poll.UntilAsync(() => Task.FromResult(!File.Exists($"/proc/{grandchild}/stat") || File.ReadAllText($"/proc/{grandchild}/stat").Contains(") Z ", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30), "the grandchild to be gone");
        var again = await Assert.ThrowsAsync<AiMassApiException>(() => server.Client.CancelJobAsync(job.Id));
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
    }

    [Fact]
    public async Task Cancel_QueuedJob_NeverStarts()
    {
        await using var server = await JobsHarness.StartAsync();
        var blocker = await server.Client.SubmitJobAsync("name: big\nreplicas: 2\nresources: {cpu: 2}\ncommand: sleep 30\n");
        await server.Client.WaitForStateAsync(blocker.Id, JobState.Running);
        var queued = await server.Client.SubmitJobAsync("name: waits\ncommand: echo should not run\n");
        var waiting = await server.Client.WaitForAsync(queued.Id, j => j.Reason?.Contains("resources", StringComparison.Ordinal) == true, "to say it waits for resources");
        Assert.Equal(JobState.Queued, waiting.State);
        var cancelled = await server.Client.CancelJobAsync(queued.Id);
        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.Equal(0, cancelled.Attempt);
        await server.Client.CancelJobAsync(blocker.Id);
        await server.Client.WaitForStateAsync(blocker.Id, JobState.Cancelled);
    }

    [Fact]
    public async Task Failure_RestartsFromTheLatestCheckpoint_UntilMaxRestarts()
    {
        await using var server = await JobsHarness.StartAsync();
        var go = server.Directory.Combine("go");
        var job = await server.Client.SubmitJobAsync($"""
            name: flaky
            max_restarts: 1
            command: |
              echo "attempt $AIMASS_ATTEMPT resume=$AIMASS_RESUME_FROM"
              if [ "$AIMASS_ATTEMPT" = 1 ]; then {JobWaits.WaitFor(go)}; exit 3; fi
              exit 0
            """);
        await server.Client.WaitForRunningAsync(job.Id);
        await server.Client.ReportJobCheckpointAsync(job.Id, "/shared/ckpt/step-100", 100);
        await server.Client.ReportJobMetricsAsync(job.Id, new Dictionary<string, double> { ["loss"] = 0.25 }, step: 100);
        await File.WriteAllTextAsync(go, "");

        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded);
        Assert.Equal(2, done.Attempt);
        Assert.Equal(1, done.Restarts);
        Assert.Contains("attempt 2 resume=/shared/ckpt/step-100", await server.Client.LogsAsync(job.Id, attempt: 2), StringComparison.Ordinal);
        Assert.Contains("attempt 1 resume=\n", await server.Client.LogsAsync(job.Id, attempt: 1), StringComparison.Ordinal);
        var events = await server.Client.GetJobEventsAsync(job.Id);
        Assert.Contains(events, e => e.Kind == "requeued" && e.Message.Contains("restart 1 of 1", StringComparison.Ordinal));
        var metric = Assert.Single(await server.Client.GetJobMetricsAsync(job.Id));
        Assert.Equal(("loss", 0.25, 1, 100L), (metric.Name, metric.Value, metric.Attempt, metric.Step!.Value));
        Assert.Single(await server.Client.GetJobCheckpointsAsync(job.Id));
    }

    [Fact]
    public async Task Failure_SoonAfterStart_RestartsAfterADoublingPause()
    {
        await using var server = await JobsHarness.StartAsync(settings: new Dictionary<string, string?> { ["Jobs:RestartBackoff"] = "00:00:00.300" });
        var job = await server.Client.SubmitJobAsync("name: crashing\nmax_restarts: 3\ncommand: exit 3\n");
        var failed = await server.Client.WaitForStateAsync(job.Id, JobState.Failed);
        Assert.Equal(3, failed.Restarts);
        var events = await server.Client.GetJobEventsAsync(job.Id);
        var requeued = events.Where(e => e.Kind == "requeued").ToList();
        Assert.Equal(3, requeued.Count);
        Assert.Contains("waits 0.3 s first (failure 1 within 10 min of starting)", requeued[0].Message, StringComparison.Ordinal);
        Assert.Contains("waits 0.6 s first (failure 2", requeued[1].Message, StringComparison.Ordinal);
        Assert.Contains("waits 1.2 s first (failure 3", requeued[2].Message, StringComparison.Ordinal);
        // Each attempt starts no sooner than its pause after the previous one ended.
        var starts = events.Where(e => e.Kind == "started").Select(e => e.Time).ToList();
        Assert.Equal(4, starts.Count);
        Assert.True(starts[3] - starts[2] >= TimeSpan.FromSeconds(1.2), $"{starts[2]:O} -> {starts[3]:O}");
    }

    [Fact]
    public async Task Failure_WithoutRestarts_FailsWithTheExitCode()
    {
        await using var server = await JobsHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("name: bad\ncommand: exit 7\n");
        var failed = await server.Client.WaitForStateAsync(job.Id, JobState.Failed);
        Assert.Equal("task 0 exited with code 7", failed.Reason);
        Assert.Equal(7, Assert.Single(failed.Tasks).ExitCode);
    }

    [Fact]
    public async Task Walltime_KillsAJobThatRunsTooLong()
    {
        await using var server = await JobsHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("name: slow\nwalltime: 1s\ncommand: trap '' TERM; sleep 60\n");
        var failed = await server.Client.WaitForStateAsync(job.Id, JobState.Failed);
        Assert.Equal("walltime of 1s exceeded", failed.Reason);
        var events = await server.Client.GetJobEventsAsync(job.Id);
        Assert.Contains(events, e => e.Kind == "killed"); // it ignored SIGTERM, so SIGKILL after the grace period
        Assert.True(failed.EndedAt - failed.StartedAt < TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Preemption_StopsTheLowPriorityJob_RunsTheHighOne_ThenTheLowOneAgain()
    {
        await using var server = await JobsHarness.StartAsync("""
            policy:
              preemption_grace: 5s
            nodes:
              - name: only
                resources: {cpu: 2, memory: 2Gi}
            """);
        var low = await server.Client.SubmitJobAsync("""
            name: low
            priority: 0
            preemptible: true
            resources: {cpu: 2}
            command: |
              trap 'echo saving checkpoint on SIGTERM; exit 0' TERM
              echo "low attempt $AIMASS_ATTEMPT"
              if [ "$AIMASS_ATTEMPT" = 1 ]; then while true; do sleep 0.1; done; fi
            """);
        await server.Client.WaitForStateAsync(low.Id, JobState.Running);
        var high = await server.Client.SubmitJobAsync("name: high\npriority: 10\nresources: {cpu: 2}\ncommand: echo high ran\n");

        await server.Client.WaitForStateAsync(high.Id, JobState.Succeeded);
        var lowDone = await server.Client.WaitForStateAsync(low.Id, JobState.Succeeded);
        Assert.Equal(2, lowDone.Attempt);
        Assert.Equal(0, lowDone.Restarts); // a preemption is not the job's failure
        Assert.Contains("saving checkpoint on SIGTERM", await server.Client.LogsAsync(low.Id, attempt: 1), StringComparison.Ordinal);
        var events = await server.Client.GetJobEventsAsync(low.Id);
        Assert.Contains(events, e => e.Kind == "preempted" && e.Message.Contains($"by job {high.Id}", StringComparison.Ordinal));
        Assert.True((await server.Client.GetJobAsync(high.Id)).StartedAt < lowDone.StartedAt);
    }

    [Fact]
    public async Task NodeDown_RequeuesItsJobs_OnAnotherNode()
    {
        await using var server = await JobsHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("name: long\nresources: {cpu: 2}\ncommand: echo on $AIMASS_NODE; sleep 300\n");
        var running = await server.Client.WaitForRunningAsync(job.Id);
        var first = Assert.Single(running.Tasks).Node;

        var node = await server.Client.SetNodeStateAsync(first, "down", "disk failure");
        Assert.Equal("down", node.State);
        var moved = await server.Client.WaitForAsync(job.Id, j => j.State == JobState.Running && j.Attempt == 2, "to run again");
        Assert.NotEqual(first, Assert.Single(moved.Tasks).Node);
        Assert.Equal(0, moved.Restarts);
        await server.Client.SetNodeStateAsync(first, "up");
        await server.Client.CancelJobAsync(job.Id);
        await server.Client.WaitForStateAsync(job.Id, JobState.Cancelled);
    }

    [Fact]
    public async Task NodesAndQueues_ShowAllocationAndLiveUse_AndMetricsAreExported()
    {
        await using var server = await JobsHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("name: busy\nresources: {cpu: 1, memory: 1Gi}\ncommand: while true; do :; done\n");
        await server.Client.WaitForRunningAsync(job.Id);
        NodeInfo busy = null!;
        await Poll.UntilAsync(async () =>
        {
            busy = (await server.Client.ListNodesAsync()).Single(n => n.Tasks == 1);
            return busy.CpuUsedCores > 0.2;
        }, TimeSpan.FromSeconds(30), "the node to report CPU use");
        Assert.Equal(1000, busy.Allocated.CpuMillis);
        Assert.True(busy.MemoryUsedBytes > 0);
        var queue = Assert.Single(await server.Client.ListQueuesAsync());
        Assert.Equal(1, queue.Running);

        using var http = new HttpClient { BaseAddress = server.Address };
        var metrics = await http.GetStringAsync(new Uri("metrics", UriKind.Relative));
        Assert.Contains("aimass_jobs_queue_length{queue=\"default\"}", metrics, StringComparison.Ordinal);
        // The exporter is process-wide and tests run servers in parallel: check the series, not one server's value.
        Assert.Contains("aimass_jobs_pool_allocated{pool=\"main\",resource=\"cpu\"}", metrics, StringComparison.Ordinal);
        Assert.Contains("aimass_jobs_wait_time", metrics, StringComparison.Ordinal);
        await server.Client.CancelJobAsync(job.Id);
        await server.Client.WaitForStateAsync(job.Id, JobState.Cancelled);
    }
}
