namespace AiMass.Scheduling.Tests;

public sealed class PreemptionTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    [Fact]
    public void Preemption_FreesExactlyEnough_AndSparesWhatIsNotNeeded()
    {
        var c = new TestCluster(new SchedulerPolicy { PreemptionGrace = Grace });
        c.Node("n1", 8);
        c.Node("n2", 8);
        c.Run(c.Job(1, cpu: 6, preemptible: true, selector: ("node", "n1")));  // oldest
        c.Run(c.Job(2, cpu: 2, preemptible: true, selector: ("node", "n1")));
        c.Run(c.Job(3, cpu: 4, preemptible: false, selector: ("node", "n2")));
        c.Run(c.Job(4, cpu: 4, priority: 50, preemptible: true, selector: ("node", "n2")));  // not lower than the preemptor
        var high = c.Submit(c.Job(10, cpu: 4, priority: 10));

        var pass = c.Scheduler.Schedule();

        // Youngest first would take job 2 (2 CPUs) then job 1 (6 CPUs); job 1 alone frees enough, so job 2 is spared.
        var preemption = Assert.Single(pass.Preemptions);
        Assert.Equal(1, preemption.VictimId);
        Assert.Equal(high.Id, preemption.PreemptorId);
        Assert.Equal(c.Time.GetUtcNow() + Grace, preemption.KillDeadline);
        Assert.Equal(JobPhase.Terminating, c.Phase(1));
        Assert.Equal(JobPhase.Running, c.Phase(2));
        Assert.Empty(pass.Started);
        Assert.Contains("preempted", c.View(high.Id).PendingReason, StringComparison.Ordinal);
    }

    [Fact]
    public void Preemption_FreedResourcesGoToThePreemptor_NotToJobsThatArriveMeanwhile()
    {
        var c = new TestCluster(new SchedulerPolicy { PreemptionGrace = Grace, Ordering = OrderingPolicy.Fifo });
        c.Node("n1", 8);
        c.Run(c.Job(1, cpu: 8, preemptible: true));
        var high = c.Submit(c.Job(2, cpu: 8, priority: 10));
        Assert.Single(c.Scheduler.Schedule().Preemptions);

        // A job submitted while the victim shuts down comes later in FIFO order, and must not take the node.
        var other = c.Submit(c.Job(3, cpu: 1, priority: 0, walltime: TimeSpan.FromMinutes(1)));
        Assert.Empty(c.Scheduler.Schedule().Started);

        c.Time.Advance(Grace);
        c.Scheduler.Requeue(1, "preempted");
        var pass = c.Scheduler.Schedule();
        Assert.Equal([high.Id], TestCluster.StartedIds(pass));
        Assert.Equal(JobPhase.Pending, c.Phase(other.Id));
        Assert.Equal(JobPhase.Pending, c.Phase(1));
        Assert.Contains(pass.Events, e => e.Kind == "started" && e.Message.Contains("preemption", StringComparison.Ordinal));
    }

    [Fact]
    public void Preemption_GangVictim_IsStoppedWhole_AndOnlyIfItHelps()
    {
        var c = new TestCluster(new SchedulerPolicy { Placement = PlacementStrategy.Spread });
        c.Node("n1", 4);
        c.Node("n2", 4);
        c.Run(c.Job(1, cpu: 4, tasks: 2, preemptible: true));
        // A task larger than any node is refused at submission, so it never preempts anything.
        Assert.Throws<SchedulingException>(() => c.Scheduler.Submit(c.Job(2, cpu: 8, priority: 5)));
        Assert.Empty(c.Scheduler.Schedule().Preemptions);

        c.Submit(c.Job(3, cpu: 4, priority: 5));
        var pass = c.Scheduler.Schedule();
        Assert.Equal(1, Assert.Single(pass.Preemptions).VictimId);
        Assert.Equal(JobPhase.Terminating, c.Phase(1));
    }

    [Fact]
    public void Preemption_NeverTakesNonPreemptibleOrEqualPriorityJobs()
    {
        var c = new TestCluster();
        c.Node("n1", 4);
        c.Run(c.Job(1, cpu: 2, priority: 5, preemptible: true));
        c.Run(c.Job(2, cpu: 2, preemptible: false));
        c.Submit(c.Job(3, cpu: 4, priority: 5));
        Assert.Empty(c.Scheduler.Schedule().Preemptions);
    }

    [Fact]
    public void Preemption_Off_NothingIsPreempted()
    {
        var c = new TestCluster(new SchedulerPolicy { Preemption = false });
        c.Node("n1", 4);
        c.Run(c.Job(1, cpu: 4, preemptible: true));
        c.Submit(c.Job(2, cpu: 4, priority: 100));
        Assert.Empty(c.Scheduler.Schedule().Preemptions);
    }

    [Fact]
    public void Claim_Lapses_WhenTheVictimsAreNotFreedInTime()
    {
        var c = new TestCluster(new SchedulerPolicy { PreemptionGrace = Grace });
        c.Node("n1", 4);
        c.Run(c.Job(1, cpu: 4, preemptible: true));
        c.Submit(c.Job(2, cpu: 4, priority: 9));
        Assert.Single(c.Scheduler.Schedule().Preemptions);
        c.Time.Advance(TimeSpan.FromMinutes(5));
        var pass = c.Scheduler.Schedule();
        Assert.Contains(pass.Events, e => e.Kind == "claim_expired" && e.JobId == 2);
    }
}
