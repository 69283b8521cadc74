using AiMass.Resources;

namespace AiMass.Scheduling;

/// <summary>The scheduler's mutable state of one job.</summary>
internal sealed class JobRecord(JobRequest request, string selectorKey)
{
    public JobRequest Request { get; set; } = request;

    /// <summary>Canonical form of the node selector, the key of the per-pass candidate-node cache.</summary>
    public string SelectorKey { get; } = selectorKey;

    public JobPhase Phase { get; set; }

    /// <summary>Node of each task while running or terminating.</summary>
    public NodeRecord[] Placement { get; set; } = [];

    public DateTimeOffset? StartedAt { get; set; }

    public DateTimeOffset? KillDeadline { get; set; }

    public string? PendingReason { get; set; }

    /// <summary>Not placed before this time (a restart back-off), when set.</summary>
    public DateTimeOffset? NotBefore { get; set; }

    public DateTimeOffset? ExpectedStart { get; set; }

    /// <summary>The preemption claim this job holds (it goes first until it starts).</summary>
    public PreemptionClaim? Claim { get; set; }

    /// <summary>The claim this job was preempted for.</summary>
    public PreemptionClaim? PreemptedFor { get; set; }

    public ResourceVector Total => Request.PerTask * Request.Tasks;

    /// <summary>When planning assumes the job ends: its kill deadline when terminating, else start plus walltime.</summary>
    public long PlannedEnd(TimeSpan unknownWalltime)
    {
        if (KillDeadline is { } deadline)
        {
            return deadline.UtcTicks;
        }
        var start = StartedAt!.Value.UtcTicks;
        var wall = (Request.Walltime ?? unknownWalltime).Ticks;
        return long.MaxValue - start < wall ? long.MaxValue : start + wall;
    }

    public JobView ToView() => new(Request, Phase)
    {
        Placement = Placement.Select((n, i) => new TaskPlacement(i, n.Spec.Name)).ToArray(),
        StartedAt = StartedAt,
        PendingReason = Phase == JobPhase.Pending ? PendingReason : null,
        ExpectedStart = Phase == JobPhase.Pending ? ExpectedStart : null,
        KillDeadline = KillDeadline,
    };
}

/// <summary>The scheduler's mutable state of one node.</summary>
internal sealed class NodeRecord
{
    public NodeRecord(NodeSpec spec, NodeState state, DateTimeOffset now)
    {
        Spec = spec;
        State = state;
        IdleSince = now;
        var labels = new Dictionary<string, string>(spec.Labels, StringComparer.Ordinal)
        {
            ["node"] = spec.Name,
            ["pool"] = spec.Pool,
        };
        if (spec.GpuModel is not null)
        {
            labels["gpu_model"] = spec.GpuModel;
        }
        if (spec.GpuMemoryBytes is { } gpuMemory)
        {
            labels["gpu_memory"] = Resources.Quantity.FormatBytes(gpuMemory);
        }
        Labels = labels;
    }

    public NodeSpec Spec { get; }

    /// <summary>The node's labels with the implicit <c>node</c>, <c>pool</c> and <c>gpu_model</c>.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; }

    public NodeState State { get; set; }

    public string? Reason { get; set; }

    public ResourceVector Allocated { get; set; }

    public int Tasks { get; set; }

    public DateTimeOffset? IdleSince { get; set; }

    /// <summary>Position in this pass's node array.</summary>
    public int Index { get; set; }

    public bool Matches(IReadOnlyDictionary<string, string> selector)
    {
        foreach (var (key, value) in selector)
        {
            if (!Labels.TryGetValue(key, out var have) || !string.Equals(have, value, StringComparison.Ordinal))
            {
                return false;
            }
        }
        return true;
    }

    public NodeView ToView() => new(Spec, State, Allocated, Tasks) { IdleSince = Tasks == 0 ? IdleSince : null, Reason = Reason };
}

/// <summary>A pending job's right to the resources of the jobs preempted for it.</summary>
internal sealed class PreemptionClaim(JobRecord claimant, IReadOnlyList<JobRecord> victims, DateTimeOffset expires)
{
    public JobRecord Claimant { get; } = claimant;

    public IReadOnlyList<JobRecord> Victims { get; } = victims;

    /// <summary>After this the claim lapses (the victims should long be gone; something else went wrong).</summary>
    public DateTimeOffset Expires { get; } = expires;
}

/// <summary>A pool and its node counter.</summary>
internal sealed class PoolRecord(PoolSpec spec)
{
    public PoolSpec Spec { get; set; } = spec;

    /// <summary>The number the next dynamic node's name gets.</summary>
    public int NextNode { get; set; } = 1;
}
