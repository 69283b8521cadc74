namespace AiMass.Scheduling.Tests;

public sealed class PolicyTests
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    [Fact]
    public void Gang_TwoTasks_WaitsUntilTwoNodesAreFree_ThenBothStartTogether()
    {
        var c = new TestCluster();
        c.Node("n1", 4);
        c.Node("n2", 4);
        c.Run(c.Job(1, cpu: 4, walltime: Hour));
        c.Run(c.Job(2, cpu: 4, walltime: 2 * Hour));
        var gang = c.Submit(c.Job(3, cpu: 4, tasks: 2, walltime: Hour));

        Assert.Empty(c.Scheduler.Schedule().Started);
        c.Scheduler.Release(1);
        var onePass = c.Scheduler.Schedule();
        Assert.Empty(onePass.Started);
        Assert.Equal(JobPhase.Pending, c.Phase(gang.Id));
        // No partial allocation: the node that is free stays free (reserved for the gang, not held by it).
        Assert.True(c.Scheduler.GetNode("n1")!.Allocated.IsZero);

        c.Scheduler.Release(2);
        var pass = c.Scheduler.Schedule();
        var start = Assert.Single(pass.Started);
        Assert.Equal(gang.Id, start.JobId);
        Assert.Equal(["n1", "n2"], start.Tasks.Select(t => t.Node).Order());
        Assert.Equal([0, 1], start.Tasks.Select(t => t.TaskIndex));
    }

    [Fact]
    public void Gang_NeverPlacesPartOfItself_EvenWhenOneTaskFits()
    {
        var c = new TestCluster(new SchedulerPolicy { Backfill = BackfillPolicy.None });
        c.Node("n1", 8);
        c.Run(c.Job(1, cpu: 6, walltime: Hour));
        c.Submit(c.Job(2, cpu: 2, tasks: 2, walltime: Hour));
        var pass = c.Scheduler.Schedule();
        Assert.Empty(pass.Started);
        Assert.Equal(TestCluster.Res(6, 1), c.Scheduler.GetNode("n1")!.Allocated);
    }

    [Fact]
    public void Easy_BackfillsShortJobBeforeTheReservation_RefusesOneThatWouldDelayIt()
    {
        var c = new TestCluster(new SchedulerPolicy { Backfill = BackfillPolicy.Easy });
        c.Node("n1", 8);
        c.Run(c.Job(1, cpu: 6, walltime: Hour));             // ends at T+1h
        var head = c.Submit(c.Job(2, cpu: 8, walltime: Hour));  // needs the whole node: reserved from T+1h
        var longJob = c.Submit(c.Job(3, cpu: 2, walltime: 2 * Hour));
        var shortJob = c.Submit(c.Job(4, cpu: 2, walltime: TimeSpan.FromMinutes(30)));

        var pass = c.Scheduler.Schedule();

        Assert.Equal([shortJob.Id], TestCluster.StartedIds(pass));
        var headView = c.View(head.Id);
        Assert.Equal(c.View(1).StartedAt!.Value + Hour, headView.ExpectedStart);
        Assert.Contains("reserved to start by", headView.PendingReason, StringComparison.Ordinal);
        Assert.Contains("delay a reserved job", c.View(longJob.Id).PendingReason, StringComparison.Ordinal);
        Assert.Contains(pass.Events, e => e.Kind == "reserved" && e.JobId == head.Id);
    }

    [Fact]
    public void Easy_BackfillsALongJobOnANodeTheReservationDoesNotUse()
    {
        var c = new TestCluster(new SchedulerPolicy { Backfill = BackfillPolicy.Easy });
        c.Node("a1", 4, labels: ("rack", "a"));
        c.Node("b1", 4, labels: ("rack", "b"));
        c.Run(c.Job(1, cpu: 4, walltime: Hour, selector: ("rack", "a")));
        c.Submit(c.Job(2, cpu: 4, walltime: Hour, selector: ("rack", "a")));  // reserved on a1 from T+1h
        var longJob = c.Submit(c.Job(3, cpu: 4, walltime: 10 * Hour));     // fits now on b1 only
        Assert.Equal([longJob.Id], TestCluster.StartedIds(c.Scheduler.Schedule()));
        Assert.Equal("b1", c.View(longJob.Id).Placement.Single().Node);
    }

    [Theory]
    [InlineData(BackfillPolicy.Easy, true)]
    [InlineData(BackfillPolicy.Conservative, false)]
    public void Conservative_ProtectsEveryReservation_EasyOnlyTheFirst(BackfillPolicy backfill, bool laterJobStarts)
    {
        var c = new TestCluster(new SchedulerPolicy { Backfill = backfill });
        c.Node("a1", 4, labels: ("rack", "a"));
        c.Node("b1", 4, labels: ("rack", "b"));
        c.Run(c.Job(1, cpu: 4, walltime: Hour, selector: ("rack", "a")));    // a1 busy until T+1h
        var first = c.Submit(c.Job(2, cpu: 4, walltime: Hour, selector: ("rack", "a"))); // reserved a1 [1h, 2h)
        var second = c.Submit(c.Job(3, cpu: 4, tasks: 2, walltime: Hour));  // needs a1 and b1: earliest T+2h
        var later = c.Submit(c.Job(4, cpu: 4, walltime: 3 * Hour));         // fits on b1 now, holds it past T+2h

        var pass = c.Scheduler.Schedule();

        Assert.NotNull(c.View(first.Id).ExpectedStart);
        Assert.Equal(laterJobStarts, pass.Started.Any(s => s.JobId == later.Id));
        if (backfill == BackfillPolicy.Conservative)
        {
            Assert.Equal(c.View(1).StartedAt!.Value + 2 * Hour, c.View(second.Id).ExpectedStart);
        }
        else
        {
            Assert.Null(c.View(second.Id).ExpectedStart);
        }
    }

    [Fact]
    public void Strict_NothingPassesTheHeadJob()
    {
        var c = new TestCluster(new SchedulerPolicy { Backfill = BackfillPolicy.None, Ordering = OrderingPolicy.Fifo });
        c.Node("n1", 8);
        c.Run(c.Job(1, cpu: 6, walltime: Hour));
        var head = c.Submit(c.Job(2, cpu: 8));
        var small = c.Submit(c.Job(3, cpu: 1, walltime: TimeSpan.FromMinutes(1)));
        Assert.Empty(c.Scheduler.Schedule().Started);
        Assert.Contains($"behind job {head.Id}", c.View(small.Id).PendingReason, StringComparison.Ordinal);
    }

    [Fact]
    public void Fifo_IgnoresPriority_PriorityOrderingDoesNot()
    {
        foreach (var (ordering, expected) in new[] { (OrderingPolicy.Fifo, 1L), (OrderingPolicy.Priority, 2L) })
        {
            var c = new TestCluster(new SchedulerPolicy { Ordering = ordering, Backfill = BackfillPolicy.None });
            c.Node("n1", 4);
            c.Submit(c.Job(1, cpu: 4, priority: 0));
            c.Submit(c.Job(2, cpu: 4, priority: 5));
            Assert.Equal([expected], TestCluster.StartedIds(c.Scheduler.Schedule()));
        }
    }

    [Fact]
    public void ShortestFirst_TakesTheShortestWalltime_UnknownCountsAsTheDefault_AndPriorityBreaksTies()
    {
        var c = new TestCluster(new SchedulerPolicy { Ordering = OrderingPolicy.ShortestFirst, Backfill = BackfillPolicy.None, UnknownWalltime = TimeSpan.FromHours(2) });
        c.Node("n1", 4);
        c.Submit(c.Job(1, cpu: 4, walltime: TimeSpan.FromHours(3)));
        c.Submit(c.Job(2, cpu: 4));
        c.Submit(c.Job(3, cpu: 4, walltime: TimeSpan.FromMinutes(30)));
        c.Submit(c.Job(4, cpu: 4, walltime: TimeSpan.FromMinutes(30), priority: 1));
        var order = new List<long>();
        for (var i = 0; i < 4; i++)
        {
            var started = Assert.Single(c.Scheduler.Schedule().Started);
            order.Add(started.JobId);
            c.Scheduler.Release(started.JobId);
        }
        Assert.Equal([4L, 3, 2, 1], order);
    }

    [Fact]
    public void SetPriority_ReordersAPendingJob_AndLetsAHigherOnePreemptARunningOne()
    {
        var c = new TestCluster(new SchedulerPolicy { Ordering = OrderingPolicy.Priority, Backfill = BackfillPolicy.None, Preemption = true });
        c.Node("n1", 4);
        c.Run(c.Job(1, cpu: 4, priority: 5, preemptible: true));
        c.Submit(c.Job(2, cpu: 4, priority: 1));
        Assert.Empty(c.Scheduler.Schedule().Preemptions);
        Assert.True(c.Scheduler.SetPriority(1, 0));
        var pass = c.Scheduler.Schedule();
        Assert.Equal((1L, 2L), (Assert.Single(pass.Preemptions).VictimId, pass.Preemptions[0].PreemptorId));
        Assert.False(c.Scheduler.SetPriority(99, 1));
    }

    [Fact]
    public void FairShare_DrfExample_ConvergesToEqualDominantShares()
    {
        // The DRF paper's example: 9 CPUs and 18 GB; A's tasks need <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>.
        // DRF gives A three tasks and B two, so both hold a dominant share of 2/3.
        var c = new TestCluster(new SchedulerPolicy { Ordering = OrderingPolicy.FairShare });
        c.Node("n1", 9, memGi: 18);
        for (var i = 0; i < 10; i++)
        {
            c.Submit(c.Job(100 + i, cpu: 1, memGi: 4, owner: "a", walltime: Hour));
            c.Submit(c.Job(200 + i, cpu: 3, memGi: 1, owner: "b", walltime: Hour));
        }
        var pass = c.Scheduler.Schedule();
        Assert.Equal(3, pass.Started.Count(s => s.JobId < 200));
        Assert.Equal(2, pass.Started.Count(s => s.JobId >= 200));
        Assert.Equal(2.0 / 3, c.Scheduler.OwnerShare("a"), 6);
        Assert.Equal(2.0 / 3, c.Scheduler.OwnerShare("b"), 6);
    }

    [Fact]
    public void FairShare_ManyOwners_DominantSharesDifferByLessThanOneTask()
    {
        var c = new TestCluster(new SchedulerPolicy { Ordering = OrderingPolicy.FairShare });
        for (var n = 0; n < 8; n++)
        {
            c.Node($"n{n}", 32, memGi: 128, gpu: 4);
        }
        var shapes = new (string Owner, double Cpu, double Mem, long Gpu)[]
        {
            ("cpu-heavy", 4, 4, 0), ("mem-heavy", 1, 16, 0), ("gpu-heavy", 2, 8, 1), ("balanced", 2, 8, 0),
        };
        var id = 1;
        for (var round = 0; round < 60; round++)
        {
            foreach (var s in shapes)
            {
                c.Submit(c.Job(id++, cpu: s.Cpu, memGi: s.Mem, gpu: s.Gpu, owner: s.Owner, walltime: Hour));
            }
        }
        c.Scheduler.Schedule();
        var shares = shapes.Select(s => c.Scheduler.OwnerShare(s.Owner)).ToArray();
        // The largest dominant share of one task is one GPU of 32 (3.1 %): shares may differ by about that much.
        Assert.True(shares.Max() - shares.Min() <= 1.0 / 32 + 1e-9, $"shares {string.Join(", ", shares)}");
        // CPUs are the bottleneck here: DRF stops when they run out, not earlier.
        var cpuUsed = c.Scheduler.Nodes.Sum(n => n.Allocated.CpuMillis) / (double)c.Scheduler.UpCapacity.CpuMillis;
        Assert.True(cpuUsed > 0.95, $"CPUs used {cpuUsed:P1}, shares {string.Join(", ", shares)}");
    }

    [Fact]
    public void FairShare_QueueWeights_GiveProportionalShares()
    {
        var c = new TestCluster(new SchedulerPolicy { Ordering = OrderingPolicy.FairShare });
        c.Scheduler.AddQueue(new QueueSpec("research") { Weight = 1 });
        c.Scheduler.AddQueue(new QueueSpec("production") { Weight = 2 });
        c.Node("n1", 12, memGi: 96);
        for (var i = 0; i < 12; i++)
        {
            c.Submit(c.Job(i + 1, cpu: 1, queue: "research", owner: "r", walltime: Hour));
            c.Submit(c.Job(i + 101, cpu: 1, queue: "production", owner: "p", walltime: Hour));
        }
        c.Scheduler.Schedule();
        var queues = c.Scheduler.Queues.ToDictionary(q => q.Spec.Name);
        Assert.Equal(4000, queues["research"].Allocated.CpuMillis);
        Assert.Equal(8000, queues["production"].Allocated.CpuMillis);
    }

    [Fact]
    public void Placement_BinPackFillsOneNode_SpreadUsesBoth()
    {
        foreach (var (strategy, distinct) in new[] { (PlacementStrategy.BinPack, 1), (PlacementStrategy.Spread, 2) })
        {
            var c = new TestCluster(new SchedulerPolicy { Placement = strategy });
            c.Node("n1", 8);
            c.Node("n2", 8);
            c.Run(c.Job(1, cpu: 2));
            c.Run(c.Job(2, cpu: 2));
            Assert.Equal(distinct, c.Scheduler.Jobs.SelectMany(j => j.Placement).Select(p => p.Node).Distinct().Count());
        }
    }

    [Fact]
    public void Placement_CpuOnlyJobsKeepOffGpuNodes()
    {
        var c = new TestCluster();
        c.Node("gpu1", 32, gpu: 4);
        c.Node("cpu1", 8);
        Assert.Equal("cpu1", c.Run(c.Job(1, cpu: 2)).Tasks.Single().Node);
        Assert.Equal("gpu1", c.Run(c.Job(2, cpu: 2, gpu: 1)).Tasks.Single().Node);
    }

    [Fact]
    public void NodeSelector_MatchesLabelsPoolAndGpuModel()
    {
        var c = new TestCluster();
        c.Scheduler.AddNode(new NodeSpec("v100", "old", TestCluster.Res(16, 64, 4)) { GpuModel = "V100" });
        c.Scheduler.AddNode(new NodeSpec("a100", "new", TestCluster.Res(16, 64, 4)) { GpuModel = "A100", GpuMemoryBytes = 80L << 30 });
        Assert.Equal("a100", c.Run(c.Job(1, cpu: 1, gpu: 1, selector: [("gpu_model", "A100"), ("gpu_memory", "80Gi")])).Tasks.Single().Node);
        Assert.Equal("v100", c.Run(c.Job(2, cpu: 1, gpu: 1, selector: ("pool", "old"))).Tasks.Single().Node);
        var ex = Assert.Throws<SchedulingException>(() => c.Scheduler.Submit(c.Job(3, cpu: 1, selector: ("gpu_model", "H100"))));
        Assert.Contains("gpu_model=H100", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Draining_NodeTakesNothingNew_ButKeepsItsWork()
    {
        var c = new TestCluster();
        c.Node("n1", 4);
        c.Node("n2", 4);
        var first = c.Run(c.Job(1, cpu: 4));
        var drained = first.Tasks.Single().Node;
        c.Scheduler.SetNodeState(drained == "n1" ? "n2" : "n1", NodeState.Draining, "maintenance");
        c.Submit(c.Job(2, cpu: 1));
        Assert.Empty(c.Scheduler.Schedule().Started);
        Assert.Equal(JobPhase.Running, c.Phase(1));
    }

    [Fact]
    public void NodeDown_JobsOnItTerminate_AndRunElsewhereAfterRequeue()
    {
        var c = new TestCluster(new SchedulerPolicy { Placement = PlacementStrategy.Spread });
        c.Node("n1", 4);
        c.Node("n2", 4);
        var gang = c.Run(c.Job(1, cpu: 2, tasks: 2));
        Assert.Equal(2, gang.Tasks.Select(t => t.Node).Distinct().Count());
        var affected = c.Scheduler.SetNodeState("n1", NodeState.Down, "heartbeat lost");
        Assert.Equal([1L], affected);
        Assert.Equal(JobPhase.Terminating, c.Phase(1));
        c.Scheduler.Requeue(1, "node n1 failed");
        var pass = c.Scheduler.Schedule();
        Assert.Equal(["n2", "n2"], Assert.Single(pass.Started).Tasks.Select(t => t.Node));
        Assert.Contains(pass.Events, e => e.Kind == "node_lost" && e.JobId == 1);
    }

    [Fact]
    public void Submit_JobThatCanNeverRun_IsRefusedWithTheReason()
    {
        var c = new TestCluster();
        c.Node("n1", 8, memGi: 32, gpu: 1);
        var tooBig = Assert.Throws<SchedulingException>(() => c.Scheduler.Submit(c.Job(1, cpu: 2, gpu: 2)));
        Assert.Contains("gpu=2", tooBig.Message, StringComparison.Ordinal);
        Assert.Contains("largest matching node offers", tooBig.Message, StringComparison.Ordinal);
        var tooMany = Assert.Throws<SchedulingException>(() => c.Scheduler.Submit(c.Job(2, cpu: 4, tasks: 3)));
        Assert.Contains("at most 2", tooMany.Message, StringComparison.Ordinal);
        var queue = Assert.Throws<SchedulingException>(() => c.Scheduler.Submit(c.Job(3, cpu: 1, queue: "nope")));
        Assert.Equal("queue", queue.Field);
        Assert.Contains("queues: default", queue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Restore_PutsARunningJobBack_AndRefusesOneThatNoLongerFits()
    {
        var c = new TestCluster();
        c.Node("n1", 4);
        var job = c.Job(7, cpu: 3);
        c.Scheduler.Restore(job, ["n1"], c.T0);
        Assert.Equal(JobPhase.Running, c.Phase(7));
        Assert.Throws<SchedulingException>(() => c.Scheduler.Restore(c.Job(8, cpu: 3), ["n1"], c.T0));
        Assert.Null(c.Scheduler.GetJob(8));
    }
}
