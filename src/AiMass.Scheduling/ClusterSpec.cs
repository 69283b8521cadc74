namespace AiMass.Scheduling;

/// <summary>A cluster file: the scheduling policy, queues, static nodes and dynamic pools.</summary>
public sealed record ClusterSpec
{
    /// <summary>The cluster-wide policy.</summary>
    public SchedulerPolicy Policy { get; init; } = new();

    /// <summary>Queues besides <c>default</c> (which always exists and may be redefined).</summary>
    public IReadOnlyList<QueueSpec> Queues { get; init; } = [];

    /// <summary>Static nodes.</summary>
    public IReadOnlyList<NodeSpec> Nodes { get; init; } = [];

    /// <summary>Pools, dynamic ones with their template.</summary>
    public IReadOnlyList<PoolSpec> Pools { get; init; } = [];

    /// <summary>How long a new node of a dynamic pool takes to come up, per pool name.</summary>
    public IReadOnlyDictionary<string, TimeSpan> ProvisioningDelays { get; init; } = new Dictionary<string, TimeSpan>();

    /// <summary>Declares everything in a scheduler.</summary>
    public void ApplyTo(ClusterScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        scheduler.Policy = Policy;
        foreach (var queue in Queues)
        {
            scheduler.AddQueue(queue);
        }
        foreach (var pool in Pools)
        {
            scheduler.AddPool(pool);
        }
        foreach (var node in Nodes)
        {
            scheduler.AddNode(node);
        }
    }
}
