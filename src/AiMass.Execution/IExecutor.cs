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

/// <summary>A started task: enough to find it again after a restart of the control plane.</summary>
/// <param name="Pid">Process id of the task's session leader.</param>
/// <param name="ProcessStart">The process's start time as the kernel counts it (guards against a reused pid).</param>
/// <param name="ExitPath">The file the exit status is written to when the task ends.</param>
public sealed record TaskHandle(long JobId, int TaskIndex, int Attempt, string Node, int Pid, long ProcessStart, string LogPath, string ExitPath);

/// <summary>How a task ended.</summary>
/// <param name="ExitCode">The exit code (128 + N when killed by signal N); null when the task was lost.</param>
/// <param name="Description">In words: <c>exited with code 3</c>, <c>killed by signal 9 (SIGKILL)</c>, <c>lost: ...</c>.</param>
public sealed record TaskExit(int? ExitCode, string Description)
{
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

    /// <summary>Starts a task.</summary>
    Task<TaskHandle> StartAsync(TaskLaunch launch, CancellationToken cancellationToken);

    /// <summary>Completes when the task ends, also for a task found again after a restart.</summary>
    Task<TaskExit> WaitAsync(TaskHandle task, CancellationToken cancellationToken);

    /// <summary>Asks the whole process tree to stop (SIGTERM), or kills it (SIGKILL).</summary>
    void Terminate(TaskHandle task, bool kill);

    /// <summary>Whether a task is still running, or how it ended (used after a restart of the control plane).</summary>
    TaskExit? Probe(TaskHandle task);

    /// <summary>
    /// Finds a task whose launch was recorded but whose process id was not (the control plane stopped in between);
    /// null when no such process runs.
    /// </summary>
    TaskHandle? Find(TaskHandle task);

    /// <summary>CPU time and resident memory of the task's process tree so far, or null when unknown.</summary>
    TaskUsage? Usage(TaskHandle task);
}

/// <summary>What a task's processes have used.</summary>
/// <param name="CpuSeconds">CPU time of the whole tree since the task started.</param>
/// <param name="ResidentBytes">Resident memory of the tree now.</param>
public sealed record TaskUsage(double CpuSeconds, long ResidentBytes);
