using AiMass.Jobs;
using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Simulation.Tests;

/// <summary>What-if changes to a scenario, and the platform's job history as a workload.</summary>
public sealed class WhatIfTests
{
    private static readonly NodeSpec Gpu = new("gpu-1", "gpu", new ResourceVector(32_000, 256L << 30, 8)) { GpuModel = "A100" };

    private static Scenario Scenario() => new()
    {
        Name = "s",
        Cluster = new ClusterSpec
        {
            Nodes = [Gpu, Gpu with { Name = "gpu-2" }, new NodeSpec("cpu-1", "cpu", new ResourceVector(8000, 32L << 30))],
            Pools = [new PoolSpec("burst", PoolKind.Dynamic) { MaxNodes = 2, Template = Gpu with { Pool = "burst" } }],
            Queues = [new QueueSpec("research") { Weight = 1 }],
        },
        Jobs = [new SimJob(1, TimeSpan.FromHours(2), TimeSpan.FromHours(1), 1, new ResourceVector(1000, 1L << 30, 1))],
        Checkpoints = new CheckpointModel { Interval = TimeSpan.FromHours(1) },
    };

    [Fact]
    public void PoolChanges_AddCopiesOfItsNodes_RemoveItsLast_OrMoveADynamicPoolsMaximum()
    {
        var grown = WhatIf.Parse("pool gpu +3 nodes").Apply(Scenario());
        Assert.Equal(["gpu-1", "gpu-2", "cpu-1", "gpu-whatif-1", "gpu-whatif-2", "gpu-whatif-3"], grown.Cluster.Nodes.Select(n => n.Name));
        Assert.All(grown.Cluster.Nodes.Where(n => n.Pool == "gpu"), n => Assert.Equal(("A100", 8L), (n.GpuModel!, n.Capacity.Gpus)));
        Assert.Equal("s (pool gpu +3 nodes)", grown.Name);
        Assert.Equal(["gpu-1", "cpu-1"], WhatIf.Parse("pool gpu -1 node").Apply(Scenario()).Cluster.Nodes.Select(n => n.Name));
        Assert.Equal(6, WhatIf.Parse("pool burst +4 nodes").Apply(Scenario()).Cluster.Pools.Single().MaxNodes);
        // More GPU nodes shorten the wait of a workload that queued.
        var busy = Scenario() with
        {
            Jobs = Enumerable.Range(1, 40).Select(i => new SimJob(i, TimeSpan.Zero, TimeSpan.FromHours(1), 1, new ResourceVector(4000, 16L << 30, 8))).ToList(),
        };
        var before = ScenarioSimulator.Run(busy).Summary.MeanWait;
        var after = ScenarioSimulator.Run(WhatIf.Parse("pool gpu +2 nodes").Apply(busy)).Summary.MeanWait;
        Assert.True(after < before * 0.8, $"mean wait {before} -> {after}");
    }

    [Fact]
    public void LoadQueueAndCheckpointChanges()
    {
        Assert.Equal(TimeSpan.FromHours(1), WhatIf.Parse("load x2").Apply(Scenario()).Jobs[0].Submit);
        Assert.Equal(3, WhatIf.Parse("queue research weight 3").Apply(Scenario()).Cluster.Queues.Single().Weight);
        Assert.Equal(2, WhatIf.Parse("queue new weight 2").Apply(Scenario()).Cluster.Queues.Count);
        Assert.Equal(TimeSpan.FromMinutes(10), WhatIf.Parse("checkpoint every 10m").Apply(Scenario()).Checkpoints.Interval);
        Assert.Null(WhatIf.Parse("checkpoint none").Apply(Scenario()).Checkpoints.Interval);
    }

    [Theory]
    [InlineData("pool gpu 4 nodes", "'4' is not a signed number of nodes")]
    [InlineData("load 2", "not understood; the forms are 'pool NAME +N nodes'")]
    [InlineData("load x0", "'x0' is not a positive factor")]
    [InlineData("queue q weight -1", "'-1' is not a positive weight")]
    [InlineData("checkpoint every soon", "checkpoint every soon")]
    public void BadChanges_SayWhatFormsThereAre(string text, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => WhatIf.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ChangesThatDoNotApply_NameThePools()
    {
        var unknown = Assert.Throws<ArgumentException>(() => WhatIf.Parse("pool tpu +1 nodes").Apply(Scenario()));
        Assert.Contains("the scenario has no pool 'tpu'; its pools are burst, cpu, gpu", unknown.Message, StringComparison.Ordinal);
        var tooMany = Assert.Throws<ArgumentException>(() => WhatIf.Parse("pool gpu -2 nodes").Apply(Scenario()));
        Assert.Contains("pool gpu has 2 node(s); it cannot lose 2", tooMany.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void JobHistory_BecomesAWorkload_WithTheRunTimesJobsHad()
    {
        var t0 = new DateTimeOffset(2026, 11, 1, 8, 0, 0, TimeSpan.Zero);
        JobInfo Info(long id, JobState state, double submit, double? start, double? end, double? walltime = null) => new()
        {
            Id = id,
            Name = $"j{id}",
            State = state,
            Queue = "default",
            Owner = "ana",
            Replicas = 2,
            Priority = 3,
            Preemptible = true,
            Resources = ResourceAmounts.From(new ResourceVector(2000, 4L << 30, 1)),
            WalltimeSeconds = walltime,
            SubmittedAt = t0.AddSeconds(submit),
            StartedAt = start is { } s ? t0.AddSeconds(s) : null,
            EndedAt = end is { } e ? t0.AddSeconds(e) : null,
        };
        var now = t0.AddSeconds(1000);
        var skipped = new Dictionary<string, int>();
        var jobs = JobHistory.ToSimJobs(
        [
            Info(1, JobState.Succeeded, 100, 110, 400),
            Info(2, JobState.Running, 200, 300, null, walltime: 3600),
            Info(3, JobState.Running, 250, 500, null),
            Info(4, JobState.Queued, 300, null, null, walltime: 60),
            Info(5, JobState.Queued, 310, null, null),
            Info(6, JobState.Cancelled, 320, null, null),
            Info(7, JobState.Succeeded, -5000, 0, 10), // before the window
        ], t0, now, skipped);
        Assert.Equal([(1L, 0.0, 290.0), (2, 100, 3600), (3, 150, 500), (4, 200, 60)], jobs.Select(j => (j.Id, j.Submit.TotalSeconds, j.Duration.TotalSeconds)));
        Assert.Equal(("j1", "ana", 3, 2, 1L, true), (jobs[0].Name!, jobs[0].User, jobs[0].Priority, jobs[0].Tasks, jobs[0].PerTask.Gpus, jobs[0].Preemptible));
        Assert.Equal(new Dictionary<string, int> { ["never ran and has no walltime"] = 1, ["ended before it ran"] = 1 }, skipped);

        // Written as a DL trace and read back, the jobs are the same.
        var text = new StringWriter();
        DlTraceReader.WriteCsv(text, jobs);
        var back = DlTraceReader.ReadCsv(new StringReader(text.ToString()));
        Assert.Equal(jobs.Select(j => (j.Id, j.Name, j.Submit, j.Duration, j.Tasks, j.PerTask, j.User, j.Priority, j.Preemptible, j.Estimate)),
            back.Select(j => (j.Id, j.Name, j.Submit, j.Duration, j.Tasks, j.PerTask, j.User, j.Priority, j.Preemptible, j.Estimate)));
    }
}
