using AiMass.Resources;

namespace AiMass.Execution;

/// <summary>Everything needed to start one task of one attempt of a job.</summary>
/// <param name="JobId">The job.</param>
/// <param name="TaskIndex">0-based index in the gang.</param>
/// <param name="Attempt">1-based attempt of the job.</param>
/// <param name="Node">The node the scheduler placed the task on.</param>
/// <param name="Command">Program and arguments.</param>
/// <param name="WorkingDirectory">Where the task starts (created when missing).</param>
/// <param name="Environment">Variables added to the executor's own environment.</param>
/// <param name="LogPath">The file stdout and stderr are appended to.</param>
public sealed record TaskLaunch(
    long JobId,
    int TaskIndex,
    int Attempt,
    string Node,
    IReadOnlyList<string> Command,
    string WorkingDirectory,
    IReadOnlyDictionary<string, string> Environment,
    string LogPath);

/// <summary>All tasks of one attempt of a job (a gang: they start together or not at all).</summary>
/// <param name="JobId">The job.</param>
/// <param name="Attempt">1-based attempt.</param>
/// <param name="Queue">The AI Mass queue the job waited in (a resource manager may map it to an account and QOS).</param>
/// <param name="Partition">The backend's partition the job goes to (the tasks are placed on its nodes); null for the local executor.</param>
/// <param name="PerTask">Resources of each task.</param>
/// <param name="Walltime">Run time limit, or null.</param>
/// <param name="Tasks">One launch per task, by task index.</param>
public sealed record GangLaunch(long JobId, int Attempt, string Queue, string? Partition, ResourceVector PerTask, TimeSpan? Walltime, IReadOnlyList<TaskLaunch> Tasks);

/// <summary>A started task: enough to find it again after a restart of the control plane.</summary>
/// <param name="Pid">Process id of the task's session leader (0 when the task runs under a resource manager).</param>
/// <param name="ProcessStart">The process's start time as the kernel counts it (guards against a reused pid).</param>
/// <param name="ExitPath">The file the exit status is written to when the task ends.</param>
public sealed record TaskHandle(long JobId, int TaskIndex, int Attempt, string Node, int Pid, long ProcessStart, string LogPath, string ExitPath)
{
    /// <summary>The resource manager's id of the task's job (a Slurm job id), or null for a local process.</summary>
    public string? ExternalId { get; init; }

    /// <summary>Whether the launch completed (a process id or a resource manager's id was recorded).</summary>
    public bool IsLaunched => Pid != 0 || ExternalId is not null;
}

/// <summary>Why a task ended, beyond its exit code: decides whether the job is retried, requeued or failed.</summary>
public enum TaskEnd
{
    /// <summary>The command exited (or was killed by a signal) on its own terms.</summary>
    Exited,

    /// <summary>Nothing says how it ended (its process vanished); the job is requeued.</summary>
    Lost,

    /// <summary>The resource manager stopped it at its time limit; the job fails without a retry.</summary>
    Walltime,

    /// <summary>The resource manager preempted it; the job is requeued without counting a restart.</summary>
    Preempted,

    /// <summary>Its node failed; the job is requeued without counting a restart.</summary>
    NodeFailure,

    /// <summary>Killed for using more memory than it asked for; counts as a failure (restarted by the job's policy).</summary>
    OutOfMemory,
}

/// <summary>How a task ended.</summary>
/// <param name="ExitCode">The exit code (128 + N when killed by signal N); null when the task was lost.</param>
/// <param name="Description">In words: <c>exited with code 3</c>, <c>killed by signal 9 (SIGKILL)</c>, <c>lost: ...</c>.</param>
public sealed record TaskExit(int? ExitCode, string Description)
{
    /// <summary>Why it ended; by default <see cref="TaskEnd.Exited"/>, or <see cref="TaskEnd.Lost"/> without an exit code.</summary>
    public TaskEnd End { get; init; } = ExitCode is null ? TaskEnd.Lost : TaskEnd.Exited;

    /// <summary>True for exit code 0.</summary>
    public bool Succeeded => ExitCode == 0;

    /// <summary>Describes an exit code the way a shell reports it.</summary>
    public static TaskExit FromCode(int code) => new(code, code switch
    {
        0 => "exited with code 0",
        > 128 and < 160 => $"killed by signal {code - 128} ({SignalName(code - 128)})",
        _ => $"exited with code {code}",
    });

    /// <summary>A task whose process ended without recording an exit status.</summary>
    public static TaskExit Lost(string why) => new(null, "lost: " + why);

    private static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal " + signal,
    };
}

/// <summary>Runs tasks. The local executor runs them as OS processes of this machine; others submit them to a resource manager.</summary>
public interface IExecutor
{
    /// <summary>The backend's name (<c>local</c>, <c>slurm</c>).</summary>
    string Name { get; }

