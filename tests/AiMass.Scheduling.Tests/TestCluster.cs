using AiMass.Resources;
using Microsoft.Extensions.Time.Testing;

namespace AiMass.Scheduling.Tests;

/// <summary>A scheduler on a fake clock with short helpers for nodes and jobs.</summary>
internal sealed class TestCluster
{
    public const long Gi = 1L << 30;

    public TestCluster(SchedulerPolicy? policy = null)
    {
        Time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 8, 0, 0, TimeSpan.Zero));
        Scheduler = new ClusterScheduler(policy ?? new SchedulerPolicy(), Time);
    }

    public FakeTimeProvider Time { get; }

    public ClusterScheduler Scheduler { get; }

    public DateTimeOffset T0 { get; } = new(2026, 1, 5, 8, 0, 0, TimeSpan.Zero);

    public static ResourceVector Res(double cpu, double memGi = 0, long gpu = 0) => new((long)(cpu * 1000), (long)(memGi * Gi), gpu);

    public void Node(string name, double cpu, double memGi = 64, long gpu = 0, string pool = "main", params (string Key, string Value)[] labels) =>
        Scheduler.AddNode(new NodeSpec(name, pool, Res(cpu, memGi, gpu)) { Labels = labels.ToDictionary(l => l.Key, l => l.Value) });

    public JobRequest Job(long id, double cpu, int tasks = 1, double memGi = 1, long gpu = 0, int priority = 0, TimeSpan? walltime = null,
        string owner = "alice", string queue = "default", bool preemptible = false, params (string Key, string Value)[] selector) =>
        new(id, tasks, Res(cpu, memGi, gpu))
        {
            Priority = priority,
            Walltime = walltime,
            Owner = owner,
            Queue = queue,
            Preemptible = preemptible,
            SubmitTime = Time.GetUtcNow(),
            NodeSelector = selector.ToDictionary(s => s.Key, s => s.Value),
        };

    /// <summary>Submits a job and moves the clock one second, so submission order is also time order.</summary>
    public JobRequest Submit(JobRequest job)
    {
        Scheduler.Submit(job);
        Time.Advance(TimeSpan.FromSeconds(1));
        return job;
    }

    /// <summary>Submits and starts a job now; fails the test if it does not start.</summary>
    public JobStart Run(JobRequest job)
    {
        Submit(job);
        var pass = Scheduler.Schedule();
        var start = pass.Started.SingleOrDefault(s => s.JobId == job.Id);
        Assert.True(start is not null, $"job {job.Id} was expected to start; it waits: {Scheduler.GetJob(job.Id)?.PendingReason}");
        return start;
    }

    public JobView View(long id) => Scheduler.GetJob(id) ?? throw new InvalidOperationException($"no job {id}");

    public JobPhase Phase(long id) => View(id).Phase;

    public static IReadOnlyList<long> StartedIds(SchedulingPass pass) => pass.Started.Select(s => s.JobId).ToArray();
}
