using AiMass.Resources;

namespace AiMass.Jobs;

/// <summary>What a user submits: a command run as one task or as a gang of <see cref="Replicas"/> tasks.</summary>
public sealed record JobSpec
{
    /// <summary>A short name for people (need not be unique).</summary>
    public required string Name { get; init; }

    /// <summary>The program and its arguments; a command written as one string runs under <c>/bin/sh -c</c>.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>Number of tasks, placed all at once or not at all (a gang).</summary>
    public int Replicas { get; init; } = 1;

    /// <summary>Resources of each task.</summary>
    public ResourceVector Resources { get; init; }

    /// <summary>Higher runs first under the priority policy and may preempt lower-priority preemptible jobs.</summary>
    public int Priority { get; init; }

    /// <summary>The queue the job waits in.</summary>
    public string Queue { get; init; } = JobDefaults.Queue;

    /// <summary>The user or project the job is accounted to (fair share).</summary>
    public string? Owner { get; init; }

    /// <summary>Run time limit, also the estimate backfilling plans with; null means none.</summary>
    public TimeSpan? Walltime { get; init; }

    /// <summary>How many times a failed task is restarted (resuming from the latest checkpoint).</summary>
    public int MaxRestarts { get; init; }

    /// <summary>Whether a higher-priority job may stop this one and requeue it.</summary>
    public bool Preemptible { get; init; }

    /// <summary>Extra environment variables of every task.</summary>
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    /// <summary>Labels a node must have (all of them) to run a task of this job.</summary>
    public IReadOnlyDictionary<string, string> NodeSelector { get; init; } = new Dictionary<string, string>();

    /// <summary>Working directory of the tasks; null means a fresh directory per job.</summary>
    public string? WorkingDir { get; init; }
}

/// <summary>Defaults and limits of job specs.</summary>
public static class JobDefaults
{
    /// <summary>The queue jobs go to when the spec names none.</summary>
    public const string Queue = "default";

    /// <summary>The largest gang a job may ask for.</summary>
    public const int MaxReplicas = 10_000;
}
