namespace AiMass.Simulation;

/// <summary>How a run of a job ended.</summary>
public enum RunEnd
{
    /// <summary>Its work was done.</summary>
    Completed,

    /// <summary>It was preempted and requeued.</summary>
    Preempted,

    /// <summary>A node it ran on failed; it was requeued.</summary>
    NodeFailed,

    /// <summary>The simulation stopped (horizon) while it ran.</summary>
    Running,
}

/// <summary>One run of a job: when and where its gang ran (one node per task, in task order).</summary>
/// <param name="Start">Seconds from the start of the workload.</param>
/// <param name="End">Seconds from the start of the workload (the horizon when it was still running).</param>
/// <param name="Nodes">The node of each task.</param>
/// <param name="Ended">How the run ended.</param>
public sealed record JobRun(double Start, double End, IReadOnlyList<string> Nodes, RunEnd Ended);

/// <summary>How one job of a scenario fared. Times are seconds from the start of the workload.</summary>
/// <param name="Job">The job.</param>
/// <param name="Start">Its first start; null when it never ran.</param>
/// <param name="End">When it finished; null when it did not finish.</param>
public sealed record ScenarioJobResult(SimJob Job, double? Start, double? End)
{
    /// <summary>Times it started again after being stopped (preempted or killed by a node failure).</summary>
    public int Restarts { get; init; }

    /// <summary>Every run, in order.</summary>
    public IReadOnlyList<JobRun> Runs { get; init; } = [];

    /// <summary>Times it was preempted.</summary>
    public int Preemptions { get; init; }

    /// <summary>Times a node failure killed it.</summary>
    public int FailureKills { get; init; }

    /// <summary>Seconds its gang held resources for work that was lost (since the last checkpoint) or spent restoring.</summary>
    public double LostSeconds { get; init; }

    /// <summary>Of those, seconds lost to node failures.</summary>
    public double FailureLostSeconds { get; init; }

    /// <summary>Submission, seconds.</summary>
    public double Submit => Job.Submit.TotalSeconds;

    /// <summary>Seconds from submission to first start.</summary>
    public double? Wait => Start - Submit;

    /// <summary>Seconds from first start to end.</summary>
    public double? Run => End - Start;

    /// <summary>Job completion time: seconds from submission to end.</summary>
    public double? CompletionTime => End - Submit;

    /// <summary>Completion time over the job's work (at least 10 s), at least 1.</summary>
    public double? BoundedSlowdown => CompletionTime is { } jct
        ? Math.Max(1.0, jct / Math.Max(Job.Duration.TotalSeconds, SimulationSummary.SlowdownThreshold))
        : null;
}

/// <summary>The state of the cluster after an instant of the simulation (one point of the plotted time series).</summary>
/// <param name="Time">Seconds from the start of the workload.</param>
/// <param name="BusyCpus">CPU cores allocated to jobs.</param>
/// <param name="BusyGpus">GPUs allocated to jobs.</param>
/// <param name="UpCpus">CPU cores of the nodes that are up.</param>
/// <param name="UpGpus">GPUs of the nodes that are up.</param>
/// <param name="Pending">Jobs waiting.</param>
/// <param name="Running">Jobs running.</param>
public readonly record struct ClusterSample(double Time, double BusyCpus, long BusyGpus, double UpCpus, long UpGpus, int Pending, int Running);

/// <summary>Aggregate figures of a scenario run.</summary>
public sealed record ScenarioSummary
{
    /// <summary>Jobs that finished.</summary>
    public int Jobs { get; init; }

    /// <summary>Jobs still queued or running when the simulation stopped.</summary>
    public int Unfinished { get; init; }

    /// <summary>Allocated CPU core-seconds over the core-seconds of the nodes that were up, from the first submission to the last end.</summary>
    public double CpuUtilization { get; init; }

    /// <summary>The same for GPUs (0 on a cluster without GPUs).</summary>
    public double GpuUtilization { get; init; }

    /// <summary>Mean wait, seconds (finished jobs).</summary>
    public double MeanWait { get; init; }

    /// <summary>Median wait, seconds.</summary>
    public double P50Wait { get; init; }

    /// <summary>95th percentile of wait, seconds.</summary>
    public double P95Wait { get; init; }

    /// <summary>99th percentile of wait, seconds.</summary>
    public double P99Wait { get; init; }

    /// <summary>Mean bounded slowdown.</summary>
    public double MeanBoundedSlowdown { get; init; }

    /// <summary>Mean job completion time (submission to end), seconds.</summary>
    public double MeanJobCompletionTime { get; init; }

    /// <summary>Median job completion time, seconds.</summary>
    public double P50JobCompletionTime { get; init; }

    /// <summary>95th percentile of job completion time, seconds.</summary>
    public double P95JobCompletionTime { get; init; }

    /// <summary>From the first submission to the last end, seconds.</summary>
    public double Makespan { get; init; }

    /// <summary>GPU-hours allocated to jobs.</summary>
    public double BusyGpuHours { get; init; }

    /// <summary>CPU core-hours allocated to jobs.</summary>
    public double BusyCpuHours { get; init; }

    /// <summary>Node failures that happened.</summary>
    public int NodeFailures { get; init; }

    /// <summary>Jobs killed by node failures (a job killed twice counts twice).</summary>
    public int JobsKilledByFailures { get; init; }

    /// <summary>GPU-hours of work lost to failures (done since the last checkpoint, plus restore time).</summary>
    public double LostGpuHours { get; init; }

    /// <summary>CPU core-hours lost to failures.</summary>
    public double LostCpuHours { get; init; }

    /// <summary>Preemptions.</summary>
    public int Preemptions { get; init; }

    /// <summary>GPU-hours lost to preemptions (work since the last checkpoint when jobs do not checkpoint on preemption, plus restore time).</summary>
    public double PreemptionLostGpuHours { get; init; }

    /// <summary>Nodes added to dynamic pools.</summary>
    public int NodesProvisioned { get; init; }

    /// <summary>Job-hours spent staging data in and out of the shared storage (network model).</summary>
    public double StagingHours { get; init; }

    /// <summary>Job-hours by which distributed jobs ran longer because the network gave them less than they needed (network model).</summary>
    public double NetworkSlowdownHours { get; init; }

    /// <summary>Job-hours jobs waited, holding their resources, for space on a full storage to write their output.</summary>
    public double StorageStallHours { get; init; }

    /// <summary>Most bytes of job outputs on the storage at once.</summary>
    public long PeakStorageBytes { get; init; }
}

/// <summary>What a scenario run produced.</summary>
/// <param name="Policy">The policy simulated.</param>
/// <param name="Jobs">Every job submitted, by job number.</param>
/// <param name="Skipped">Jobs of the workload not simulated, counted by reason.</param>
/// <param name="Summary">The aggregate figures.</param>
/// <param name="Series">The cluster after each instant something changed.</param>
/// <param name="Events">Events processed (arrivals, ends, failures, repairs, scheduling passes, ...).</param>
/// <param name="Elapsed">Wall-clock time of the run.</param>
public sealed record ScenarioResult(
    string Policy,
    IReadOnlyList<ScenarioJobResult> Jobs,
    IReadOnlyDictionary<string, int> Skipped,
    ScenarioSummary Summary,
    IReadOnlyList<ClusterSample> Series,
    long Events,
    TimeSpan Elapsed);
