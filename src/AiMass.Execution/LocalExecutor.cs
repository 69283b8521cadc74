using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace AiMass.Execution;

/// <summary>
/// Runs each task as an OS process of this machine, in its own session (so a signal reaches the whole process
/// tree), with stdout and stderr appended to the task's log file. A small <c>/bin/sh</c> wrapper outlives the command
/// to write its exit status to a file, so tasks survive a restart of the control plane and their end is still known.
/// </summary>
public sealed partial class LocalExecutor : IExecutor
{
    // $1: exit file, $2: log file, then the command. The trap makes the shell wait for the command when the process
    // group is signalled (a trapped signal, unlike an ignored one, is reset to default in the command it runs).
    private const string Wrapper =
        "exit_file=$1; log=$2; shift 2\n" +
        "exec </dev/null >>\"$log\" 2>&1\n" +
        "trap : TERM INT HUP\n" +
        "\"$@\"\n" +
        "code=$?\n" +
        "printf '%s\\n' \"$code\" > \"$exit_file.tmp\" && mv -f \"$exit_file.tmp\" \"$exit_file\"\n" +
        "exit \"$code\"\n";

    private readonly Dictionary<int, Process> _children = [];
    private readonly Lock _lock = new();
    private readonly TimeSpan _pollInterval;

    /// <summary>Creates the executor; <paramref name="pollInterval"/> paces the watch over tasks it did not start itself.</summary>
    public LocalExecutor(TimeSpan? pollInterval = null)
    {
        _pollInterval = pollInterval ?? TimeSpan.FromMilliseconds(200);
    }

    /// <inheritdoc />
    public string Name => "local";

    /// <inheritdoc />
    public bool EnforcesWalltime => false;

    /// <inheritdoc />
    public string NodeAddress(string node) => "127.0.0.1";

    /// <inheritdoc />
    public string? Status(TaskHandle task) => null;

    /// <inheritdoc />
    public Task<ExecutorCluster?> DiscoverAsync(CancellationToken cancellationToken) => Task.FromResult<ExecutorCluster?>(null);

    /// <inheritdoc />
    public async Task<IReadOnlyList<TaskHandle>> StartAsync(GangLaunch gang, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(gang);
        var started = new List<TaskHandle>(gang.Tasks.Count);
        try
        {
            foreach (var launch in gang.Tasks)
            {
                started.Add(await StartAsync(launch, cancellationToken).ConfigureAwait(false));
            }
        }
        catch
        {
            foreach (var handle in started)
            {
                Terminate(handle, kill: true);
            }
            throw;
        }
        return started;
    }

    /// <summary>Starts one task.</summary>
    public Task<TaskHandle> StartAsync(TaskLaunch launch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(launch);
        if (launch.Command.Count == 0)
        {
            throw new ArgumentException("the command is empty", nameof(launch));
        }
        Directory.CreateDirectory(launch.WorkingDirectory);
        Directory.CreateDirectory(Path.GetDirectoryName(launch.LogPath)!);
        var exitPath = launch.LogPath + ".exit";
        File.Delete(exitPath);
        var info = new ProcessStartInfo("/usr/bin/setsid")
        {
            UseShellExecute = false,
            WorkingDirectory = launch.WorkingDirectory,
        };
        foreach (var arg in (string[])["/bin/sh", "-c", Wrapper, "aimass-task", exitPath, launch.LogPath])
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var arg in launch.Command)
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in launch.Environment)
        {
            info.Environment[key] = value;
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("the task process did not start");
        lock (_lock)
        {
            _children[process.Id] = process;
        }
        var handle = new TaskHandle(launch.JobId, launch.TaskIndex, launch.Attempt, launch.Node, process.Id,
            ProcessTree.StartTime(process.Id) ?? 0, launch.LogPath, exitPath);
        return Task.FromResult(handle);
    }

    /// <inheritdoc />
    public async Task<TaskExit> WaitAsync(TaskHandle task, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        Process? child;
        lock (_lock)
        {
            _children.TryGetValue(task.Pid, out child);
        }
        if (child is not null)
        {
            await child.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                _children.Remove(task.Pid);
            }
            var fromFile = ExitFile.Read(task.ExitPath);
            var code = child.ExitCode;
            child.Dispose();
            // The wrapper is gone (its command ended, or it was killed): nothing of the task may outlive it.
            ProcessTree.KillGroup(task.Pid, task.ProcessStart);
            return fromFile ?? (code > 128 ? TaskExit.FromCode(code) : TaskExit.Lost($"the task's shell ended with {code} before recording the command's status"));
        }
        // Not our child (started before a restart): watch the process id until it is gone.
        while (true)
        {
            var probe = Probe(task);
            if (probe is not null)
            {
                return probe;
            }
            await Task.Delay(_pollInterval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public TaskExit? Probe(TaskHandle task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (!task.IsLaunched)
        {
            return TaskExit.Lost("its launch was not completed");
        }
        if (ProcessTree.IsAlive(task.Pid, task.ProcessStart))
        {
            return null;
        }
        ProcessTree.KillGroup(task.Pid, task.ProcessStart);
        return ExitFile.Read(task.ExitPath) ?? TaskExit.Lost("the process ended without recording an exit status (killed with its wrapper, or the machine restarted)");
    }

    /// <inheritdoc />
    public void Terminate(TaskHandle task, bool kill)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (!task.IsLaunched || !ProcessTree.IsAlive(task.Pid, task.ProcessStart))
        {
            return;
        }
        ProcessTree.Signal(task.Pid, kill ? ProcessTree.SigKill : ProcessTree.SigTerm);
    }

    /// <inheritdoc />
    public TaskHandle? Find(TaskHandle task)
    {
        ArgumentNullException.ThrowIfNull(task);
        var pid = ProcessTree.FindByArgument(task.ExitPath);
        return pid is { } p && ProcessTree.StartTime(p) is { } start ? task with { Pid = p, ProcessStart = start } : null;
    }

    /// <inheritdoc />
    public TaskUsage? Usage(TaskHandle task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return ProcessTree.IsAlive(task.Pid, task.ProcessStart) ? ProcessTree.Usage(task.Pid) : null;
    }
}

