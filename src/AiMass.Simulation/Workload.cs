using AiMass.Resources;

namespace AiMass.Simulation;

/// <summary>
/// One job of a scenario's workload: when it arrives, how long it runs at full speed, and what it asks for. Times are
/// offsets from the start of the workload.
/// </summary>
/// <param name="Id">Unique job number.</param>
/// <param name="Submit">When it is submitted.</param>
/// <param name="Duration">How long it runs when it is never interrupted (its work).</param>
/// <param name="Tasks">Gang size: all tasks start together or none does.</param>
/// <param name="PerTask">Resources of each task.</param>
public sealed record SimJob(long Id, TimeSpan Submit, TimeSpan Duration, int Tasks, ResourceVector PerTask)
{
    /// <summary>Its name in the trace, when it has one that is not its number.</summary>
    public string? Name { get; init; }

    /// <summary>Owner it is accounted to (fair share).</summary>
    public string User { get; init; } = "anonymous";

    /// <summary>Queue it waits in.</summary>
    public string Queue { get; init; } = Jobs.JobDefaults.Queue;

    /// <summary>Priority (higher first).</summary>
    public int Priority { get; init; }

    /// <summary>The user's run time estimate (the walltime the scheduler plans with); null when unknown.</summary>
    public TimeSpan? Estimate { get; init; }

    /// <summary>Labels every node of its tasks must have (e.g. <c>gpu_model: A100</c>).</summary>
    public IReadOnlyDictionary<string, string> NodeSelector { get; init; } = new Dictionary<string, string>();

    /// <summary>Whether higher-priority jobs may preempt it.</summary>
    public bool Preemptible { get; init; }

    /// <summary>How often it saves a checkpoint; null: the scenario's default.</summary>
    public TimeSpan? CheckpointInterval { get; init; }

    /// <summary>Bytes it reads from shared storage before it computes (0: none).</summary>
    public long StageInBytes { get; init; }

    /// <summary>Bytes it writes to shared storage after it computes (0: none).</summary>
    public long StageOutBytes { get; init; }

    /// <summary>
    /// Network bandwidth each task of a gang exchanges with the others while it computes (parameter server or
    /// all-reduce traffic), bytes/s; when the network gives less, the gang computes proportionally slower. 0: none.
    /// </summary>
    public double CommBandwidth { get; init; }

    /// <summary>All GPUs of the gang.</summary>
    public long Gpus => PerTask.Gpus * Tasks;

    /// <summary>All CPU millicores of the gang.</summary>
    public long CpuMillis => PerTask.CpuMillis * Tasks;
}

/// <summary>What a trace job gets for the resources its trace does not give.</summary>
public sealed record WorkloadDefaults
{
    /// <summary>CPU millicores per GPU of a GPU job without a CPU count.</summary>
    public long CpuMillisPerGpu { get; init; } = 4000;

    /// <summary>Memory per GPU of a GPU job without a memory figure.</summary>
    public long MemoryPerGpu { get; init; } = 16L << 30;

    /// <summary>CPU millicores of a job with neither GPUs nor a CPU count.</summary>
    public long CpuMillis { get; init; } = 1000;

    /// <summary>Memory per CPU core of a job without a memory figure and without GPUs.</summary>
    public long MemoryPerCpu { get; init; } = 2L << 30;

    /// <summary>Queue of jobs whose trace names none.</summary>
    public string Queue { get; init; } = Jobs.JobDefaults.Queue;

    /// <summary>Whether trace jobs may be preempted by higher-priority ones.</summary>
    public bool Preemptible { get; init; } = true;

    /// <summary>Bytes each job reads from the shared storage before it computes, when its trace does not say.</summary>
    public long StageInBytes { get; init; }

    /// <summary>Bytes each job writes to the shared storage after it computes, when its trace does not say.</summary>
    public long StageOutBytes { get; init; }

    /// <summary>Bandwidth each task of a gang exchanges while it computes (bytes/s), when its trace does not say.</summary>
    public double CommBandwidth { get; init; }

    /// <summary>The resources of a job from what its trace gave (null: not given).</summary>
    public ResourceVector Resources(long gpus, long? cpuMillis, long? memoryBytes)
    {
        var cpu = cpuMillis ?? (gpus > 0 ? CpuMillisPerGpu * gpus : CpuMillis);
        var memory = memoryBytes ?? (gpus > 0 ? MemoryPerGpu * gpus : Math.Max(1, (cpu + 999) / 1000) * MemoryPerCpu);
        return new ResourceVector(cpu, memory, gpus);
    }
}

/// <summary>
/// Shapes jobs to the machine: a single-task job bigger than every node becomes a gang of equal tasks that each fit a
/// node (as a multi-node job of a DL trace runs: 16 GPUs on 8-GPU nodes are 2 tasks of 8).
/// </summary>
public static class GangShaper
{
    /// <summary>The job as a gang that fits <paramref name="nodes"/>, or null when no split of it fits any node.</summary>
    public static SimJob? Fit(SimJob job, IReadOnlyList<ResourceVector> nodes)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(nodes);
        if (nodes.Any(n => job.PerTask.FitsIn(n)))
        {
            return job;
        }
        if (job.Tasks != 1)
        {
            return null;
        }
        var total = job.PerTask;
        // Split by the resource that binds: GPUs when the job has them, else CPUs. Each task gets an equal share.
        var units = total.Gpus > 0 ? total.Gpus : Math.Max(1, total.CpuMillis / 1000);
        for (long tasks = 2; tasks <= units && tasks <= 4096; tasks++)
        {
            if (units % tasks != 0)
            {
                continue;
            }
            var per = new ResourceVector(
                total.CpuMillis / tasks, total.MemoryBytes / tasks, total.Gpus / tasks,
                total.HasCustom ? total.Custom.Select(c => KeyValuePair.Create(c.Key, c.Value / tasks)) : null);
            if (nodes.Any(n => per.FitsIn(n)))
            {
                return job with { Tasks = (int)tasks, PerTask = per };
            }
        }
        return null;
    }
}
