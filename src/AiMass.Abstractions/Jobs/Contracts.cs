using AiMass.Resources;

namespace AiMass.Jobs;

/// <summary>Where a job is in its life.</summary>
public enum JobState
{
    /// <summary>Waiting for resources (also after a preemption, a lost node or a restart).</summary>
    Queued,

    /// <summary>Its tasks run.</summary>
    Running,

    /// <summary>Its tasks were told to stop (cancel, preemption, walltime, a failed task) and have not all exited yet.</summary>
    Stopping,

    /// <summary>Every task exited with code 0.</summary>
    Succeeded,

    /// <summary>A task failed and no restart was left, the walltime ran out, or it could not be started.</summary>
    Failed,

    /// <summary>Cancelled by a user.</summary>
    Cancelled,
}

/// <summary>Where one task of one attempt is.</summary>
public enum TaskState
{
    /// <summary>The process runs.</summary>
    Running,

    /// <summary>Exited with code 0.</summary>
    Succeeded,

    /// <summary>Exited with another code or was killed.</summary>
    Failed,

    /// <summary>Its process vanished without an exit status (machine restart, node lost).</summary>
    Lost,
}

/// <summary>An amount of resources as the API shows it.</summary>
/// <param name="CpuMillis">CPU in millicores.</param>
/// <param name="MemoryBytes">Memory in bytes.</param>
/// <param name="Gpus">GPUs.</param>
/// <param name="Custom">Custom resources by name.</param>
public sealed record ResourceAmounts(long CpuMillis, long MemoryBytes, long Gpus, IReadOnlyDictionary<string, long> Custom)
{
    /// <summary>Converts a vector.</summary>
    public static ResourceAmounts From(ResourceVector v) =>
        new(v.CpuMillis, v.MemoryBytes, v.Gpus, v.Custom.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal));

    /// <summary>Converts back to a vector.</summary>
    public ResourceVector ToVector() => new(CpuMillis, MemoryBytes, Gpus, Custom);

    /// <summary>As a spec would write it: <c>cpu=2, memory=4Gi, gpu=1</c>.</summary>
    public override string ToString() => ToVector().ToString();
}

/// <summary>One task of the current (or last) attempt of a job.</summary>
public sealed record TaskInfo(int Index, int Attempt, string Node, TaskState State)
{
    /// <summary>Process id on its node (local executor).</summary>
    public int? Pid { get; init; }

    /// <summary>The resource manager's job id (Slurm), when the task runs under one.</summary>
    public string? ExternalId { get; init; }

    /// <summary>The resource manager's view of a running task (<c>PENDING (Priority)</c>, <c>RUNNING on n12</c>), if it has one.</summary>
    public string? ExternalState { get; init; }

    /// <summary>Exit code when it ended.</summary>
    public int? ExitCode { get; init; }

    /// <summary>How it ended, in words.</summary>
    public string? Exit { get; init; }

    /// <summary>When it started.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? EndedAt { get; init; }
}

/// <summary>A job as the API shows it.</summary>
public sealed record JobInfo
{
    /// <summary>Job id.</summary>
    public required long Id { get; init; }

    /// <summary>Name from the spec.</summary>
    public required string Name { get; init; }

    /// <summary>State.</summary>
    public required JobState State { get; init; }

    /// <summary>Why it is in its state: why it waits, why it stopped or failed.</summary>
    public string? Reason { get; init; }

    /// <summary>Queue.</summary>
    public required string Queue { get; init; }

    /// <summary>Owner.</summary>
    public required string Owner { get; init; }

    /// <summary>Priority.</summary>
    public int Priority { get; init; }

    /// <summary>Gang size.</summary>
    public int Replicas { get; init; }

    /// <summary>Resources of each task.</summary>
    public required ResourceAmounts Resources { get; init; }

    /// <summary>Run time limit in seconds, if any.</summary>
    public double? WalltimeSeconds { get; init; }

