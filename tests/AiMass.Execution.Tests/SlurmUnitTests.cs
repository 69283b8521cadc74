using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using AiMass.Execution.Slurm;
using AiMass.Resources;

namespace AiMass.Execution.Tests;

/// <summary>Slurm's JSON, its states and the executor's calls, with Slurm's commands replaced by a fake.</summary>
public sealed class SlurmUnitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aimass-slurm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // squeue --json of Slurm 22.05 (abridged to the fields read): exit_code is the wait status.
    private const string Squeue2205 = """
        {"meta": {"Slurm": {"release": "22.05.8"}}, "errors": [], "jobs": [
          {"job_id": 11, "name": "aimass-5.1", "comment": "aimass-x job=5 attempt=1", "job_state": "FAILED", "exit_code": 768, "state_reason": "NonZeroExitCode", "nodes": "n1"},
          {"job_id": 12, "name": "aimass-6.1", "comment": "aimass-x job=6 attempt=1", "job_state": "CANCELLED", "exit_code": 15, "state_reason": "None", "nodes": "n1"},
          {"job_id": 13, "name": "aimass-7.1", "comment": "aimass-x job=7 attempt=1", "job_state": "RUNNING", "exit_code": 0, "state_reason": "None", "nodes": "n2"},
          {"job_id": 14, "name": "other", "comment": "", "job_state": "PENDING", "exit_code": 0, "state_reason": "Resources", "nodes": ""}
        ]}
        """;

    // squeue 23.02+ and sacct: job_state as a list, exit_code as an object.
    private const string Squeue2302 = """
        {"errors": [], "jobs": [
          {"job_id": 21, "name": "a", "comment": "c", "job_state": ["OUT_OF_MEMORY"], "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "number": 0}, "signal": {"signal_id": {"set": true, "number": 9}}}, "state_reason": "OutOfMemory", "nodes": "n1"},
          {"job_id": 22, "name": "b", "comment": "c", "job_state": ["COMPLETED"], "exit_code": {"status": ["SUCCESS"], "return_code": {"set": true, "number": 0}}, "nodes": "n1"}
        ]}
        """;

    [Fact]
    public void Jobs_AreRead_FromBothJsonShapes()
    {
        var old = SlurmJson.ParseJobs(Squeue2205);
        Assert.Equal(4, old.Count);
        Assert.Equal(new SlurmJob("11", "aimass-5.1", "aimass-x job=5 attempt=1", "FAILED", 3, "NonZeroExitCode", "n1"), old[0]);
        Assert.Equal(128 + 15, old[1].ExitCode); // killed by SIGTERM
        Assert.Null(old[2].ExitCode); // still running: no exit code yet
        Assert.False(old[2].HasEnded);
        var newer = SlurmJson.ParseJobs(Squeue2302);
        Assert.Equal(("OUT_OF_MEMORY", 137), (newer[0].State, newer[0].ExitCode));
        Assert.Equal(("COMPLETED", 0), (newer[1].State, newer[1].ExitCode));
    }

    [Fact]
    public void AnErrorInTheAnswer_MeansSlurmIsUnreachable_NotThatThereAreNoJobs()
    {
        // What squeue prints, with exit code 0, when slurmctld is down.
        const string down = """{"errors": [{"description": "Failed while looking for jobs", "error_number": -1, "error": "Unspecified error", "source": "slurm_load_jobs"}], "jobs": []}""";
        var e = Assert.Throws<ExecutorUnavailableException>(() => SlurmJson.ParseJobs(down));
        Assert.Equal("squeue --json reported an error (Failed while looking for jobs: Unspecified error: from slurm_load_jobs); is slurmctld running and reachable?", e.Message);
        Assert.Throws<SlurmCommandException>(() => SlurmJson.ParseJobs("squeue: error: unrecognized option '--json'"));
    }

    [Theory]
    [InlineData("COMPLETED", 0, null, 0, TaskEnd.Exited, "exited with code 0")]
    [InlineData("FAILED", 3, "3", 3, TaskEnd.Exited, "exited with code 3")]
    [InlineData("FAILED", 1, null, 1, TaskEnd.Exited, "exited with code 1 before its task recorded a status (Slurm job 9 FAILED; see the log)")]
    [InlineData("TIMEOUT", 143, "143", 143, TaskEnd.Walltime, "stopped by Slurm at its time limit (Slurm job 9 TIMEOUT)")]
    [InlineData("PREEMPTED", 143, null, 143, TaskEnd.Preempted, "preempted by Slurm (Slurm job 9 PREEMPTED)")]
    [InlineData("NODE_FAIL", null, null, null, TaskEnd.NodeFailure, "its node failed (Slurm job 9 NODE_FAIL on n7)")]
    [InlineData("OUT_OF_MEMORY", 137, null, 137, TaskEnd.OutOfMemory, "killed by Slurm for using more memory than requested (Slurm job 9 OUT_OF_MEMORY)")]
    [InlineData("CANCELLED", 143, "143", 143, TaskEnd.Exited, "cancelled in Slurm (Slurm job 9 CANCELLED)")]
    [InlineData("CANCELLED", 0, "0", 0, TaskEnd.Exited, "exited with code 0")]
    public void FinalStates_MapToHowTheTaskEnded(string state, int? jobExit, string? recorded, int? code, TaskEnd end, string description)
    {
        var job = new SlurmJob("9", "aimass-1.1", "t job=1 attempt=1", state, jobExit, "None", "n7");
        var fromFile = recorded is null ? null : TaskExit.FromCode(int.Parse(recorded, CultureInfo.InvariantCulture));
        var exit = SlurmStates.ToExit(job, fromFile);
        Assert.Equal((code, end, description), (exit.ExitCode, exit.End, exit.Description));
    }

    [Fact]
    public void NodesPartitionsAndTimes_AreRead()
    {
        const string sinfo = """
            {"errors": [], "nodes": [
              {"name": "g1", "address": "10.0.0.11", "cpus": 64, "real_memory": 515000, "gres": "gpu:a100:4(S:0-1)", "state": "mixed", "state_flags": [], "partitions": ["gpu", "batch"], "active_features": "ib,nvme", "reason": ""},
              {"name": "c1", "address": "", "cpus": 32, "real_memory": 128000, "gres": "", "state": "idle", "state_flags": ["DRAIN"], "partitions": ["batch"], "active_features": "", "reason": "bad dimm"},
              {"name": "g1", "address": "10.0.0.11", "cpus": 64, "real_memory": 515000, "gres": "gpu:a100:4", "state": "mixed", "partitions": ["gpu"]}
            ]}
            """;
        var nodes = SlurmJson.ParseNodes(sinfo);
        Assert.Equal(2, nodes.Count); // a node listed once per partition is one node
        Assert.Equal(new ResourceVector(64_000, 515000L << 20, 4), nodes[0].Capacity);
        Assert.Equal(("10.0.0.11", "a100", true, "mixed"), (nodes[0].Address, nodes[0].GpuModel, nodes[0].Available, nodes[0].State));
        Assert.Equal(["gpu", "batch"], nodes[0].Partitions);
        Assert.Equal(["ib", "nvme"], nodes[0].Features);
        Assert.Equal(("c1", false, "idle+drain", "bad dimm"), (nodes[1].Address, nodes[1].Available, nodes[1].State, nodes[1].Reason));

        var partitions = SlurmJson.ParsePartitions(
            "PartitionName=gpu AllowGroups=ALL Default=NO MaxTime=2-00:00:00 Nodes=g[1-4] State=UP\n" +
            "PartitionName=batch AllowGroups=ALL Default=YES MaxTime=UNLIMITED Nodes=c1 State=UP\n" +
            "PartitionName=old Default=NO MaxTime=30 State=DOWN\n");
        Assert.Equal([new("batch", true), new("gpu", false), new ExecutorPartition("old", false)], partitions); // the default first

        Assert.Equal("1", SlurmJson.FormatTime(TimeSpan.FromSeconds(20)));
        Assert.Equal("2", SlurmJson.FormatTime(TimeSpan.FromSeconds(61)));
        Assert.Equal("60", SlurmJson.FormatTime(TimeSpan.FromHours(1)));
    }

    [Fact]
    public async Task SubmitArguments_CarryResources_Limits_Placement_AccountAndQos()
    {
        var options = new SlurmOptions { Account = "grid", Qos = "normal" };
        options.Queues["urgent"] = new SlurmQueueOptions { Partition = "gpu", Qos = "high" };
        options.ExtraArguments.Add("--constraint=ib");
        var fake = new FakeSlurm();
        using var executor = new SlurmExecutor(options, fake, "aimass-t", Path.Combine(_dir, "scripts"));
        // The control plane learns the queue's partition from the discovery and passes it with the gang.
        Assert.Equal(new Dictionary<string, string> { ["urgent"] = "gpu" }, (await executor.DiscoverAsync(default))!.QueuePartitions);
        var gang = Gang(jobId: 42, attempt: 2, tasks: 3, node: "g1", queue: "urgent", new ResourceVector(1500, 3L << 30, 1), TimeSpan.FromMinutes(90), "gpu");
        var args = executor.SubmitArguments(gang, "/s/batch.sh");
        Assert.Equal(
        [
            "--parsable", "--job-name=aimass-42.2", "--comment=aimass-t job=42 attempt=2", "--ntasks=3", "--cpus-per-task=2", "--mem-per-cpu=1536M",
            $"--output={gang.Tasks[0].LogPath}", "--open-mode=append", $"--chdir={gang.Tasks[0].WorkingDirectory}", "--no-requeue",
            "--gpus-per-task=1", "--time=90", "--partition=gpu", "--nodelist=g1", "--nodes=1", "--account=grid", "--qos=high", "--constraint=ib", "/s/batch.sh",
        ], args);
        var plain = executor.SubmitArguments(Gang(1, 1, 1, "g1", "default", new ResourceVector(1000, 1L << 30), null), "b");
        Assert.DoesNotContain(plain, a => a.StartsWith("--time", StringComparison.Ordinal) || a.StartsWith("--gpus", StringComparison.Ordinal)
            || a.StartsWith("--partition", StringComparison.Ordinal));
        Assert.Contains("--account=grid", plain); // a queue without its own account and QOS gets the global ones
        Assert.Contains("--qos=normal", plain);
        // When Slurm schedules, nothing is pinned.
        options.Scheduling = "slurm";
        var delegated = executor.SubmitArguments(Gang(1, 1, 1, "partition:batch", "batch", new ResourceVector(1000, 1L << 30), null, "batch"), "b");
        Assert.Contains("--partition=batch", delegated);
        Assert.DoesNotContain(delegated, a => a.StartsWith("--nodelist", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ThousandJobs_AreFollowed_WithOneSqueuePerPoll()
    {
        var fake = new FakeSlurm();
        var options = new SlurmOptions { PollInterval = TimeSpan.FromMilliseconds(50) };
        using var executor = new SlurmExecutor(options, fake, "aimass-t", Path.Combine(_dir, "scripts"));
        var handles = new List<TaskHandle>();
        for (var j = 0; j < 1000; j++)
        {
            handles.AddRange(await executor.StartAsync(Gang(j, 1, 1, "n1", "default", new ResourceVector(1000, 1L << 20), null), default));
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var waits = handles.Select(h => executor.WaitAsync(h, cts.Token)).ToList();
        await Poll(() => fake.Calls("squeue") >= 5, cts.Token);
        var before = fake.Calls("squeue");
        foreach (var handle in handles)
        {
            fake.End(handle.ExternalId!, "COMPLETED", 0);
        }
        var exits = await Task.WhenAll(waits);
        Assert.All(exits, e => Assert.True(e.Succeeded, e.Description));
        // Every poll read all 1,000 jobs in one call; ending them all took a poll or two, not a call per job.
        Assert.InRange(fake.Calls("squeue") - before, 1, 5);
        Assert.Equal(1000, fake.Calls("sbatch"));
    }

    [Fact]
    public async Task AJobGoneFromSqueue_EndsAsLost_UnlessItsTaskRecordedAStatus()
    {
        var fake = new FakeSlurm();
        using var executor = new SlurmExecutor(new SlurmOptions { PollInterval = TimeSpan.FromMilliseconds(20) }, fake, "aimass-t", Path.Combine(_dir, "scripts"));
        var a = Assert.Single(await executor.StartAsync(Gang(1, 1, 1, "n1", "default", new ResourceVector(1000, 1L << 20), null), default));
        var b = Assert.Single(await executor.StartAsync(Gang(2, 1, 1, "n1", "default", new ResourceVector(1000, 1L << 20), null), default));
        await File.WriteAllTextAsync(b.ExitPath, "4\n");
        fake.Forget(a.ExternalId!);
        fake.Forget(b.ExternalId!);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var lost = await executor.WaitAsync(a, cts.Token);
        Assert.Equal((null, TaskEnd.Lost), (lost.ExitCode, lost.End));
        Assert.Contains($"Slurm no longer knows job {a.ExternalId}", lost.Description, StringComparison.Ordinal);
        Assert.Equal(4, (await executor.WaitAsync(b, cts.Token)).ExitCode);
        Assert.True(fake.Calls("sacct") >= 1); // asked the accounting first
    }

    private GangLaunch Gang(long jobId, int attempt, int tasks, string node, string queue, ResourceVector perTask, TimeSpan? walltime, string? partition = null) =>
        new(jobId, attempt, queue, partition, perTask, walltime, Enumerable.Range(0, tasks).Select(t => new TaskLaunch(jobId, t, attempt, node, ["true"],
            Path.Combine(_dir, "work", jobId.ToString(CultureInfo.InvariantCulture)), new Dictionary<string, string>(),
            Path.Combine(_dir, "logs", $"{jobId}.{attempt}.{t}.log"))).ToList());

    private static async Task Poll(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (!condition())
        {
            await Task.Delay(10, cancellationToken);
        }
    }

    /// <summary>Slurm's commands against an in-memory job table.</summary>
    private sealed class FakeSlurm : ISlurmCommands
    {
        private readonly ConcurrentDictionary<string, int> _calls = new();
        private readonly ConcurrentDictionary<string, (string Name, string Comment, string State, int Exit)> _jobs = new();
        private int _next = 100;

        public int Calls(string tool) => _calls.GetValueOrDefault(tool);

        public void End(string id, string state, int exitStatus) => _jobs[id] = _jobs[id] with { State = state, Exit = exitStatus };

        public void Forget(string id) => _jobs.TryRemove(id, out _);

        public string Run(string tool, IReadOnlyList<string> arguments)
        {
            _calls.AddOrUpdate(tool, 1, (_, n) => n + 1);
            switch (tool)
            {
                case "sbatch":
                    var id = Interlocked.Increment(ref _next).ToString(CultureInfo.InvariantCulture);
                    string Arg(string name) => arguments.First(a => a.StartsWith(name, StringComparison.Ordinal))[name.Length..];
                    _jobs[id] = (Arg("--job-name="), Arg("--comment="), "RUNNING", 0);
                    return id + "\n";
                case "squeue":
                    return JsonSerializer.Serialize(new
                    {
                        errors = Array.Empty<object>(),
                        jobs = _jobs.Select(j => new { job_id = int.Parse(j.Key, CultureInfo.InvariantCulture), name = j.Value.Name, comment = j.Value.Comment, job_state = j.Value.State, exit_code = j.Value.Exit, state_reason = "None", nodes = "n1" }),
                    });
                case "sacct":
                    throw new SlurmCommandException("sacct failed (exit 1): Slurm accounting storage is disabled");
                case "sinfo":
                    return """{"errors": [], "nodes": [{"name": "g1", "address": "10.0.0.1", "cpus": 8, "real_memory": 1000, "gres": "gpu:2", "state": "idle", "partitions": ["gpu", "batch"]}]}""";
                case "scontrol":
                    return "PartitionName=batch Default=YES State=UP MaxTime=UNLIMITED\nPartitionName=gpu Default=NO State=UP MaxTime=UNLIMITED\n";
                default:
                    throw new SlurmCommandException($"{tool}: not faked");
            }
        }
    }
}
