using AiMass.Scheduling;

namespace AiMass.Simulation;

/// <summary>
/// What a scenario simulates: the cluster (the same cluster file <c>aimass up --cluster</c> reads: policy, queues,
/// nodes, dynamic pools), its workload, its failures and how jobs checkpoint.
/// </summary>
public sealed record Scenario
{
    /// <summary>Its name, for reports.</summary>
    public string Name { get; init; } = "scenario";

    /// <summary>The seed of every random draw (failures, synthetic jobs): the same seed gives the same run.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>The cluster and its scheduling policy.</summary>
    public ClusterSpec Cluster { get; init; } = new();

    /// <summary>The jobs, from traces and generators.</summary>
    public IReadOnlyList<SimJob> Jobs { get; init; } = [];

    /// <summary>Jobs of the workload's sources left out while reading them, counted by reason (reported with the run's skips).</summary>
    public IReadOnlyDictionary<string, int> SkippedJobs { get; init; } = new Dictionary<string, int>();

    /// <summary>Node failures.</summary>
    public FailureModel Failures { get; init; } = new();

    /// <summary>The network and the shared storage (empty: neither is a bottleneck).</summary>
    public NetworkModel Network { get; init; } = new();

    /// <summary>How jobs save their work.</summary>
    public CheckpointModel Checkpoints { get; init; } = new();

    /// <summary>Settings of the least-attained-service policy, used when a run asks for it.</summary>
    public LasOptions Las { get; init; } = new();

    /// <summary>The simulation stops here (jobs still queued or running are reported as unfinished); null: when all jobs are done.</summary>
    public TimeSpan? Horizon { get; init; }
}

/// <summary>How jobs save their work, so a killed job loses only what it did since its last checkpoint.</summary>
public sealed record CheckpointModel
{
    /// <summary>Time between a job's checkpoints (a job may set its own); null: jobs do not checkpoint and lose all work when killed.</summary>
    public TimeSpan? Interval { get; init; }

    /// <summary>Whether a job told to stop for preemption saves a checkpoint before it exits (AI Mass training jobs do, on SIGTERM).</summary>
    public bool OnPreemption { get; init; } = true;

    /// <summary>Time a restarted job spends loading its checkpoint before it computes again.</summary>
    public TimeSpan RestoreTime { get; init; }
}

/// <summary>Node failures: per-pool time-to-failure and time-to-repair distributions, and/or a trace of failures.</summary>
public sealed record FailureModel
{
    /// <summary>Random failures of the nodes of some pools.</summary>
    public IReadOnlyList<PoolFailures> Pools { get; init; } = [];

    /// <summary>Failures that happen at given times (a failure trace).</summary>
    public IReadOnlyList<NodeFailure> Trace { get; init; } = [];

    /// <summary>True when nothing fails.</summary>
    public bool IsEmpty => Pools.Count == 0 && Trace.Count == 0;
}

/// <summary>The nodes of a pool fail after a time drawn from <paramref name="TimeToFailure"/> (MTBF) and come back after one from <paramref name="TimeToRepair"/> (MTTR).</summary>
/// <param name="Pool">The pool (<c>*</c>: every pool).</param>
/// <param name="TimeToFailure">Up time before a failure.</param>
/// <param name="TimeToRepair">Down time before the node is back.</param>
public sealed record PoolFailures(string Pool, Distribution TimeToFailure, Distribution TimeToRepair);

/// <summary>A node that fails at a time and is down for a while.</summary>
/// <param name="Node">The node.</param>
/// <param name="At">When, from the start of the workload.</param>
/// <param name="Down">How long it stays down.</param>
public sealed record NodeFailure(string Node, TimeSpan At, TimeSpan Down);

/// <summary>
/// Tiresias' discretised two-dimensional least-attained-service policy for DL jobs whose run times are unknown: a job's
/// attained service is its GPUs (cores for CPU jobs) times the time it has run; the thresholds split jobs into
/// queues, jobs of lower queues go first and preempt jobs of higher ones, each queue is first come, first served, and
/// a job starved longer than <see cref="StarvationFactor"/> times its last run goes back to the first queue.
/// </summary>
public sealed record LasOptions
{
    /// <summary>Service thresholds, in GPU-seconds (core-seconds for CPU jobs), ascending; n thresholds make n+1 queues.</summary>
    public IReadOnlyList<double> Thresholds { get; init; } = [3600, 36_000];

    /// <summary>Promotion knob: a waiting job that has waited this many times its last run goes back to the first queue; 0 turns promotion off.</summary>
    public double StarvationFactor { get; init; }
}

