namespace AiMass.Studies;

/// <summary>Where a study stands.</summary>
public enum StudyState
{
    /// <summary>Trials are being run.</summary>
    Running,

    /// <summary>Asked to stop: its running trials are being stopped.</summary>
    Stopping,

    /// <summary>Stopped by a user before its budget was spent.</summary>
    Stopped,

    /// <summary>Every configuration of its budget was tried.</summary>
    Completed,
}

/// <summary>Body of <c>POST /api/v1/studies</c>.</summary>
/// <param name="Spec">The study spec (YAML, docs/tuning.md).</param>
/// <param name="Source">Where the spec came from (its file), for messages.</param>
/// <param name="BaseDirectory">The spec's directory: a training objective's relative paths are resolved from it.</param>
/// <param name="TrainingSpec">The text of the training spec a training objective names (the control plane never reads a client's files).</param>
/// <param name="Sampler">Overrides the spec's sampler.</param>
/// <param name="Trials">Overrides the spec's number of trials.</param>
/// <param name="Parallel">Overrides the spec's number of parallel trials.</param>
/// <param name="Seed">Overrides the spec's seed.</param>
/// <param name="Name">Overrides the spec's name.</param>
public sealed record CreateStudyRequest(string Spec, string? Source = null, string? BaseDirectory = null, string? TrainingSpec = null,
    string? Sampler = null, int? Trials = null, int? Parallel = null, int? Seed = null, string? Name = null);

/// <summary>A value reported along the way.</summary>
public sealed record IntermediateValue(long Step, double Value);

/// <summary>One trial of a study.</summary>
public sealed record TrialInfo
{
    /// <summary>Its number in the study, from 0.</summary>
    public required int Number { get; init; }

    /// <summary>running, complete, pruned or failed.</summary>
    public required string State { get; init; }

    /// <summary>Its parameters, as its command saw them (active ones only).</summary>
    public required IReadOnlyDictionary<string, string> Params { get; init; }

    /// <summary>Its value (complete; pruned: its last intermediate value).</summary>
    public double? Value { get; init; }

    /// <summary>The job that runs or ran it.</summary>
    public long? JobId { get; init; }

    /// <summary>The failed trial this one retries, if any.</summary>
    public int? RetryOf { get; init; }

    /// <summary>Why it failed or was pruned.</summary>
    public string? Reason { get; init; }

    /// <summary>The model file it named (<c>artifact=PATH</c>, the spec's register.artifact, or a training objective's export).</summary>
    public string? Artifact { get; init; }

    /// <summary>When it started.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? EndedAt { get; init; }

    /// <summary>When it last showed life (its job running, output, a report).</summary>
    public DateTimeOffset? LastHeartbeat { get; init; }

    /// <summary>Values reported along the way, by step (in lists of trials: only the count).</summary>
    public IReadOnlyList<IntermediateValue> Intermediate { get; init; } = [];

    /// <summary>How many intermediate values it reported.</summary>
    public int IntermediateCount { get; init; }
}

/// <summary>A study on the platform.</summary>
public sealed record StudyInfo
{
    /// <summary>Its id.</summary>
    public required long Id { get; init; }

    /// <summary>Its name.</summary>
    public required string Name { get; init; }

    /// <summary>Where it stands.</summary>
    public required StudyState State { get; init; }

    /// <summary>minimize or maximize.</summary>
    public required string Direction { get; init; }

    /// <summary>What its value is called.</summary>
    public required string Metric { get; init; }

    /// <summary>Its sampler.</summary>
    public required string Sampler { get; init; }

    /// <summary>Its pruner.</summary>
    public required string Pruner { get; init; }

    /// <summary>command or training.</summary>
    public required string Objective { get; init; }

    /// <summary>Configurations it tries.</summary>
    public int Trials { get; init; }

    /// <summary>Trials it runs at once.</summary>
    public int Parallel { get; init; }

    /// <summary>Trials started so far, retries included.</summary>
    public int Started { get; init; }

    /// <summary>Running trials.</summary>
    public int Running { get; init; }

    /// <summary>Complete trials.</summary>
    public int Complete { get; init; }

    /// <summary>Pruned trials.</summary>
    public int Pruned { get; init; }

    /// <summary>Failed trials.</summary>
    public int Failed { get; init; }

    /// <summary>The best complete trial so far.</summary>
    public TrialInfo? Best { get; init; }

    /// <summary>What it is doing or why it ended.</summary>
    public string? Message { get; init; }

    /// <summary>The model version the best trial's model was registered as (<c>NAME@VERSION</c>).</summary>
    public string? Registered { get; init; }

    /// <summary>Who created it.</summary>
    public string? Owner { get; init; }

    /// <summary>When it was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? EndedAt { get; init; }
}

/// <summary>Body of <c>POST /api/v1/studies/{id}/trials/{number}/report</c>: an intermediate value (with a step) or the final one (without).</summary>
public sealed record TrialReport(double Value, long? Step = null);

/// <summary>Answer to a report: whether the trial should stop (the pruner stopped it).</summary>
public sealed record TrialReportResult(bool ShouldPrune, string State);
