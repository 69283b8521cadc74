using AiMass.Resources;

namespace AiMass.Scheduling;

/// <summary>Where one task of a started job runs.</summary>
/// <param name="TaskIndex">0-based index within the gang.</param>
/// <param name="Node">Node name.</param>
public sealed record TaskPlacement(int TaskIndex, string Node);

/// <summary>A job the pass started; the caller launches its tasks (or releases the job if it cannot).</summary>
/// <param name="JobId">The job.</param>
/// <param name="Tasks">One placement per task, in task order.</param>
public sealed record JobStart(long JobId, IReadOnlyList<TaskPlacement> Tasks);

/// <summary>
/// A running job to stop for a higher-priority one: send it the termination notice now, kill it at
/// <see cref="KillDeadline"/> if it has not exited, then call <see cref="ClusterScheduler.Requeue"/>.
/// </summary>
public sealed record Preemption(long VictimId, long PreemptorId, DateTimeOffset KillDeadline, string Reason);

/// <summary>New nodes requested from a dynamic pool, in state <see cref="NodeState.Provisioning"/>.</summary>
public sealed record ScaleUp(string Pool, IReadOnlyList<string> Nodes, string Reason);

/// <summary>An idle dynamic node removed from the cluster; the caller releases it.</summary>
public sealed record ScaleDown(string Pool, string Node, string Reason);

/// <summary>Something the scheduler decided or noticed, in words for people.</summary>
/// <param name="Time">When.</param>
/// <param name="Kind">Stable kind: <c>started</c>, <c>reserved</c>, <c>preempted</c>, <c>requeued</c>, <c>scale_up</c>, <c>scale_down</c>, <c>node_state</c>.</param>
/// <param name="JobId">The job it is about, if any.</param>
/// <param name="Node">The node it is about, if any.</param>
/// <param name="Message">What happened and why.</param>
public sealed record SchedulerEvent(DateTimeOffset Time, string Kind, long? JobId, string? Node, string Message);

/// <summary>The outcome of one scheduling pass.</summary>
public sealed record SchedulingPass(
    DateTimeOffset Time,
    IReadOnlyList<JobStart> Started,
    IReadOnlyList<Preemption> Preemptions,
    IReadOnlyList<ScaleUp> ScaleUps,
    IReadOnlyList<ScaleDown> ScaleDowns,
    IReadOnlyList<SchedulerEvent> Events)
{
    /// <summary>Pending jobs considered in the pass.</summary>
    public int PendingConsidered { get; init; }

    /// <summary>True when the pass decided nothing.</summary>
    public bool IsEmpty => Started.Count == 0 && Preemptions.Count == 0 && ScaleUps.Count == 0 && ScaleDowns.Count == 0;
}

/// <summary>Where a job stands in the scheduler.</summary>
public enum JobPhase
{
    /// <summary>Waiting to be placed.</summary>
    Pending,

    /// <summary>Placed; its resources are allocated.</summary>
    Running,

    /// <summary>Told to stop (preempted or its node went down); its resources stay allocated until it is released or requeued.</summary>
    Terminating,
}

/// <summary>A job's scheduling state, for display.</summary>
public sealed record JobView(JobRequest Request, JobPhase Phase)
{
    /// <summary>Its tasks' nodes while running.</summary>
    public IReadOnlyList<TaskPlacement> Placement { get; init; } = [];

    /// <summary>When it started running.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>Why it is still pending, as of the last pass.</summary>
    public string? PendingReason { get; init; }

    /// <summary>When its reservation begins (backfilling), as of the last pass.</summary>
    public DateTimeOffset? ExpectedStart { get; init; }

    /// <summary>When a terminating job is killed.</summary>
    public DateTimeOffset? KillDeadline { get; init; }
}

/// <summary>A node's state and allocation, for display.</summary>
public sealed record NodeView(NodeSpec Spec, NodeState State, ResourceVector Allocated, int Tasks)
{
    /// <summary>Capacity minus allocation.</summary>
    public ResourceVector Free => Spec.Capacity - Allocated;

    /// <summary>Since when it has had no tasks (dynamic pools release it after their idle timeout).</summary>
    public DateTimeOffset? IdleSince { get; init; }

    /// <summary>Why it is in its state, if someone said.</summary>
    public string? Reason { get; init; }
}

/// <summary>A queue's length and allocation, for display.</summary>
public sealed record QueueView(QueueSpec Spec, OrderingPolicy Ordering, int Pending, int Running, ResourceVector Allocated, double DominantShare);
