namespace AiMass.Deployments;

/// <summary>
/// A deployment: a model version served by replicas (each an <c>aimass serve</c> job placed by the scheduler), reached
/// through the control plane's router at <c>/v2/models/NAME/...</c> and <c>/v1/models/NAME:predict</c>.
/// </summary>
public sealed record DeploymentSpec
{
    /// <summary>The deployment's name; clients address it as the model name.</summary>
    public required string Name { get; init; }

    /// <summary>The primary model: <c>NAME@VERSION</c> or <c>NAME@ALIAS</c> (an alias is followed: moving it rolls the replicas over).</summary>
    public required string Model { get; init; }

    /// <summary>Fewest replicas of the primary (0: scale to zero when idle).</summary>
    public int MinReplicas { get; init; } = 1;

    /// <summary>Most replicas of the primary.</summary>
    public int MaxReplicas { get; init; } = 1;

    /// <summary>A canary model version that gets <see cref="CanaryWeight"/> percent of the requests.</summary>
    public string? Canary { get; init; }

    /// <summary>Percent of the requests (0-100) sent to the canary.</summary>
    public int CanaryWeight { get; init; }

    /// <summary>A shadow model version that receives a copy of every request; its responses are discarded and compared.</summary>
    public string? Shadow { get; init; }

    /// <summary>CPU of one replica (<c>1</c>, <c>500m</c>).</summary>
    public string Cpu { get; init; } = "1";

    /// <summary>Memory of one replica (<c>1Gi</c>).</summary>
    public string Memory { get; init; } = "1Gi";

    /// <summary>GPUs of one replica.</summary>
    public int Gpus { get; init; }

    /// <summary>The queue the replica jobs are submitted to.</summary>
    public string? Queue { get; init; }

    /// <summary>Priority of the replica jobs.</summary>
    public int Priority { get; init; }

    /// <summary>Labels a node must have to run a replica.</summary>
    public IReadOnlyDictionary<string, string> NodeSelector { get; init; } = new Dictionary<string, string>();

    /// <summary>Concurrent requests one replica should carry; the autoscaler adds replicas above it.</summary>
    public double TargetInFlight { get; init; } = 4;

    /// <summary>Seconds the load must ask for more replicas before they are added.</summary>
    public double UpscaleDelaySeconds { get; init; }

    /// <summary>Seconds the load must ask for fewer replicas before some are removed.</summary>
    public double DownscaleDelaySeconds { get; init; } = 30;

    /// <summary>Seconds without requests before a deployment with <see cref="MinReplicas"/> 0 stops its last replica.</summary>
    public double ScaleToZeroAfterSeconds { get; init; } = 300;

    /// <summary>Largest dynamic batch of each replica (1: no batching).</summary>
    public int MaxBatchSize { get; init; } = 8;

    /// <summary>How long a request may wait in a replica for others to batch with, in microseconds.</summary>
    public int MaxQueueDelayUs { get; init; } = 100;

    /// <summary>ONNX Runtime threads of each replica.</summary>
    public int Threads { get; init; } = 1;
}

/// <summary>Changes to a deployment (<c>PATCH /api/v1/deployments/NAME</c>); absent fields stay as they are.</summary>
public sealed record DeploymentPatch
{
    /// <summary>A new primary model reference: the replicas are rolled over to it without failing a request.</summary>
    public string? Model { get; init; }

    /// <summary>New fewest replicas.</summary>
    public int? MinReplicas { get; init; }

    /// <summary>New most replicas.</summary>
    public int? MaxReplicas { get; init; }

    /// <summary>A new canary reference; an empty string removes the canary.</summary>
    public string? Canary { get; init; }

    /// <summary>A new canary weight in percent.</summary>
    public int? CanaryWeight { get; init; }

    /// <summary>A new shadow reference; an empty string removes the shadow.</summary>
    public string? Shadow { get; init; }

    /// <summary>Makes the canary the primary (rolled over) and removes the canary.</summary>
    public bool Promote { get; init; }

    /// <summary>New concurrency target per replica.</summary>
    public double? TargetInFlight { get; init; }
}

/// <summary>A deployment and what runs for it now.</summary>
public sealed record DeploymentInfo
{
    /// <summary>The deployment's name.</summary>
    public required string Name { get; init; }

    /// <summary>What was asked for.</summary>
    public required DeploymentSpec Spec { get; init; }

    /// <summary><c>ready</c>, <c>progressing</c> (starting or rolling over), <c>degraded</c> (fewer ready replicas than wanted), <c>scaled_to_zero</c>, <c>deleting</c>.</summary>
    public required string State { get; init; }

    /// <summary>Why the state is not <c>ready</c>, when known.</summary>
    public string? Message { get; init; }

    /// <summary>Primary replicas the autoscaler wants now.</summary>
    public int DesiredReplicas { get; init; }

    /// <summary>Primary replicas that serve requests now.</summary>
    public int ReadyReplicas { get; init; }

    /// <summary>Primary, canary and shadow with their replicas.</summary>
    public IReadOnlyList<DeploymentTrackInfo> Tracks { get; init; } = [];

    /// <summary>When the deployment was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it was last changed.</summary>
    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>One model version of a deployment (primary, canary or shadow).</summary>
/// <param name="Role"><c>primary</c>, <c>canary</c> or <c>shadow</c>.</param>
/// <param name="Model">The reference as given.</param>
/// <param name="Version">The version it resolves to now.</param>
/// <param name="Weight">Percent of the requests routed to it (the shadow gets copies: 0).</param>
/// <param name="Desired">Replicas wanted.</param>
/// <param name="Replicas">Its replicas.</param>
public sealed record DeploymentTrackInfo(string Role, string Model, int? Version, int Weight, int Desired, IReadOnlyList<ReplicaInfo> Replicas);

/// <summary>One replica: a job running <c>aimass serve</c>.</summary>
/// <param name="JobId">The replica's job.</param>
/// <param name="Version">The model version it serves.</param>
/// <param name="State"><c>starting</c>, <c>ready</c>, <c>unhealthy</c> (ejected from routing), <c>draining</c>.</param>
/// <param name="Address">Where it listens, once it has announced itself.</param>
/// <param name="InFlight">Requests the router has sent it that have not finished.</param>
/// <param name="Requests">Requests routed to it so far.</param>
public sealed record ReplicaInfo(long JobId, int Version, string State, string? Address, int InFlight, long Requests);

/// <summary>A replica telling the control plane where it listens (<c>POST /api/v1/deployments/NAME/replicas</c>), repeated as a heartbeat.</summary>
/// <param name="JobId">The replica's job (<c>AIMASS_JOB_ID</c>).</param>
/// <param name="Attempt">The job's attempt (<c>AIMASS_ATTEMPT</c>): a restarted replica's new address replaces the old one.</param>
/// <param name="Address">Its base URL, e.g. <c>http://127.0.0.1:41234</c>.</param>
public sealed record ReplicaAnnouncement(long JobId, int Attempt, string Address);
