namespace AiMass.Jobs.Storage;

internal sealed class JobRow
{
    public long Id { get; set; }
    public string Name { get; set; } = "";
    /// <summary>The spec as submitted (YAML or JSON); parsed again on recovery.</summary>
    public string SpecText { get; set; } = "";
    public string Queue { get; set; } = "";
    public string Owner { get; set; } = "";
    public int Priority { get; set; }
    public JobState State { get; set; }
    public string? Reason { get; set; }
    public int Attempt { get; set; }
    public int Restarts { get; set; }
    public string? ResumeFrom { get; set; }
    public bool CancelRequested { get; set; }
    /// <summary>Why a stopping job stops (cancel, preempted, walltime, task_failed, lost), so a restart finishes the stop the same way.</summary>
    public string? StopKind { get; set; }
    public long SubmittedAtMs { get; set; }
    public long? StartedAtMs { get; set; }
    public long? EndedAtMs { get; set; }
}

internal sealed class TaskRow
{
    public long Id { get; set; }
    public long JobId { get; set; }
    public int Attempt { get; set; }
    public int TaskIndex { get; set; }
    public string Node { get; set; } = "";
    public int Pid { get; set; }
    public long ProcessStart { get; set; }
    public string? ExternalId { get; set; }
    public string LogPath { get; set; } = "";
    public string ExitPath { get; set; } = "";
    public TaskState State { get; set; }
    public int? ExitCode { get; set; }
    public string? ExitDescription { get; set; }
    public long StartedAtMs { get; set; }
    public long? EndedAtMs { get; set; }
}

internal sealed class EventRow
{
    public long Id { get; set; }
    public long? JobId { get; set; }
    public string? Node { get; set; }
    public string? Deployment { get; set; }
    public long TimeMs { get; set; }
    public string Kind { get; set; } = "";
    public string Message { get; set; } = "";
}

internal sealed class CheckpointRow
{
    public long Id { get; set; }
    public long JobId { get; set; }
    public int Attempt { get; set; }
    public long? Step { get; set; }
    public string Path { get; set; } = "";
    public long TimeMs { get; set; }
}

internal sealed class MetricRow
{
    public long Id { get; set; }
    public long JobId { get; set; }
    public int Attempt { get; set; }
    public long? Step { get; set; }
    public long TimeMs { get; set; }
    public string Name { get; set; } = "";
    public double Value { get; set; }
}

/// <summary>A node state an operator set (drain, down), kept across restarts of the control plane.</summary>
internal sealed class NodeStateRow
{
    public string Node { get; set; } = "";
    public string State { get; set; } = "";
    public string? Reason { get; set; }
    public long TimeMs { get; set; }
}

internal sealed class DeploymentRow
{
    public string Name { get; set; } = "";
    public string SpecJson { get; set; } = "";
    public int Desired { get; set; }
    public bool Deleting { get; set; }
    public long CreatedAtMs { get; set; }
    public long UpdatedAtMs { get; set; }
}

internal sealed class ReplicaRow
{
    public long JobId { get; set; }
    public string Deployment { get; set; } = "";
    public string Role { get; set; } = "";
    public int Version { get; set; }
    public bool Draining { get; set; }
    public long CreatedAtMs { get; set; }
}

internal sealed class StudyRow
{
    public long Id { get; set; }
    public string Name { get; set; } = "";
    /// <summary>The create request as JSON (spec text, training spec text, overrides): parsed again on recovery.</summary>
    public string RequestJson { get; set; } = "";
    public string Owner { get; set; } = "";
    public string State { get; set; } = "";
    public string? Message { get; set; }
    public string? Registered { get; set; }
    public long CreatedAtMs { get; set; }
    public long? EndedAtMs { get; set; }
}

internal sealed class TrialRow
{
    public long Id { get; set; }
    public long StudyId { get; set; }
    public int Number { get; set; }
    public string State { get; set; } = "";
    /// <summary>The parameters as the sampler's numbers (a categorical's is its choice's index), JSON.</summary>
    public string ValuesJson { get; set; } = "";
    public double? Value { get; set; }
    public long? JobId { get; set; }
    public int? RetryOf { get; set; }
    public string? Reason { get; set; }
    public string? Artifact { get; set; }
    /// <summary>The log being read (the job's latest attempt): a new attempt's log is read from its start.</summary>
    public string? LogPath { get; set; }
    /// <summary>How far that log has been read (bytes), so a restarted control plane reads on from there.</summary>
    public long LogOffset { get; set; }
    public long StartedAtMs { get; set; }
    public long? EndedAtMs { get; set; }
    public long? HeartbeatMs { get; set; }
}

internal sealed class TrialValueRow
{
    public long Id { get; set; }
    public long TrialId { get; set; }
    public long Step { get; set; }
    public double Value { get; set; }
}