    /// <summary>
    /// Starts every task of a gang, in the order of <see cref="GangLaunch.Tasks"/>; when one cannot start, those
    /// started are stopped and the exception says why. <see cref="ExecutorUnavailableException"/> means the backend
    /// could not be reached and a later try may succeed.
    /// </summary>
    Task<IReadOnlyList<TaskHandle>> StartAsync(GangLaunch gang, CancellationToken cancellationToken);

    /// <summary>Completes when the task ends, also for a task found again after a restart.</summary>
    Task<TaskExit> WaitAsync(TaskHandle task, CancellationToken cancellationToken);

    /// <summary>Asks the whole process tree to stop (SIGTERM), or kills it (SIGKILL).</summary>
    void Terminate(TaskHandle task, bool kill);

    /// <summary>
    /// Whether a task is still running, or how it ended (used after a restart of the control plane); a handle whose
    /// launch was never recorded (<see cref="TaskHandle.IsLaunched"/> false) has ended, lost.
    /// </summary>
    TaskExit? Probe(TaskHandle task);

    /// <summary>
    /// Finds a task whose launch was recorded but whose process id was not (the control plane stopped in between);
    /// null when no such process runs.
    /// </summary>
    TaskHandle? Find(TaskHandle task);

    /// <summary>CPU time and resident memory of the task's process tree so far, or null when unknown.</summary>
    TaskUsage? Usage(TaskHandle task);

    /// <summary>
    /// Whether the backend enforces a job's walltime itself (and reports <see cref="TaskEnd.Walltime"/>); the control
    /// plane then only steps in well after the limit, as a backstop.
    /// </summary>
    bool EnforcesWalltime { get; }

    /// <summary>
    /// What the backend says about a task AI Mass considers running, when it has its own view (Slurm:
    /// <c>PENDING (Priority)</c>, <c>RUNNING on n12</c>); null when it has none.
    /// </summary>
    string? Status(TaskHandle task);

    /// <summary>The address other tasks and the control plane reach a node at.</summary>
    string NodeAddress(string node);

    /// <summary>
    /// The nodes and partitions the backend manages, for backends that own their cluster (Slurm); null when the
    /// cluster is declared to AI Mass (the local executor).
    /// </summary>
    Task<ExecutorCluster?> DiscoverAsync(CancellationToken cancellationToken);
}

/// <summary>A backend's nodes and partitions, as discovered from it.</summary>
/// <param name="Partitions">Partitions (Slurm's queues), the default one first.</param>
/// <param name="Nodes">Nodes, each in one or more partitions.</param>
public sealed record ExecutorCluster(IReadOnlyList<ExecutorPartition> Partitions, IReadOnlyList<ExecutorNode> Nodes)
{
    /// <summary>Partitions configured for AI Mass queues (a queue not listed goes to the partition of its name, else the default).</summary>
    public IReadOnlyDictionary<string, string> QueuePartitions { get; init; } = new Dictionary<string, string>();

    /// <summary>Whether the backend queues and places jobs itself: AI Mass then submits every job at once.</summary>
    public bool DelegatesScheduling { get; init; }
}

/// <summary>A partition of a backend's cluster.</summary>
/// <param name="Name">Its name.</param>
/// <param name="IsDefault">Whether jobs go there when they name none.</param>
public sealed record ExecutorPartition(string Name, bool IsDefault);

/// <summary>A node of a backend's cluster.</summary>
/// <param name="Name">Its name.</param>
/// <param name="Address">Where it is reached.</param>
/// <param name="Partitions">The partitions it belongs to.</param>
/// <param name="Capacity">CPUs, memory and GPUs it offers.</param>
/// <param name="Available">Whether it takes new work (not down, drained or draining).</param>
/// <param name="State">The backend's own word for its state (<c>idle</c>, <c>mixed</c>, <c>drained</c>, ...).</param>
/// <param name="Reason">Why it is unavailable, if it is.</param>
public sealed record ExecutorNode(string Name, string Address, IReadOnlyList<string> Partitions, ResourceVector Capacity, bool Available, string State, string? Reason)
{
    /// <summary>The GPU type when the backend names it (Slurm's <c>gpu:a100:4</c>).</summary>
    public string? GpuModel { get; init; }

    /// <summary>Features (Slurm's node features), selectable as labels with the value <c>true</c>.</summary>
    public IReadOnlyList<string> Features { get; init; } = [];
}

/// <summary>The backend could not be reached or refused to answer (its controller is down); a later try may succeed.</summary>
public sealed class ExecutorUnavailableException : IOException
{
    /// <summary>Creates the exception with the message shown on the job.</summary>
    public ExecutorUnavailableException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ExecutorUnavailableException()
    {
    }

    /// <summary>Creates the exception with an inner exception.</summary>
    public ExecutorUnavailableException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>What a task's processes have used.</summary>
/// <param name="CpuSeconds">CPU time of the whole tree since the task started.</param>
/// <param name="ResidentBytes">Resident memory of the tree now.</param>
public sealed record TaskUsage(double CpuSeconds, long ResidentBytes);
