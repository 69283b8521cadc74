using System.ComponentModel.DataAnnotations;
using AiMass.Registry;

namespace AiMass.Jobs;

/// <summary>Settings of the job service (configuration section <c>Jobs</c>).</summary>
public sealed class JobOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Jobs";

    /// <summary>
    /// A cluster file (<c>aimass up --cluster</c>): policy, queues, nodes, pools. Without one the cluster is one node,
    /// <c>local</c>, with this machine's CPUs, memory and GPUs.
    /// </summary>
    public string? ClusterFile { get; set; }

    /// <summary>Time between SIGTERM and SIGKILL when a job is cancelled, exceeds its walltime, or loses a task.</summary>
    public TimeSpan KillGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest time between two scheduling passes when nothing happens (deadlines are checked then).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan Tick { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Pause before restarting a job whose attempt failed soon after it started; doubles with each such failure in a row (0: none).</summary>
    public TimeSpan RestartBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest restart pause.</summary>
    public TimeSpan MaxRestartBackoff { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>An attempt that ran at least this long resets the restart pause.</summary>
    public TimeSpan RestartBackoffReset { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How often the live CPU and memory use of tasks is sampled for <c>aimass nodes</c>.</summary>
    public TimeSpan UsageSampleInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How many times in a row an attempt is submitted again when its backend cannot be reached (Slurm's controller
    /// down), with the restart pause between tries, before the job fails with the backend's error.
    /// </summary>
    [Range(0, 1000)]
    public int SubmitRetries { get; set; } = 5;

    /// <summary>The pause before the first new try of a submission the backend could not take; doubles with each try (capped by <see cref="MaxRestartBackoff"/>).</summary>
    public TimeSpan SubmitRetryBackoff { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>With a backend that owns its cluster (Slurm), how often its nodes are read again (drained or down nodes stop taking work).</summary>
    public TimeSpan DiscoveryInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// With a backend that enforces walltimes itself (Slurm, in whole minutes), how long after the limit the control
    /// plane stops the job anyway, in case the backend did not.
    /// </summary>
    public TimeSpan WalltimeBackstop { get; set; } = TimeSpan.FromMinutes(2);
}

/// <summary>A request the job service refuses; carries the HTTP status, a stable code and the field when known.</summary>
public sealed class JobsException : AiMassException
{
    /// <summary>Creates the exception.</summary>
    public JobsException(int status, string code, string message, string? field = null)
        : base(status, code, message, field)
    {
    }

    /// <summary>Creates an internal error.</summary>
    public JobsException() : base(500, ErrorCodes.Internal, "job service error")
    {
    }

    /// <summary>Creates an internal error with a message.</summary>
    public JobsException(string message) : base(message)
    {
    }

    /// <summary>Creates an internal error with an inner exception.</summary>
    public JobsException(string message, Exception innerException) : base(message, innerException)
    {
    }

    internal static JobsException NotFound(string message) => new(404, ErrorCodes.NotFound, message);

    internal static JobsException Invalid(string field, string message) => new(400, ErrorCodes.InvalidArgument, message, field);

    internal static JobsException Conflict(string message) => new(409, ErrorCodes.FailedPrecondition, message);
}
