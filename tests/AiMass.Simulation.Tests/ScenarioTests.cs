using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Simulation.Tests;

/// <summary>Scenario runs: hand-checked failures, checkpoints, pools and policies, and invariants on random workloads.</summary>
public sealed class ScenarioTests
{
    private static readonly long Gi = 1L << 30;

    private static NodeSpec GpuNode(string name, int gpus = 8, string pool = "gpu") =>
        new(name, pool, new ResourceVector(gpus * 8000, gpus * 64 * Gi, gpus)) { GpuModel = "A100" };

    private static SimJob Job(long id, double submit, double duration, int gpus, int tasks = 1) =>
        new(id, TimeSpan.FromSeconds(submit), TimeSpan.FromSeconds(duration), tasks, new ResourceVector(gpus * 4000, gpus * 16 * Gi, gpus)) { Preemptible = true };

    private static Scenario On(IReadOnlyList<NodeSpec> nodes, params SimJob[] jobs) => new()
    {
        Cluster = new ClusterSpec { Nodes = nodes, Policy = new SchedulerPolicy { Ordering = OrderingPolicy.Fifo, Backfill = BackfillPolicy.Easy } },
        Jobs = jobs,
    };

    private static ScenarioJobResult Of(ScenarioResult result, long id) => result.Jobs.Single(j => j.Job.Id == id);

    [Fact]
    public void ANodeFailure_KillsItsJob_WhichLosesTheWorkSinceItsLastCheckpoint_AndRestartsWhenTheNodeIsBack()
    {
        // One 1-GPU node; a 10 h job checkpoints every hour; the node fails at 2.5 h for 1 h. The job keeps 2 h of
        // work, loses 0.5 h, restarts at 3.5 h (after a 60 s restore) and ends at 3.5 h + 60 s + 8 h.
        var scenario = On([GpuNode("n1", gpus: 1)], Job(1, 0, 36_000, 1)) with
        {
            Failures = new FailureModel { Trace = [new NodeFailure("n1", TimeSpan.FromHours(2.5), TimeSpan.FromHours(1))] },
            Checkpoints = new CheckpointModel { Interval = TimeSpan.FromHours(1), RestoreTime = TimeSpan.FromSeconds(60) },
        };
        var result = ScenarioSimulator.Run(scenario);
        var job = Of(result, 1);
        Assert.Equal(0, job.Start);
        Assert.Equal((3.5 * 3600) + 60 + (8 * 3600), job.End);
        Assert.Equal([RunEnd.NodeFailed, RunEnd.Completed], job.Runs.Select(r => r.Ended));
        Assert.Equal(1, job.FailureKills);
        Assert.Equal(1800 + 60, job.LostSeconds); // half an hour of work, and the restore
        Assert.Equal(1, result.Summary.NodeFailures);
        Assert.Equal(1, result.Summary.JobsKilledByFailures);
        Assert.Equal((1800 + 60) / 3600.0, result.Summary.LostGpuHours, 9);

        // Without checkpoints it loses all 2.5 h and starts over.
        var none = Of(ScenarioSimulator.Run(scenario with { Checkpoints = new CheckpointModel() }), 1);
        Assert.Equal((3.5 * 3600) + 36_000, none.End);
        Assert.Equal(2.5 * 3600, none.LostSeconds);
    }

    [Fact]
    public void RandomFailures_AreDrawnFromTheSeed_AndTheSameSeedGivesTheSameRun()
    {
        var nodes = Enumerable.Range(1, 4).Select(i => GpuNode($"n{i}")).ToList();
        var jobs = new SyntheticWorkload { Jobs = 300, MeanInterarrival = TimeSpan.FromMinutes(5) }.Generate(new Random(3));
        var scenario = On(nodes, [.. jobs]) with
        {
            Seed = 11,
            Failures = new FailureModel { Pools = [new PoolFailures("gpu", new Distribution(DistributionKind.Weibull, TimeSpan.FromDays(2), 0.7), Distribution.Exponential(TimeSpan.FromHours(2)))] },
            Checkpoints = new CheckpointModel { Interval = TimeSpan.FromMinutes(30) },
        };
        var a = ScenarioSimulator.Run(scenario);
        var b = ScenarioSimulator.Run(scenario);
        var c = ScenarioSimulator.Run(scenario with { Seed = 12 });
        Assert.True(a.Summary.NodeFailures > 0, "a 2-day MTBF over days of work must fail some nodes");
        Assert.Equal(300, a.Summary.Jobs);
        Assert.Equal(Fingerprint(a), Fingerprint(b));
        Assert.Equal(a.Summary, b.Summary);
        Assert.NotEqual(Fingerprint(a), Fingerprint(c));
        // Every run that ended in a failure ended on a failed node, and lost work is what the runs say.
        Assert.Equal(a.Summary.JobsKilledByFailures, a.Jobs.Sum(j => j.Runs.Count(r => r.Ended == RunEnd.NodeFailed)));
    }

    private static string Fingerprint(ScenarioResult r) => string.Join(";", r.Jobs.Select(j => $"{j.Job.Id}:{j.Start}-{j.End}:{j.Restarts}"));

