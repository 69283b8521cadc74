using System.Diagnostics;
using System.Net;
using AiMass.Client;
using AiMass.Jobs;
using AiMass.Execution;
using AiMass.Execution.Slurm;
using AiMass.Resources;
using AiMass.TestSupport;

namespace AiMass.Slurm.Tests;

/// <summary>Discovery, partitions, restarts of the control plane and Slurm outages, on the real one-node cluster.</summary>
public sealed class SlurmClusterTests
{
    [Fact]
    public async Task NodesAndPartitions_ComeFromSlurm_ReadOnly()
    {
        await using var server = await SlurmHarness.StartAsync();
        var node = Assert.Single(await server.Client.ListNodesAsync());
        Assert.Equal(Environment.MachineName.Split('.')[0], node.Name);
        Assert.Equal("batch", node.Pool); // its default partition
        Assert.Equal(new ResourceAmounts(8000, 16L << 30, 4, new Dictionary<string, long>()).ToVector(), node.Capacity.ToVector());
        Assert.Equal("true", node.Labels["partition.batch"]);
        Assert.Equal("true", node.Labels["partition.serving"]);
        var queues = (await server.Client.ListQueuesAsync()).Select(q => q.Name).ToList();
        Assert.Equal(["batch", "default", "serving"], queues);

        var refused = await Assert.ThrowsAsync<AiMassApiException>(() => server.Client.SetNodeStateAsync(node.Name, "drain", "test"));
        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Contains($"managed by slurm: change its state there (scontrol update nodename={node.Name} state=drain", refused.Message, StringComparison.Ordinal);

        // A job of the queue named after a partition is submitted to that partition.
        var job = await server.Client.SubmitJobAsync("name: on-serving\nqueue: serving\nresources: {cpu: 1, memory: 100Mi}\ncommand: true\n");
        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded);
        Assert.Equal("serving", SlurmHarness.Job(done.Tasks[0].ExternalId!)[1]);
    }

    [Fact]
    public async Task DelegatedScheduling_SubmitsEveryJobAtOnce_AndSlurmQueuesThem()
    {
        await using var server = await SlurmHarness.StartAsync(settings: new Dictionary<string, string?> { ["Slurm:Scheduling"] = "slurm" });
        Assert.Equal(["partition:batch", "partition:serving"], (await server.Client.ListNodesAsync()).Select(n => n.Name));
        var go = server.Directory.Combine("go");
        // Each needs 6 of the node's 8 CPUs: Slurm runs one at a time, AI Mass holds none back.
        var ids = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await server.Client.SubmitJobAsync($"name: big-{i}\nresources: {{cpu: 6, memory: 100Mi}}\ncommand: {JobWaits.WaitFor(go)}\n")).Id);
        }
        var jobs = new List<JobInfo>();
        await Poll.UntilAsync(async () =>
        {
            jobs = [];
            foreach (var id in ids)
            {
                jobs.Add(await server.Client.GetJobAsync(id));
            }
            return jobs.All(j => j.Tasks.Count == 1 && j.Tasks[0].ExternalState is not null)
                && jobs.Count(j => j.Tasks[0].ExternalState!.StartsWith("RUNNING", StringComparison.Ordinal)) == 1;
        }, TimeSpan.FromSeconds(30), "all three to be submitted to Slurm, one of them running");
        Assert.All(jobs, j => Assert.Equal(JobState.Running, j.State));
        var waiting = jobs.Where(j => j.Tasks[0].ExternalState!.StartsWith("PENDING", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, waiting.Count);
        Assert.All(waiting, j => Assert.StartsWith("submitted; waiting in slurm's queue: PENDING (", j.Reason, StringComparison.Ordinal));
        Assert.All(jobs, j => Assert.Equal("batch", SlurmHarness.Job(j.Tasks[0].ExternalId!)[1]));
        await File.WriteAllTextAsync(go, "");
        foreach (var id in ids)
        {
            await server.Client.WaitForStateAsync(id, JobState.Succeeded, seconds: 60);
        }
    }

    [Fact]
    public async Task Restart_FindsItsSlurmJobsAgain_AndSubmitsNothingTwice()
    {
        var directory = new TempDirectory();
        var go = directory.Combine("go");
        long id;
        string slurmId;
        var first = await SlurmHarness.StartAsync(directory);
        {
            id = (await first.Client.SubmitJobAsync($"name: survivor\nresources: {{cpu: 1, memory: 100Mi}}\ncommand: echo before; {JobWaits.WaitFor(go)}; echo after\n")).Id;
            slurmId = (await first.Client.WaitForRunningAsync(id)).Tasks[0].ExternalId!;
            await Poll.UntilAsync(() => Task.FromResult(SlurmHarness.Job(slurmId)[0] == "RUNNING"), TimeSpan.FromSeconds(30), "Slurm to run the job");
            await first.ShutdownAsync();
        }
        Assert.Equal("RUNNING", SlurmHarness.Job(slurmId)[0]);

        await using var second = await SlurmHarness.StartAsync(directory);
        var found = await second.Client.GetJobAsync(id);
        Assert.Equal(JobState.Running, found.State);
        Assert.Equal(slurmId, found.Tasks[0].ExternalId);
        await File.WriteAllTextAsync(go, "");
        var done = await second.Client.WaitForStateAsync(id, JobState.Succeeded);
        Assert.Equal(1, done.Attempt);
        Assert.Contains("before\nafter\n", await second.Client.LogsAsync(id), StringComparison.Ordinal);
        // Exactly one Slurm job was ever submitted for it (found by this control plane's tag in the comment).
        var mine = SlurmHarness.Run("squeue", "--states=all", "-h", "-o", "%i|%j|%k").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.EndsWith($"|{Tag(directory)} job={id} attempt=1", StringComparison.Ordinal) || l.Contains($"|aimass-{id}.2|{Tag(directory)} ", StringComparison.Ordinal))
            .ToList();
        Assert.Equal([$"{slurmId}|aimass-{id}.1|{Tag(directory)} job={id} attempt=1"], mine);
    }

    [Fact]
    public async Task ASubmissionWhoseIdWasNotRecorded_IsFoundByItsNameAndTag()
    {
        // The control plane stopped between sbatch and recording the Slurm job id: recovery finds the job by name.
        using var directory = new TempDirectory();
        var options = new SlurmOptions { Conf = SlurmHarness.Conf, PollInterval = TimeSpan.FromMilliseconds(200) };
        using var executor = new SlurmExecutor(options, new SlurmProcessCommands(options), Tag(directory), directory.Combine("slurm"));
        await executor.DiscoverAsync(default);
        var node = Assert.Single((await executor.DiscoverAsync(default))!.Nodes).Name;
        var log = directory.Combine("logs", "task-0.log");
        var launch = new TaskLaunch(77, 0, 3, node, ["/bin/sh", "-c", "sleep 30"], directory.Combine("work"), new Dictionary<string, string>(), log);
        var started = Assert.Single(await executor.StartAsync(new GangLaunch(77, 3, "default", "batch", new ResourceVector(1000, 64L << 20), null, [launch]), default));
        try
        {
            var unrecorded = started with { ExternalId = null };
            Assert.False(unrecorded.IsLaunched);
            var found = executor.Find(unrecorded);
            Assert.Equal(started.ExternalId, found?.ExternalId);
            Assert.Null(executor.Probe(found!)); // still running
            Assert.Null(executor.Find(started with { ExternalId = null, Attempt = 4 })); // another attempt was never submitted
        }
        finally
        {
            executor.Terminate(started, kill: true);
        }
        var exit = await executor.WaitAsync(started, default).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("cancelled in Slurm", exit.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlurmUnreachable_FailsTheJobWithSlurmsError_AfterBoundedRetries_WithoutHangingTheControlPlane()
    {
        using var directory = new TempDirectory();
        var conf = directory.Combine("slurm.conf");
        var good = await File.ReadAllTextAsync(SlurmHarness.Conf);
        await File.WriteAllTextAsync(conf, good);
        await using var server = await SlurmHarness.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Slurm:Conf"] = conf,
            ["Slurm:CommandTimeout"] = "00:00:15",
            ["Jobs:SubmitRetries"] = "4",
            ["Jobs:SubmitRetryBackoff"] = "00:00:02",
        });
        // slurmctld "goes away": its port in this control plane's slurm.conf now leads nowhere.
        await File.WriteAllTextAsync(conf, good.Replace("SlurmctldPort=16817", "SlurmctldPort=16899", StringComparison.Ordinal));
        var job = await server.Client.SubmitJobAsync("name: nowhere\nresources: {cpu: 1, memory: 100Mi}\ncommand: true\n");
        // The API answers while Slurm does not.
        var watch = Stopwatch.StartNew();
        await server.Client.ListJobsAsync();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"listing jobs took {watch.Elapsed} while Slurm was unreachable");
        var failed = await server.Client.WaitForStateAsync(job.Id, JobState.Failed, seconds: 90);
        Assert.Contains("the slurm backend did not take the job after 5 tries", failed.Reason, StringComparison.Ordinal);
        // sbatch's own words, or those of the squeue poll that saw Slurm gone since.
        Assert.True(failed.Reason!.Contains("Unable to contact slurm controller", StringComparison.Ordinal)
            || failed.Reason.Contains("is slurmctld running and reachable?", StringComparison.Ordinal), failed.Reason);
        var events = await server.Client.GetJobEventsAsync(job.Id);
        Assert.Equal(4, events.Count(e => e.Kind == "submit_failed"));

        // Slurm is back: work goes through again (once a poll has seen it back, within the next job's retries).
        await File.WriteAllTextAsync(conf, good);
        var next = await server.Client.SubmitJobAsync("name: back\nresources: {cpu: 1, memory: 100Mi}\ncommand: true\n");
        await server.Client.WaitForStateAsync(next.Id, JobState.Succeeded, seconds: 60);
    }

    [Fact]
    public async Task ControlPlane_DoesNotStart_WhenSlurmCannotBeRead_AndSaysWhy()
    {
        using var directory = new TempDirectory();
        var conf = directory.Combine("slurm.conf");
        await File.WriteAllTextAsync(conf, (await File.ReadAllTextAsync(SlurmHarness.Conf)).Replace("SlurmctldPort=16817", "SlurmctldPort=16899", StringComparison.Ordinal));
        var e = await Assert.ThrowsAnyAsync<InvalidOperationException>(() => SlurmHarness.StartAsync(directory, new Dictionary<string, string?> { ["Slurm:Conf"] = conf }));
        Assert.Contains("cannot read the slurm cluster's nodes and partitions: sinfo --json reported an error (", e.Message, StringComparison.Ordinal);
        Assert.Contains("is slurmctld running and reachable?", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The tag the server marks its Slurm jobs with.</summary>
    private static string Tag(TempDirectory directory) => SlurmExecutor.DefaultTag(directory.Path);
}
