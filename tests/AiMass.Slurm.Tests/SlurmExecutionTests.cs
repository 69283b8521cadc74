using System.Globalization;
using System.Net;
using AiMass.Client;
using AiMass.Jobs;
using AiMass.TestSupport;

namespace AiMass.Slurm.Tests;

/// <summary>Jobs, gangs, cancellation, limits and retries through sbatch on the real one-node Slurm cluster.</summary>
public sealed class SlurmExecutionTests
{
    [Fact]
    public async Task Job_RunsUnderSlurm_IsFollowed_AndItsOutputIsTheJobLog()
    {
        await using var server = await SlurmHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("""
            name: hello-slurm
            command: echo "slurm job $SLURM_JOB_ID task $AIMASS_TASK_INDEX of $AIMASS_NUM_TASKS in $(pwd)"; echo "step cpus=$SLURM_CPUS_PER_TASK"; echo to-stderr >&2
            resources: {cpu: 2, memory: 300Mi}
            """);
        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded);
        var task = Assert.Single(done.Tasks);
        Assert.NotNull(task.ExternalId);
        Assert.Null(task.Pid);
        Assert.Equal("exited with code 0", task.Exit);
        var logs = await server.Client.LogsAsync(job.Id);
        Assert.Contains($"slurm job {task.ExternalId} task 0 of 1 in {server.DataDirectory}/jobs/{job.Id}/work", logs, StringComparison.Ordinal);
        Assert.Contains("to-stderr", logs, StringComparison.Ordinal);
        Assert.Contains("step cpus=2\n", logs, StringComparison.Ordinal); // the srun step gets the task's CPUs, not 1
        var slurm = SlurmHarness.Job(task.ExternalId!);
        Assert.Equal(["COMPLETED", "batch", $"aimass-{job.Id}.1"], slurm);
        // Resources as asked: 2 CPUs, 150 MB per CPU (300 MiB in all).
        var detail = SlurmHarness.Run("scontrol", "show", "job", task.ExternalId!);
        Assert.Contains("NumCPUs=2", detail, StringComparison.Ordinal);
        Assert.Contains("MinMemoryCPU=150M", detail, StringComparison.Ordinal);
        var events = await server.Client.GetJobEventsAsync(job.Id);
        Assert.Contains(events, e => e.Kind == "dispatched" && e.Message.Contains($"submitted to slurm as job {task.ExternalId}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Gang_OfTwo_StartsTogether_InOneAllocation_WithEachOthersAddresses()
    {
        await using var server = await SlurmHarness.StartAsync();
        var barrier = server.Directory.Combine("barrier");
        Directory.CreateDirectory(barrier);
        // Each task checks in, then waits for the other: only tasks that run at the same time both get through.
        var job = await server.Client.SubmitJobAsync($"""
            name: gang
            replicas: 2
            resources: {"{"}cpu: 1, memory: 100Mi{"}"}
            command: >-
              touch {barrier}/$AIMASS_TASK_INDEX;
              i=0; while [ ! -f {barrier}/0 ] || [ ! -f {barrier}/1 ]; do i=$((i+1)); [ $i -gt 300 ] && exit 9; sleep 0.1; done;
              echo "task=$AIMASS_TASK_INDEX procid=$SLURM_PROCID slurm=$SLURM_JOB_ID addresses=$AIMASS_TASK_ADDRESSES port=$AIMASS_TASK_PORT"
            """);
        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded, seconds: 60);
        Assert.Equal(2, done.Tasks.Count);
        var slurmId = done.Tasks[0].ExternalId;
        Assert.All(done.Tasks, t => Assert.Equal(slurmId, t.ExternalId)); // one allocation
        var lines = new List<string>();
        for (var t = 0; t < 2; t++)
        {
            var log = await server.Client.LogsAsync(job.Id, task: t);
            lines.Add(log.Split('\n').Single(l => l.StartsWith("task=", StringComparison.Ordinal)));
        }
        var addresses = lines[0].Split("addresses=")[1].Split(' ')[0];
        Assert.Equal(addresses, lines[1].Split("addresses=")[1].Split(' ')[0]);
        var endpoints = addresses.Split(',');
        Assert.Equal(2, endpoints.Length);
        for (var t = 0; t < 2; t++)
        {
            Assert.StartsWith($"task={t} procid={t} slurm={slurmId} ", lines[t], StringComparison.Ordinal);
            Assert.EndsWith($"port={endpoints[t].Split(':')[1]}", lines[t], StringComparison.Ordinal);
            Assert.StartsWith("127.0.0.1:", endpoints[t], StringComparison.Ordinal); // the node's NodeAddr
        }
    }

    [Fact]
    public async Task GpuRequest_IsHonoured_AndAnImpossibleOneIsRefused()
    {
        await using var server = await SlurmHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("""
            name: gpus
            resources: {cpu: 1, memory: 100Mi, gpu: 2}
            command: echo "visible=$CUDA_VISIBLE_DEVICES"
            """);
        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded);
        var visible = (await server.Client.LogsAsync(job.Id)).Split('\n').Single(l => l.StartsWith("visible=", StringComparison.Ordinal))["visible=".Length..];
        Assert.Equal(2, visible.Split(',').Length);
        Assert.Contains("TresPerTask=gres:gpu:2", SlurmHarness.Run("scontrol", "show", "job", done.Tasks[0].ExternalId!), StringComparison.Ordinal);

        var refused = await Assert.ThrowsAsync<AiMassApiException>(() => server.Client.SubmitJobAsync("name: too-many\nresources: {gpu: 5}\ncommand: true\n"));
        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Contains("gpu", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_StopsTheSlurmJob_AndLeavesNoProcess()
    {
        await using var server = await SlurmHarness.StartAsync();
        var pids = server.Directory.Combine("pids");
        var job = await server.Client.SubmitJobAsync($"""
            name: to-cancel
            resources: {"{"}cpu: 1, memory: 100Mi{"}"}
            command: sleep 300 & echo $! > {pids}.tmp; echo $$ >> {pids}.tmp; mv {pids}.tmp {pids}; wait
            """);
        await server.Client.WaitForRunningAsync(job.Id);
        await Poll.UntilAsync(() => Task.FromResult(File.Exists(pids)), TimeSpan.FromSeconds(30), "the task to record its process ids");
        var ids = (await File.ReadAllLinesAsync(pids)).Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToList();
        Assert.All(ids, pid => Assert.True(SlurmHarness.IsAlive(pid)));

        await server.Client.CancelJobAsync(job.Id);
        var cancelled = await server.Client.WaitForStateAsync(job.Id, JobState.Cancelled);
        await Poll.UntilAsync(() => Task.FromResult(!ids.Any(SlurmHarness.IsAlive)), TimeSpan.FromSeconds(15), "every process of the cancelled job to be gone");
        var slurmId = cancelled.Tasks[0].ExternalId!;
        await Poll.UntilAsync(() => Task.FromResult(SlurmHarness.Job(slurmId)[0] is "COMPLETED" or "CANCELLED" or "FAILED"), TimeSpan.FromSeconds(15), "Slurm to end the job");
    }

    [Fact]
    public async Task NonZeroExit_IsRetried_AsANewSlurmJob()
    {
        await using var server = await SlurmHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("""
            name: flaky
            max_restarts: 1
            resources: {cpu: 1, memory: 100Mi}
            command: echo "attempt $AIMASS_ATTEMPT in $SLURM_JOB_ID"; [ "$AIMASS_ATTEMPT" = 2 ] || exit 3
            """);
        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded, seconds: 60);
        Assert.Equal(2, done.Attempt);
        var events = await server.Client.GetJobEventsAsync(job.Id);
        Assert.Contains(events, e => e.Kind == "task_exit" && e.Message.Contains("attempt 1, node", StringComparison.Ordinal) && e.Message.EndsWith("exited with code 3", StringComparison.Ordinal));
        var dispatched = events.Where(e => e.Kind == "dispatched").Select(e => e.Message.Split(' ')[^1]).ToList();
        Assert.Equal(2, dispatched.Distinct().Count());
        Assert.Equal("FAILED", SlurmHarness.Job(dispatched[0])[0]);
        Assert.Equal("COMPLETED", SlurmHarness.Job(dispatched[1])[0]);
    }

    [Fact]
    public async Task Walltime_IsEnforcedBySlurm_AndTimeoutFailsTheJobWithoutRetry()
    {
        await using var server = await SlurmHarness.StartAsync();
        var job = await server.Client.SubmitJobAsync("""
            name: too-long
            walltime: 1m
            max_restarts: 2
            resources: {cpu: 1, memory: 100Mi}
            command: sleep 600
            """);
        var running = await server.Client.WaitForRunningAsync(job.Id);
        var slurmId = running.Tasks[0].ExternalId!;
        Assert.Contains("TimeLimit=00:01:00", SlurmHarness.Run("scontrol", "show", "job", slurmId), StringComparison.Ordinal);
        // Slurm checks time limits every 30 s, so the job ends between 60 and about 100 s after it started.
        var failed = await server.Client.WaitForStateAsync(job.Id, JobState.Failed, seconds: 150);
        Assert.Contains($"stopped by Slurm at its time limit (Slurm job {slurmId} TIMEOUT)", failed.Reason, StringComparison.Ordinal);
        Assert.Equal(1, failed.Attempt); // a walltime is not retried
        Assert.Equal("TIMEOUT", SlurmHarness.Job(slurmId)[0]);
    }
}