    [Fact]
    public void ADynamicPool_ProvisionsANodeAfterItsDelay_AndReleasesItWhenIdle()
    {
        var pool = new PoolSpec("burst", PoolKind.Dynamic) { MaxNodes = 2, IdleTimeout = TimeSpan.FromMinutes(30), Template = GpuNode("t", gpus: 4, pool: "burst") };
        var scenario = new Scenario
        {
            Cluster = new ClusterSpec { Pools = [pool], ProvisioningDelays = new Dictionary<string, TimeSpan> { ["burst"] = TimeSpan.FromMinutes(10) } },
            Jobs = [Job(1, 0, 3600, 4), Job(2, 10_800, 600, 4)],
        };
        var result = ScenarioSimulator.Run(scenario);
        Assert.Equal((600.0, 4200.0), (Of(result, 1).Start!.Value, Of(result, 1).End!.Value));
        // The node idles from 4200 and is released 30 min later; job 2 needs a new one, ready 10 min after it asks.
        Assert.Contains(result.Series, s => s.Time == 4200 + 1800 && s.UpGpus == 0);
        Assert.Equal((11_400.0, 12_000.0), (Of(result, 2).Start!.Value, Of(result, 2).End!.Value));
        Assert.Equal(2, result.Summary.NodesProvisioned);
        Assert.Equal(4, result.Series.Max(s => s.UpGpus));
    }

    [Fact]
    public void LeastAttainedService_LetsAShortJobPreemptALongOneThatHasHadItsShare()
    {
        // One GPU. The long job has attained 30 GPU-minutes (the first threshold) by 30 min and drops to the second
        // queue; a 10-minute job arriving at 1 h preempts it (the long one saves a checkpoint and resumes later).
        var scenario = On([GpuNode("n1", gpus: 1)], Job(1, 0, 36_000, 1), Job(2, 3600, 600, 1)) with
        {
            Las = new LasOptions { Thresholds = [1800] },
        };
        var las = ScenarioSimulator.Run(scenario, SimulationPolicy.Parse("las"));
        Assert.Equal(3600, Of(las, 2).Start);
        Assert.Equal(4200, Of(las, 2).End);
        Assert.Equal(1, Of(las, 1).Preemptions);
        Assert.Equal(36_000 + 600, Of(las, 1).End); // no work lost: it checkpointed when told to stop
        Assert.Equal(1, las.Summary.Preemptions);

        // FIFO lets the short job wait for the long one.
        var fifo = ScenarioSimulator.Run(scenario, SimulationPolicy.Parse("fcfs"));
        Assert.Equal(36_000, Of(fifo, 2).Start);
        Assert.Equal(0, fifo.Summary.Preemptions);

        // Arriving before the long job has had its share, the short job waits: both are in the first queue.
        var early = ScenarioSimulator.Run(scenario with { Jobs = [Job(1, 0, 36_000, 1), Job(2, 600, 600, 1)] }, SimulationPolicy.Parse("las"));
        Assert.Equal(1800, Of(early, 2).Start); // the long job was demoted at 30 min, then preempted
    }

    [Fact]
    public void LeastAttainedService_PromotesAStarvedJobBackToTheFirstQueue()
    {
        // One GPU, threshold 30 GPU-min, promotion after waiting 2x the last run. Job 1 is demoted at 30 min and
        // preempted by job 2, which arrives then. Job 2 is demoted at 1 h. Job 1, having waited 2 x 30 min, is
        // promoted at 1.5 h and preempts job 2; it is demoted at 2 h but nothing waiting outranks it any more, so it
        // ends at 3 h; job 2 then resumes.
        var scenario = On([GpuNode("n1", gpus: 1)], Job(1, 0, 7200, 1), Job(2, 1800, 18_000, 1)) with
        {
            Las = new LasOptions { Thresholds = [1800], StarvationFactor = 2 },
        };
        var result = ScenarioSimulator.Run(scenario, SimulationPolicy.Parse("las"));
        Assert.Equal([(0.0, 1800.0, RunEnd.Preempted), (5400, 10_800, RunEnd.Completed)], Of(result, 1).Runs.Select(r => (r.Start, r.End, r.Ended)));
        Assert.Equal([(1800.0, 5400.0, RunEnd.Preempted), (10_800, 25_200, RunEnd.Completed)], Of(result, 2).Runs.Select(r => (r.Start, r.End, r.Ended)));
        Assert.Equal(2, result.Summary.Preemptions);

        // Without promotion job 1 waits for the whole of job 2.
        var starved = ScenarioSimulator.Run(scenario with { Las = new LasOptions { Thresholds = [1800] } }, SimulationPolicy.Parse("las"));
        Assert.Equal([(0.0, 1800.0), (19_800, 25_200)], Of(starved, 1).Runs.Select(r => (r.Start, r.End)));
    }

