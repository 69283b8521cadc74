using AiMass.Resources;

namespace AiMass.Scheduling;

/// <summary>Whether a node takes work.</summary>
public enum NodeState
{
    /// <summary>Requested from a dynamic pool and not yet ready; takes no work.</summary>
    Provisioning,

    /// <summary>Takes work.</summary>
    Up,

    /// <summary>Finishes what runs on it and takes nothing new.</summary>
    Draining,

    /// <summary>Lost: its tasks are gone and their jobs are requeued.</summary>
    Down,
}

/// <summary>How a pool gets its nodes.</summary>
public enum PoolKind
{
    /// <summary>A fixed set of declared nodes.</summary>
    Static,

    /// <summary>Between <see cref="PoolSpec.MinNodes"/> and <see cref="PoolSpec.MaxNodes"/> nodes made from a template on demand.</summary>
    Dynamic,
}

/// <summary>The order jobs are considered in.</summary>
public enum OrderingPolicy
{
    /// <summary>By submission time.</summary>
    Fifo,

    /// <summary>By priority (highest first), then submission time.</summary>
    Priority,

    /// <summary>
    /// Weighted fair share by dominant resource share (DRF): the queue, and within it the owner, with the smallest
    /// dominant share divided by its weight goes next; an owner's own jobs by priority, then submission time.
    /// </summary>
    FairShare,

    /// <summary>
    /// Shortest job first: by walltime (the user's estimate; jobs without one count as the policy's unknown
    /// walltime), then priority, then submission time. Minimises mean wait when estimates are honest.
    /// </summary>
    ShortestFirst,
}

/// <summary>What happens when the next job in order does not fit.</summary>
public enum BackfillPolicy
{
    /// <summary>Nothing behind it starts (strict order).</summary>
    None,

    /// <summary>EASY: that job gets a reservation; later jobs start only if they do not delay it.</summary>
    Easy,

    /// <summary>Conservative: every job that does not fit gets a reservation; later jobs may delay none of them.</summary>
    Conservative,
}

/// <summary>Which node a task goes to when several fit.</summary>
public enum PlacementStrategy
{
    /// <summary>The fullest node that fits (keeps whole nodes free for big jobs).</summary>
    BinPack,

    /// <summary>The emptiest node (spreads load and failures).</summary>
    Spread,
}

/// <summary>A node of the cluster.</summary>
/// <param name="Name">Unique node name.</param>
/// <param name="Pool">The pool it belongs to.</param>
/// <param name="Capacity">What it offers to tasks.</param>
public sealed record NodeSpec(string Name, string Pool, ResourceVector Capacity)
{
    /// <summary>Labels jobs select nodes by (besides the implicit <c>node</c>, <c>pool</c>, <c>gpu_model</c> and <c>gpu_memory</c>).</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>The GPU model (e.g. <c>A100</c>), selectable as the label <c>gpu_model</c>.</summary>
    public string? GpuModel { get; init; }

    /// <summary>Memory of one GPU in bytes, if known; selectable as the label <c>gpu_memory</c> (e.g. <c>80Gi</c>).</summary>
    public long? GpuMemoryBytes { get; init; }
}

/// <summary>A group of nodes; dynamic pools grow and shrink with demand.</summary>
/// <param name="Name">Unique pool name.</param>
/// <param name="Kind">Static or dynamic.</param>
public sealed record PoolSpec(string Name, PoolKind Kind)
{
    /// <summary>Fewest nodes a dynamic pool keeps.</summary>
    public int MinNodes { get; init; }

    /// <summary>Most nodes a dynamic pool may have.</summary>
    public int MaxNodes { get; init; }

    /// <summary>What each node of a dynamic pool offers (its name and pool are filled in).</summary>
    public NodeSpec? Template { get; init; }

    /// <summary>How long a dynamic node stays idle before it is released.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>A queue jobs wait in.</summary>
/// <param name="Name">Unique queue name.</param>
public sealed record QueueSpec(string Name)
{
    /// <summary>Its weight under fair share (a queue of weight 2 gets twice the dominant share of one of weight 1).</summary>
    public double Weight { get; init; } = 1;

    /// <summary>How this queue orders its own jobs; null means the cluster's ordering.</summary>
    public OrderingPolicy? Ordering { get; init; }
}

/// <summary>The cluster-wide scheduling policy.</summary>
public sealed record SchedulerPolicy
{
    /// <summary>Order across queues, and within queues that set none.</summary>
    public OrderingPolicy Ordering { get; init; } = OrderingPolicy.Priority;

    /// <summary>What happens when the next job does not fit.</summary>
    public BackfillPolicy Backfill { get; init; } = BackfillPolicy.Easy;

    /// <summary>Node choice when several fit.</summary>
    public PlacementStrategy Placement { get; init; } = PlacementStrategy.BinPack;

    /// <summary>Whether higher-priority jobs may preempt lower-priority preemptible ones.</summary>
    public bool Preemption { get; init; } = true;

    /// <summary>Time a preempted job gets between its termination notice and being killed.</summary>
    public TimeSpan PreemptionGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most reservations conservative backfilling makes in one pass (later jobs only start if they delay none).</summary>
    public int MaxReservations { get; init; } = 100;

    /// <summary>The run time planning assumes for a job without a walltime (it is not a limit).</summary>
    public TimeSpan UnknownWalltime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Fair-share weight per owner (default 1).</summary>
    public IReadOnlyDictionary<string, double> OwnerWeights { get; init; } = new Dictionary<string, double>();

    /// <summary>Most blocked jobs considered for preemption in one pass.</summary>
    public int MaxPreemptorsPerPass { get; init; } = 16;
}

/// <summary>A job as the scheduler sees it.</summary>
/// <param name="Id">Unique job id.</param>
/// <param name="Tasks">Gang size: all tasks start together or none does.</param>
/// <param name="PerTask">Resources of each task.</param>
public sealed record JobRequest(long Id, int Tasks, ResourceVector PerTask)
{
    /// <summary>Name for events.</summary>
    public string? Name { get; init; }

    /// <summary>Queue it waits in.</summary>
    public string Queue { get; init; } = Jobs.JobDefaults.Queue;

    /// <summary>Owner it is accounted to.</summary>
    public string Owner { get; init; } = "anonymous";

    /// <summary>Priority (higher first).</summary>
    public int Priority { get; init; }

    /// <summary>Run time estimate and limit; null when unknown.</summary>
    public TimeSpan? Walltime { get; init; }

    /// <summary>Whether higher-priority jobs may preempt it.</summary>
    public bool Preemptible { get; init; }

    /// <summary>Labels every node of its tasks must have.</summary>
    public IReadOnlyDictionary<string, string> NodeSelector { get; init; } = new Dictionary<string, string>();

    /// <summary>When it was submitted (its place in FIFO order, kept across requeues).</summary>
    public DateTimeOffset SubmitTime { get; init; }
}

/// <summary>A request the scheduler refuses (unknown queue, a job no node could ever run, ...).</summary>
public sealed class SchedulingException : Exception
{
    /// <summary>Creates the exception with the message shown to the user.</summary>
    public SchedulingException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public SchedulingException()
    {
    }

    /// <summary>Creates the exception with an inner exception.</summary>
    public SchedulingException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>The spec field the problem is about, when there is one.</summary>
    public string? Field { get; init; }
}