    /// <summary>Whether it may be preempted.</summary>
    public bool Preemptible { get; init; }

    /// <summary>Restarts allowed after failures.</summary>
    public int MaxRestarts { get; init; }

    /// <summary>Restarts used so far.</summary>
    public int Restarts { get; init; }

    /// <summary>Number of the current or last attempt (0 before the first start).</summary>
    public int Attempt { get; init; }

    /// <summary>The command.</summary>
    public IReadOnlyList<string> Command { get; init; } = [];

    /// <summary>When it was submitted.</summary>
    public DateTimeOffset SubmittedAt { get; init; }

    /// <summary>When the current or last attempt started.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? EndedAt { get; init; }

    /// <summary>When a queued job's reservation begins (backfilling), if it has one.</summary>
    public DateTimeOffset? ExpectedStart { get; init; }

    /// <summary>The checkpoint the next attempt resumes from (the latest the job reported).</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>Tasks of the current or last attempt.</summary>
    public IReadOnlyList<TaskInfo> Tasks { get; init; } = [];
}

/// <summary>Something that happened to a job or the cluster.</summary>
public sealed record JobEventInfo(long Id, DateTimeOffset Time, string Kind, string Message)
{
    /// <summary>The job, if the event is about one.</summary>
    public long? JobId { get; init; }

    /// <summary>The node, if the event is about one.</summary>
    public string? Node { get; init; }

    /// <summary>The deployment, if the event is about one (scaling, replicas, rollouts).</summary>
    public string? Deployment { get; init; }
}

/// <summary>A node as the API shows it.</summary>
public sealed record NodeInfo(string Name, string Pool, string State, ResourceAmounts Capacity, ResourceAmounts Allocated, int Tasks)
{
    /// <summary>Labels (without the implicit ones).</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>GPU model.</summary>
    public string? GpuModel { get; init; }

    /// <summary>Why it is in its state.</summary>
    public string? Reason { get; init; }

    /// <summary>CPU cores the node's tasks used over the last sample (live), if measured.</summary>
    public double? CpuUsedCores { get; init; }

    /// <summary>Resident memory of the node's tasks (live), if measured.</summary>
    public long? MemoryUsedBytes { get; init; }
}

/// <summary>A queue as the API shows it.</summary>
public sealed record QueueInfo(string Name, double Weight, string Ordering, int Pending, int Running, ResourceAmounts Allocated, double DominantShare);

/// <summary>A metric value a running task reports (<c>POST /api/v1/jobs/{id}/metrics</c>).</summary>
public sealed record JobMetricReport
{
    /// <summary>Training step or epoch the values belong to.</summary>
    public long? Step { get; init; }

    /// <summary>Metric values by name.</summary>
    public required IReadOnlyDictionary<string, double> Values { get; init; }
}

/// <summary>A stored metric value.</summary>
public sealed record JobMetricInfo(int Attempt, long? Step, DateTimeOffset Time, string Name, double Value);

/// <summary>A checkpoint a running task reports (<c>POST /api/v1/jobs/{id}/checkpoints</c>); the next attempt resumes from the latest.</summary>
public sealed record JobCheckpointReport
{
    /// <summary>Where the checkpoint is: a path on shared storage or a URI.</summary>
    public required string Path { get; init; }

    /// <summary>Training step it was taken at.</summary>
    public long? Step { get; init; }
}

/// <summary>A stored checkpoint.</summary>
public sealed record JobCheckpointInfo(long Id, int Attempt, long? Step, string Path, DateTimeOffset Time);

/// <summary>A change of a node's state (<c>POST /api/v1/nodes/{name}/state</c>).</summary>
public sealed record NodeStateRequest
{
    /// <summary><c>up</c>, <c>draining</c> or <c>down</c>.</summary>
    public required string State { get; init; }

    /// <summary>Why, for the event log.</summary>
    public string? Reason { get; init; }
}