/// <summary>
/// A policy to simulate: changes to the scenario's own scheduling policy, written as terms joined by <c>+</c>:
/// an ordering (<c>fifo</c>, <c>priority</c>, <c>drf</c>, <c>sjf</c>, <c>las</c>), a backfill (<c>easy</c>,
/// <c>conservative</c>, <c>nobackfill</c>), a placement (<c>binpack</c>, <c>spread</c>), preemption
/// (<c>preempt</c>, <c>nopreempt</c>); <c>fcfs</c> is <c>fifo+nobackfill</c> and <c>scenario</c> changes nothing.
/// </summary>
public sealed record SimulationPolicy
{
    private static readonly string[] TermList =
        ["scenario", "fcfs", "fifo", "priority", "drf", "fair_share", "sjf", "las", "tiresias", "easy", "conservative", "nobackfill", "binpack", "spread", "preempt", "nopreempt"];

    /// <summary>The name it was written as.</summary>
    public string Name { get; init; } = "scenario";

    /// <summary>The ordering, when the policy changes it.</summary>
    public OrderingPolicy? Ordering { get; init; }

    /// <summary>The backfill, when the policy changes it.</summary>
    public BackfillPolicy? Backfill { get; init; }

    /// <summary>The placement, when the policy changes it.</summary>
    public PlacementStrategy? Placement { get; init; }

    /// <summary>Whether preemption is on, when the policy changes it.</summary>
    public bool? Preemption { get; init; }

    /// <summary>Whether jobs are ordered by least attained service (Tiresias); preemption is then on.</summary>
    public bool LeastAttainedService { get; init; }

    /// <summary>The terms a policy may be made of.</summary>
    public static IReadOnlyList<string> Terms => TermList;

    /// <summary>Parses <c>drf+easy+spread</c>; throws <see cref="ArgumentException"/> naming an unknown or conflicting term.</summary>
    public static SimulationPolicy Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var policy = new SimulationPolicy { Name = text.Trim().ToLowerInvariant() };
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var raw in policy.Name.Split('+', StringSplitOptions.TrimEntries))
        {
            var term = raw.Replace("-", "_", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal);
            string[] dimensions = term switch
            {
                "scenario" => [],
                "fcfs" => ["ordering", "backfill"],
                "fifo" or "priority" or "drf" or "fairshare" or "sjf" or "shortestfirst" or "las" or "tiresias" => ["ordering"],
                "easy" or "conservative" or "nobackfill" or "none" => ["backfill"],
                "binpack" or "spread" => ["placement"],
                "preempt" or "preemption" or "nopreempt" or "nopreemption" => ["preemption"],
                _ => throw new ArgumentException($"policy '{text}': unknown term '{raw}'; terms are {string.Join(", ", TermList)}, joined by '+'"),
            };
            foreach (var dimension in dimensions)
            {
                if (!seen.Add(dimension))
                {
                    throw new ArgumentException($"policy '{text}': '{raw}' sets the {dimension} a second time");
                }
            }
            policy = term switch
            {
                "fcfs" => policy with { Ordering = OrderingPolicy.Fifo, Backfill = BackfillPolicy.None },
                "fifo" => policy with { Ordering = OrderingPolicy.Fifo },
                "priority" => policy with { Ordering = OrderingPolicy.Priority },
                "drf" or "fairshare" => policy with { Ordering = OrderingPolicy.FairShare },
                "sjf" or "shortestfirst" => policy with { Ordering = OrderingPolicy.ShortestFirst },
                "las" or "tiresias" => policy with { Ordering = OrderingPolicy.Priority, LeastAttainedService = true },
                "easy" => policy with { Backfill = BackfillPolicy.Easy },
                "conservative" => policy with { Backfill = BackfillPolicy.Conservative },
                "nobackfill" or "none" => policy with { Backfill = BackfillPolicy.None },
                "binpack" => policy with { Placement = PlacementStrategy.BinPack },
                "spread" => policy with { Placement = PlacementStrategy.Spread },
                "preempt" or "preemption" => policy with { Preemption = true },
                "nopreempt" or "nopreemption" => policy with { Preemption = false },
                _ => policy,
            };
        }
        if (policy.LeastAttainedService && policy.Preemption == false)
        {
            throw new ArgumentException($"policy '{text}': las needs preemption (it stops jobs that have had their share)");
        }
        return policy;
    }

    /// <summary>The scenario's policy with this one's changes.</summary>
    public SchedulerPolicy Apply(SchedulerPolicy scenario)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        return scenario with
        {
            Ordering = Ordering ?? scenario.Ordering,
            Backfill = Backfill ?? scenario.Backfill,
            Placement = Placement ?? scenario.Placement,
            Preemption = LeastAttainedService || (Preemption ?? scenario.Preemption),
        };
    }
}
