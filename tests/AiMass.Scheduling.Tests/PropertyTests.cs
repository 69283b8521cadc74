using AiMass.Resources;

namespace AiMass.Scheduling.Tests;

/// <summary>Random workloads driven through many passes, with the invariants checked after every step.</summary>
public sealed class PropertyTests
{
    public static TheoryData<int, OrderingPolicy, BackfillPolicy, PlacementStrategy> Cases()
    {
        var data = new TheoryData<int, OrderingPolicy, BackfillPolicy, PlacementStrategy>();
        var seed = 1;
        foreach (var ordering in Enum.GetValues<OrderingPolicy>())
        {
            foreach (var backfill in Enum.GetValues<BackfillPolicy>())
            {
                data.Add(seed++, ordering, backfill, seed % 2 == 0 ? PlacementStrategy.BinPack : PlacementStrategy.Spread);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RandomWorkload_NoAllocationEverExceedsCapacity(int seed, OrderingPolicy ordering, BackfillPolicy backfill, PlacementStrategy placement)
    {
        var random = new Random(seed);
        var c = new TestCluster(new SchedulerPolicy
        {
            Ordering = ordering,
            Backfill = backfill,
            Placement = placement,
            PreemptionGrace = TimeSpan.FromMinutes(1),
            MaxReservations = 20,
        });
        c.Scheduler.AddQueue(new QueueSpec("batch") { Weight = 2 });
        for (var i = 0; i < 6; i++)
        {
            c.Node($"n{i}", random.Next(4, 17), memGi: random.Next(16, 65), gpu: random.Next(0, 3), labels: ("rack", i % 2 == 0 ? "a" : "b"));
        }
        c.Scheduler.AddPool(new PoolSpec("burst", PoolKind.Dynamic)
        {
            MinNodes = 0,
            MaxNodes = 3,
            IdleTimeout = TimeSpan.FromMinutes(20),
            Template = new NodeSpec("t", "burst", TestCluster.Res(8, 32, 1)),
        });

        var nextId = 1L;
        var ends = new Dictionary<long, DateTimeOffset>();   // when a running job finishes by itself
        var kills = new Dictionary<long, DateTimeOffset>();  // when a preempted job is requeued
        var provisioning = new List<string>();
        var started = 0;
        for (var step = 0; step < 300; step++)
        {
            // Arrivals.
            for (var k = random.Next(0, 4); k > 0; k--)
            {
                var job = c.Job(nextId++,
                    cpu: random.Next(1, 9) / 2.0,
                    tasks: random.Next(0, 4) == 0 ? random.Next(2, 5) : 1,
                    memGi: random.Next(1, 9),
                    gpu: random.Next(0, 5) == 0 ? 1 : 0,
                    priority: random.Next(0, 4),
                    walltime: random.Next(0, 6) == 0 ? null : TimeSpan.FromMinutes(random.Next(5, 240)),
                    owner: $"user{random.Next(0, 4)}",
                    queue: random.Next(0, 3) == 0 ? "batch" : "default",
                    preemptible: random.Next(0, 3) == 0,
                    selector: random.Next(0, 6) == 0 ? [("rack", random.Next(0, 2) == 0 ? "a" : "b")] : []);
                try
                {
                    c.Scheduler.Submit(job);
                }
                catch (SchedulingException)
                {
                    // A gang too large for its racks: refused, as it must be.
                }
            }

            // Time passes; jobs end, preempted jobs are killed, nodes fail and come back, provisioned nodes arrive.
            c.Time.Advance(TimeSpan.FromMinutes(random.Next(0, 30)));
            var now = c.Time.GetUtcNow();
            foreach (var (id, end) in ends.Where(e => e.Value <= now).ToList())
            {
                Assert.True(c.Scheduler.Release(id));
                ends.Remove(id);
            }
            foreach (var (id, at) in kills.Where(e => e.Value <= now).ToList())
            {
                Assert.True(c.Scheduler.Requeue(id, "preempted"));
                kills.Remove(id);
            }
            foreach (var name in provisioning)
            {
                if (c.Scheduler.GetNode(name) is not null)
                {
                    c.Scheduler.SetNodeState(name, NodeState.Up);
                }
            }
            provisioning.Clear();
            if (random.Next(0, 25) == 0)
            {
                var node = $"n{random.Next(0, 6)}";
                var state = c.Scheduler.GetNode(node)!.State;
                foreach (var id in c.Scheduler.SetNodeState(node, state == NodeState.Down ? NodeState.Up : NodeState.Down))
                {
                    c.Scheduler.Requeue(id, "node failed");
                    ends.Remove(id);
                    kills.Remove(id);
                }
            }

            var pendingBefore = c.Scheduler.Jobs.Where(j => j.Phase == JobPhase.Pending).Select(j => j.Request.Id).ToHashSet();
            var pass = c.Scheduler.Schedule();

            Assert.Equal(pass.Started.Count, pass.Started.Select(s => s.JobId).Distinct().Count());
            foreach (var start in pass.Started)
            {
                Assert.Contains(start.JobId, pendingBefore);
                var job = c.View(start.JobId);
                Assert.Equal(job.Request.Tasks, start.Tasks.Count);
                foreach (var task in start.Tasks)
                {
                    var node = c.Scheduler.GetNode(task.Node)!;
                    Assert.Equal(NodeState.Up, node.State);
                    foreach (var (key, value) in job.Request.NodeSelector)
                    {
                        Assert.True(node.Spec.Labels.TryGetValue(key, out var have) && have == value, $"job {job.Request.Id} on {task.Node} violates its selector");
                    }
                }
                var wall = job.Request.Walltime ?? TimeSpan.FromMinutes(random.Next(5, 120));
                ends[start.JobId] = now + TimeSpan.FromTicks((long)(wall.Ticks * (0.3 + 0.7 * random.NextDouble())));
                started++;
            }
            foreach (var p in pass.Preemptions)
            {
                Assert.Equal(JobPhase.Terminating, c.Phase(p.VictimId));
                ends.Remove(p.VictimId);
                kills[p.VictimId] = p.KillDeadline;
            }
            foreach (var up in pass.ScaleUps)
            {
                provisioning.AddRange(up.Nodes);
            }
            CheckInvariants(c);
        }
        Assert.True(started > 100, $"only {started} jobs started");
    }

    private static void CheckInvariants(TestCluster c)
    {
        var jobs = c.Scheduler.Jobs;
        var expected = new Dictionary<string, (ResourceVector Allocated, int Tasks)>();
        foreach (var job in jobs)
        {
            if (job.Phase == JobPhase.Pending)
            {
                Assert.Empty(job.Placement);
                continue;
            }
            Assert.Equal(job.Request.Tasks, job.Placement.Count);
            foreach (var task in job.Placement)
            {
                var (allocated, tasks) = expected.GetValueOrDefault(task.Node);
                expected[task.Node] = (allocated + job.Request.PerTask, tasks + 1);
            }
        }
        foreach (var node in c.Scheduler.Nodes)
        {
            var (allocated, tasks) = expected.GetValueOrDefault(node.Spec.Name);
            Assert.Equal(allocated, node.Allocated);
            Assert.Equal(tasks, node.Tasks);
            Assert.True(node.Allocated.FitsIn(node.Spec.Capacity), $"node {node.Spec.Name} holds {node.Allocated} > {node.Spec.Capacity}");
        }
    }
}