    [Fact]
    public void ShortestJobFirst_RunsTheShortestEstimateFirst()
    {
        var nodes = new[] { GpuNode("n1", gpus: 1) };
        SimJob Estimated(long id, double submit, double run) => Job(id, submit, run, 1) with { Estimate = TimeSpan.FromSeconds(run) };
        var scenario = On(nodes, Estimated(1, 0, 100), Estimated(2, 1, 50), Estimated(3, 2, 10));
        var sjf = ScenarioSimulator.Run(scenario, SimulationPolicy.Parse("sjf+nopreempt"));
        Assert.Equal([0.0, 110, 100], sjf.Jobs.Select(j => j.Start!.Value));
        var fifo = ScenarioSimulator.Run(scenario, SimulationPolicy.Parse("fcfs"));
        Assert.Equal([0.0, 100, 150], fifo.Jobs.Select(j => j.Start!.Value));
    }

    [Fact]
    public void AJobBiggerThanANode_RunsAsAGangOfEqualTasks_OnDistinctNodes_AndOneBiggerThanTheClusterIsSkipped()
    {
        var scenario = On([GpuNode("n1"), GpuNode("n2"), GpuNode("n3")], Job(1, 0, 100, 16), Job(2, 0, 100, 12), Job(3, 0, 100, 64));
        var result = ScenarioSimulator.Run(scenario);
        Assert.Equal(2, Of(result, 1).Job.Tasks);
        Assert.Equal(8, Of(result, 1).Job.PerTask.Gpus);
        Assert.Equal(2, Of(result, 1).Runs[0].Nodes.Distinct().Count());
        Assert.Equal(2, Of(result, 2).Job.Tasks); // 12 = 2 x 6
        Assert.DoesNotContain(result.Jobs, j => j.Job.Id == 3);
        var skip = Assert.Single(result.Skipped);
        Assert.Equal(1, skip.Value);
        Assert.StartsWith("the job needs 8 tasks of ", skip.Key, StringComparison.Ordinal);
        Assert.EndsWith("the matching nodes can hold at most 3", skip.Key, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, "fcfs")]
    [InlineData(2, "easy")]
    [InlineData(3, "conservative")]
    [InlineData(4, "drf+easy+spread")]
    [InlineData(5, "sjf+easy")]
    [InlineData(6, "las")]
    public void Invariants_HoldOnRandomWorkloads(int seed, string policy)
    {
        var nodes = Enumerable.Range(1, 6).Select(i => GpuNode($"n{i}", gpus: i % 2 == 0 ? 8 : 4)).ToList();
        var jobs = new SyntheticWorkload
        {
            Jobs = 400,
            MeanInterarrival = TimeSpan.FromMinutes(4),
            EstimateFactor = 2,
            GpuMix = [new(1, 0.5), new(2, 0.2), new(4, 0.15), new(8, 0.1), new(16, 0.05)],
            Queues = [new("a", 1), new("b", 2)],
        }.Generate(new Random(seed));
        var scenario = On(nodes, [.. jobs]) with { Seed = seed };
        var result = ScenarioSimulator.Run(scenario, SimulationPolicy.Parse(policy));
        Assert.Equal(400, result.Summary.Jobs + result.Skipped.Values.Sum());

        // No node is ever over-allocated: sweep every run's allocation over time, per node.
        var capacity = nodes.ToDictionary(n => n.Name, n => n.Capacity);
        foreach (var (node, changes) in result.Jobs
            .SelectMany(j => j.Runs.SelectMany(r => r.Nodes.Select(n => (Node: n, r.Start, r.End, j.Job.PerTask))))
            .GroupBy(x => x.Node)
            .Select(g => (g.Key, g.SelectMany(x => new[] { (x.Start, 1, x.PerTask), (x.End, -1, x.PerTask) }).OrderBy(c => c.Item1).ThenBy(c => c.Item2).ToList())))
        {
            var held = ResourceVector.Zero;
            foreach (var (_, sign, need) in changes)
            {
                held = sign > 0 ? held + need : held - need;
                Assert.True(held.FitsIn(capacity[node]), $"{policy}: node {node} over-allocated: {held} > {capacity[node]}");
            }
        }

        // Gangs start together on as many nodes as tasks; every job's work is done exactly once (no failures).
        foreach (var j in result.Jobs)
        {
            Assert.All(j.Runs, r => Assert.Equal(j.Job.Tasks, r.Nodes.Count));
            var computed = j.Runs.Sum(r => r.End - r.Start);
            Assert.Equal(j.Job.Duration.TotalSeconds, computed, 3); // preempted runs checkpoint: their time counts
        }
        // Busy core-seconds equal the sum of the jobs' work.
        Assert.Equal(result.Jobs.Sum(j => j.Job.Duration.TotalSeconds * j.Job.CpuMillis / 1000.0) / 3600, result.Summary.BusyCpuHours, 6);

        if (policy == "fcfs")
        {
            // Strict FIFO: a job never starts before one submitted earlier.
            var ordered = result.Jobs.OrderBy(j => j.Job.Submit).ThenBy(j => j.Job.Id).Select(j => j.Start!.Value).ToList();
            Assert.Equal(ordered.Order(), ordered);
        }
    }
}