/// <summary>The file a task's wrapper writes the command's exit status to (atomically: written aside, then renamed).</summary>
internal static class ExitFile
{
    /// <summary>The recorded status, or null when there is none (yet).</summary>
    public static TaskExit? Read(string path)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var code) ? TaskExit.FromCode(code) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>Process trees of this machine, through <c>/proc</c> and <c>kill(2)</c>.</summary>
internal static partial class ProcessTree
{
    public const int SigKill = 9;
    public const int SigTerm = 15;

    /// <summary>The start time of a process in clock ticks since boot (field 22 of <c>/proc/PID/stat</c>), or null when it is gone.</summary>
    public static long? StartTime(int pid)
    {
        var fields = StatFields(pid);
        return fields is not null && fields.Length > 19 && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var start) ? start : null;
    }

    /// <summary>True when <paramref name="pid"/> runs and is the process that started at <paramref name="start"/> (0: any), and is not a zombie.</summary>
    public static bool IsAlive(int pid, long start)
    {
        var fields = StatFields(pid);
        if (fields is null || fields[0] == "Z" || fields[0] == "X")
        {
            return false;
        }
        return start == 0 || (fields.Length > 19 && fields[19] == start.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Signals the process group led by <paramref name="pid"/> and every descendant of it, including ones that left
    /// the group (a task that started its own session).
    /// </summary>
    public static void Signal(int pid, int signal)
    {
        RequireTaskPid(pid);
        var targets = Descendants(pid);
        _ = Kill(-pid, signal);
        foreach (var p in targets)
        {
            _ = Kill(p, signal);
        }
    }

    /// <summary>
    /// Kills what is left of the process group <paramref name="pgid"/> after its leader (which started at
    /// <paramref name="start"/>) ended. Linux does not give a process id to a new process while a group still carries
    /// it, so while the group has members no unrelated process can hold the id; once a process with another start time
    /// holds it, the group was empty before that process started and nothing is left to kill.
    /// </summary>
    public static void KillGroup(int pgid, long start)
    {
        RequireTaskPid(pgid);
        if (StartTime(pgid) is { } now && start != 0 && now != start)
        {
            return; // the id was given to another process: the task's group is long gone
        }
        _ = Kill(-pgid, SigKill);
    }

    /// <summary>
    /// A task's process id is never 0 or 1: kill(2) reads 0 as "the caller's own process group" and -1 as "every
    /// process", so a missing id must never reach it.
    /// </summary>
    private static void RequireTaskPid(int pid)
    {
        if (pid <= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(pid), pid, "a task's process id must be greater than 1");
        }
    }

    /// <summary>The process and all its descendants, found by their parent ids.</summary>
    public static IReadOnlyList<int> Descendants(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            var fields = StatFields(pid);
            if (fields is null || fields.Length < 2 || !int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var parent))
            {
                continue;
            }
            if (!children.TryGetValue(parent, out var list))
            {
                children[parent] = list = [];
            }
            list.Add(pid);
        }
        var result = new List<int> { root };
        for (var i = 0; i < result.Count; i++)
        {
            if (children.TryGetValue(result[i], out var list))
            {
                result.AddRange(list);
            }
        }
        return result;
    }

    /// <summary>CPU time (including reaped children) and resident memory of a process and its descendants.</summary>
    public static TaskUsage Usage(int root)
    {
        const double TicksPerSecond = 100; // USER_HZ, 100 on every Linux architecture .NET runs on
        long ticks = 0;
        long pages = 0;
        foreach (var pid in Descendants(root))
        {
            var f = StatFields(pid);
            if (f is null || f.Length < 22)
            {
                continue;
            }
            for (var i = 11; i <= 14; i++)
            {
                ticks += long.TryParse(f[i], NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : 0;
            }
            pages += long.TryParse(f[21], NumberStyles.None, CultureInfo.InvariantCulture, out var rss) ? rss : 0;
        }
        return new TaskUsage(ticks / TicksPerSecond, pages * Environment.SystemPageSize);
    }

    /// <summary>The process whose command line contains <paramref name="argument"/> as one argument, if any.</summary>
    public static int? FindByArgument(string argument)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (Array.IndexOf(args, argument) >= 0 && IsAlive(pid, 0))
                {
                    return pid;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return null;
    }

    /// <summary>The fields of <c>/proc/PID/stat</c> after the command name: state, ppid, pgrp, ...; null when gone.</summary>
    private static string[]? StatFields(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        var close = text.LastIndexOf(')');
        return close < 0 ? null : text[(close + 2)..].Split(' ');
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
