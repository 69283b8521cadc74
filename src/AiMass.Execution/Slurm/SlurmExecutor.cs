using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace AiMass.Execution.Slurm;

/// <summary>
/// Runs each attempt of a job as one Slurm batch job: one allocation whose <c>srun</c> step starts every task of the
/// gang together. Each task runs through a small shell wrapper that appends its output to the task's log file and
/// records its exit status in a file (as the local executor's does), on the file system the compute nodes share with
/// the control plane. One <c>squeue --json</c> call per poll interval follows every job; <c>scancel</c> stops them.
/// Jobs carry the control plane's tag in their comment, so a restarted control plane finds its own jobs again.
/// </summary>
public sealed class SlurmExecutor : IExecutor, IDisposable
{
    private readonly SlurmOptions _options;
    private readonly ISlurmCommands _commands;
    private readonly string _tag;
    private readonly string _scripts;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<SlurmJob?>> _waiting = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _misses = new(StringComparer.Ordinal);
    private readonly Lock _refreshLock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _startLock = new();
    private Task? _poller;
    private volatile IReadOnlyDictionary<string, SlurmJob> _snapshot = new Dictionary<string, SlurmJob>();
    private long _snapshotTicks = long.MinValue;
    private volatile Dictionary<string, ExecutorNode> _nodes = [];
    private readonly ConcurrentDictionary<string, bool> _signalled = new(StringComparer.Ordinal);
    private long _unreachableSinceTicks = long.MinValue;

    /// <summary>Creates the executor; <paramref name="tag"/> and <paramref name="scriptDirectory"/> fill in what the options leave empty.</summary>
    public SlurmExecutor(SlurmOptions options, ISlurmCommands commands, string tag, string scriptDirectory)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _commands = commands ?? throw new ArgumentNullException(nameof(commands));
        _tag = options.Tag.Length > 0 ? options.Tag : tag;
        _scripts = options.ScriptDirectory.Length > 0 ? options.ScriptDirectory : scriptDirectory;
        if (options.Scheduling is not ("aimass" or "slurm"))
        {
            throw new ArgumentException($"Slurm:Scheduling must be 'aimass' (AI Mass orders and places jobs) or 'slurm' (Slurm does), not '{options.Scheduling}'", nameof(options));
        }
        if (_tag.Length == 0 || _tag.Any(char.IsWhiteSpace))
        {
            throw new ArgumentException($"the Slurm tag '{_tag}' must be a non-empty word", nameof(tag));
        }
    }

    /// <inheritdoc />
    public string Name => "slurm";

    /// <inheritdoc />
    public bool EnforcesWalltime => true;

    /// <summary>The message of the last failed poll, while Slurm cannot be reached; null when the last poll succeeded.</summary>
    public string? LastError { get; private set; }

    /// <summary>
    /// A control plane's mark on its Slurm jobs (in their comment): <c>aimass-</c> and a digest of its data directory,
    /// so two control planes under one Unix user never take each other's jobs.
    /// </summary>
    public static string DefaultTag(string dataDirectory) =>
        "aimass-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(dataDirectory))))[..12];

    /// <summary>The Slurm job name of an attempt: <c>aimass-JOB.ATTEMPT</c>.</summary>
    public static string JobName(long jobId, int attempt) => string.Create(CultureInfo.InvariantCulture, $"aimass-{jobId}.{attempt}");

    /// <inheritdoc />
    public string? Status(TaskHandle task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.ExternalId is not { } id || !_snapshot.TryGetValue(id, out var job))
        {
            return LastError is { } error ? $"unknown: {error}" : null;
        }
        return job.State switch
        {
            "PENDING" => $"PENDING ({job.Reason})",
            "RUNNING" or "COMPLETING" => $"{job.State} on {job.Nodes}",
            _ => job.State,
        };
    }

    /// <inheritdoc />
    public string NodeAddress(string node) => _nodes.TryGetValue(node, out var n) ? n.Address : node;

    /// <inheritdoc />
    public Task<ExecutorCluster?> DiscoverAsync(CancellationToken cancellationToken) => Task.Run<ExecutorCluster?>(() =>
    {
        var nodes = SlurmJson.ParseNodes(_commands.Run("sinfo", ["--json"]));
        var partitions = SlurmJson.ParsePartitions(_commands.Run("scontrol", ["--oneliner", "show", "partition"]));
        _nodes = nodes.ToDictionary(n => n.Name, StringComparer.Ordinal);
        return new ExecutorCluster(partitions, nodes)
        {
            QueuePartitions = _options.Queues.Where(q => q.Value.Partition.Length > 0).ToDictionary(q => q.Key, q => q.Value.Partition, StringComparer.Ordinal),
            DelegatesScheduling = _options.DelegatesScheduling,
        };
    }, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<TaskHandle>> StartAsync(GangLaunch gang, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(gang);
        if (gang.Tasks.Count == 0 || gang.Tasks.Any(t => t.Command.Count == 0))
        {
            throw new ArgumentException("the command is empty", nameof(gang));
        }
        return Task.Run<IReadOnlyList<TaskHandle>>(() =>
        {
            var dir = Path.Combine(_scripts, $"job-{gang.JobId.ToString(CultureInfo.InvariantCulture)}", $"attempt-{gang.Attempt.ToString(CultureInfo.InvariantCulture)}");
            Directory.CreateDirectory(dir);
            foreach (var task in gang.Tasks)
            {
                Directory.CreateDirectory(task.WorkingDirectory);
                Directory.CreateDirectory(Path.GetDirectoryName(task.LogPath)!);
                File.Delete(task.LogPath + ".exit");
                WriteScript(Path.Combine(dir, $"task-{task.TaskIndex.ToString(CultureInfo.InvariantCulture)}.sh"), TaskScript(task));
            }
            var batch = Path.Combine(dir, "batch.sh");
            WriteScript(batch, BatchScript(gang, dir));
            var output = Run("sbatch", SubmitArguments(gang, batch)).Trim();
            var id = output.Split(';')[0].Trim();
            if (id.Length == 0 || !id.All(char.IsAsciiDigit))
            {
                throw new SlurmCommandException($"sbatch answered '{output}' instead of a job id");
            }
            return gang.Tasks.Select(t => new TaskHandle(gang.JobId, t.TaskIndex, gang.Attempt, t.Node, 0, 0, t.LogPath, t.LogPath + ".exit") { ExternalId = id }).ToList();
        }, cancellationToken);
    }

    /// <summary>The <c>sbatch</c> arguments for an attempt (public for tests and for <c>docs/slurm.md</c>'s table).</summary>
    public IReadOnlyList<string> SubmitArguments(GangLaunch gang, string batchScript)
    {
        ArgumentNullException.ThrowIfNull(gang);
        var perTask = gang.PerTask;
        var cpus = CpusPerTask(perTask);
        var args = new List<string>
        {
            "--parsable",
            "--job-name=" + JobName(gang.JobId, gang.Attempt),
            $"--comment={_tag} job={gang.JobId.ToString(CultureInfo.InvariantCulture)} attempt={gang.Attempt.ToString(CultureInfo.InvariantCulture)}",
            "--ntasks=" + gang.Tasks.Count.ToString(CultureInfo.InvariantCulture),
            "--cpus-per-task=" + cpus.ToString(CultureInfo.InvariantCulture),
            // Memory per CPU, so that it scales with the tasks Slurm places on each node (--mem would be per node).
            "--mem-per-cpu=" + Math.Max(1, (perTask.MemoryBytes + (cpus << 20) - 1) / (cpus << 20)).ToString(CultureInfo.InvariantCulture) + "M",
            "--output=" + gang.Tasks[0].LogPath,
            "--open-mode=append",
            "--chdir=" + gang.Tasks[0].WorkingDirectory,
            "--no-requeue", // AI Mass decides about retries; a job Slurm requeued on its own would run twice
        };
        if (perTask.Gpus > 0)
        {
            args.Add("--gpus-per-task=" + perTask.Gpus.ToString(CultureInfo.InvariantCulture));
        }
        if (gang.Walltime is { } walltime)
        {
            args.Add("--time=" + SlurmJson.FormatTime(walltime));
        }
        if (gang.Partition is { } partition)
        {
            args.Add("--partition=" + partition);
        }
        var nodes = gang.Tasks.Select(t => t.Node).Distinct(StringComparer.Ordinal).ToList();
        var pinned = !_options.DelegatesScheduling && nodes.All(_nodes.ContainsKey);
        _options.Queues.TryGetValue(gang.Queue, out var mapped);
        if (pinned)
        {
            args.Add("--nodelist=" + string.Join(',', nodes));
            args.Add("--nodes=" + nodes.Count.ToString(CultureInfo.InvariantCulture));
        }
        var account = mapped is { Account.Length: > 0 } ? mapped.Account : _options.Account;
        if (account.Length > 0)
        {
            args.Add("--account=" + account);
        }
        var qos = mapped is { Qos.Length: > 0 } ? mapped.Qos : _options.Qos;
        if (qos.Length > 0)
        {
            args.Add("--qos=" + qos);
        }
        args.AddRange(_options.ExtraArguments);
        args.Add(batchScript);
        return args;
    }

    /// <summary>Whole CPUs of a task (Slurm counts CPUs, AI Mass millicores): rounded up, at least one.</summary>
    private static long CpusPerTask(AiMass.Resources.ResourceVector perTask) => Math.Max(1, (perTask.CpuMillis + 999) / 1000);

    /// <inheritdoc />
    public async Task<TaskExit> WaitAsync(TaskHandle task, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        var id = task.ExternalId ?? throw new ArgumentException("the task has no Slurm job id", nameof(task));
        var done = _waiting.GetOrAdd(id, _ => new TaskCompletionSource<SlurmJob?>(TaskCreationOptions.RunContinuationsAsynchronously));
        EnsurePolling();
        var job = await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return Exit(task, job);
    }

    /// <inheritdoc />
    public TaskExit? Probe(TaskHandle task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.ExternalId is not { } id)
        {
            return ExitFile.Read(task.ExitPath) ?? TaskExit.Lost("it was never submitted to Slurm");
        }
        if (!TryRefresh(_options.PollInterval))
        {
            return null; // Slurm cannot say now: the task is followed, and its end is known once Slurm answers
        }
        if (_snapshot.TryGetValue(id, out var job))
        {
            return job.HasEnded ? Exit(task, job) : null;
        }
        return Exit(task, Account([id]).GetValueOrDefault(id));
    }

    /// <inheritdoc />
    public TaskHandle? Find(TaskHandle task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (!TryRefresh(TimeSpan.Zero))
        {
            throw new ExecutorUnavailableException($"cannot look for job {task.JobId}'s Slurm job while Slurm is unreachable: {LastError}");
        }
        var name = JobName(task.JobId, task.Attempt);
        var found = _snapshot.Values.Where(j => j.Name == name).OrderByDescending(j => long.Parse(j.Id, CultureInfo.InvariantCulture)).FirstOrDefault();
        return found is null ? null : task with { ExternalId = found.Id };
    }

    /// <inheritdoc />
    public void Terminate(TaskHandle task, bool kill)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.ExternalId is not { } id || (_snapshot.TryGetValue(id, out var job) && job.HasEnded))
        {
            return;
        }
        // The tasks of a gang share one Slurm job: it is signalled once per level.
        if (_signalled.TryGetValue(id, out var killed) && (killed || !kill))
        {
            return;
        }
        try
        {
            if (kill)
            {
                // SIGKILL to every process of the job at once, then the cancellation Slurm records (it would wait KillWait first).
                Run("scancel", ["--full", "--signal=KILL", id]);
                Run("scancel", [id]);
            }
            else
            {
                // SIGTERM to the tasks (the step), not to the batch shell: the wrappers record how the commands ended.
                Run("scancel", ["--signal=TERM", id]);
            }
            _signalled[id] = kill;
        }
        catch (SlurmCommandException)
        {
            // The job has already ended (scancel: "Job/step already completing or completed").
        }
        catch (ExecutorUnavailableException)
        {
            // Not recorded as signalled: the control plane asks again at the kill deadline.
        }
    }

    /// <summary>
    /// Runs a command for the control plane's loop. While the last call found Slurm unreachable (and the poller has
    /// not seen it back), fails at once instead of waiting for Slurm's own connection retries (about 9 s a call), so
    /// that an outage slows the control plane once, not at every job.
    /// </summary>
    private string Run(string tool, IReadOnlyList<string> arguments)
    {
        var since = Interlocked.Read(ref _unreachableSinceTicks);
        if (since != long.MinValue && LastError is { } error)
        {
            EnsurePolling();
            throw new ExecutorUnavailableException(error);
        }
        try
        {
            return _commands.Run(tool, arguments);
        }
        catch (ExecutorUnavailableException e)
        {
            Unreachable(e.Message);
            throw;
        }
    }

    private void Unreachable(string message)
    {
        LastError = message;
        Interlocked.CompareExchange(ref _unreachableSinceTicks, Environment.TickCount64, long.MinValue);
        EnsurePolling();
    }

    /// <inheritdoc />
    public TaskUsage? Usage(TaskHandle task) => null; // sstat needs Slurm's job accounting; Slurm's own tools report usage

    /// <inheritdoc />
    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _poller?.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        _stop.Dispose();
    }

    private static TaskExit Exit(TaskHandle task, SlurmJob? job)
    {
        var recorded = ExitFile.Read(task.ExitPath);
        if (job is null)
        {
            return recorded ?? TaskExit.Lost($"Slurm no longer knows job {task.ExternalId} and its task left no exit status");
        }
        return SlurmStates.ToExit(job, recorded);
    }

    private void EnsurePolling()
    {
        lock (_startLock)
        {
            _poller ??= Task.Run(PollAsync);
        }
    }

    private async Task PollAsync()
    {
        using var timer = new PeriodicTimer(_options.PollInterval);
        try
        {
            do
            {
                if (!_waiting.IsEmpty || Interlocked.Read(ref _unreachableSinceTicks) != long.MinValue)
                {
                    TryRefresh(TimeSpan.Zero);
                }
            }
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Reads every job of this user with one <c>squeue</c> call (unless the last read is younger than
    /// <paramref name="maxAge"/>) and ends the waits of those that ended.
    /// </summary>
    private bool TryRefresh(TimeSpan maxAge)
    {
        lock (_refreshLock)
        {
            if (_snapshotTicks != long.MinValue && Environment.TickCount64 - _snapshotTicks < maxAge.TotalMilliseconds)
            {
                return true;
            }
            try
            {
                var jobs = SlurmJson.ParseJobs(_commands.Run("squeue", ["--json", "--me", "--states=all"]))
                    .Where(j => j.Comment.StartsWith(_tag + " ", StringComparison.Ordinal))
                    .ToDictionary(j => j.Id, StringComparer.Ordinal);
                _snapshot = jobs;
                _snapshotTicks = Environment.TickCount64;
                LastError = null;
                Interlocked.Exchange(ref _unreachableSinceTicks, long.MinValue);
            }
            catch (ExecutorUnavailableException e)
            {
                Unreachable(e.Message);
                return false;
            }
            catch (SlurmCommandException e)
            {
                LastError = e.Message;
                return false;
            }
            var missing = new List<string>();
            foreach (var (id, done) in _waiting)
            {
                if (_snapshot.TryGetValue(id, out var job))
                {
                    _misses.TryRemove(id, out _);
                    if (job.HasEnded && _waiting.TryRemove(id, out _))
                    {
                        _signalled.TryRemove(id, out _);
                        done.TrySetResult(job);
                    }
                }
                else if (_misses.AddOrUpdate(id, 1, (_, n) => n + 1) >= 2)
                {
                    missing.Add(id); // gone from slurmctld's memory (older than MinJobAge): ask the accounting
                }
            }
            if (missing.Count > 0)
            {
                var accounted = Account(missing);
                foreach (var id in missing)
                {
                    if (_waiting.TryRemove(id, out var done))
                    {
                        _misses.TryRemove(id, out _);
                        _signalled.TryRemove(id, out _);
                        done.TrySetResult(accounted.GetValueOrDefault(id));
                    }
                }
            }
            return true;
        }
    }

    /// <summary>Jobs slurmctld no longer holds, from <c>sacct</c> (empty when accounting is off).</summary>
    private Dictionary<string, SlurmJob> Account(IReadOnlyList<string> ids)
    {
        try
        {
            return SlurmJson.ParseJobs(_commands.Run("sacct", ["--json", "--jobs=" + string.Join(',', ids)]))
                .Where(j => j.HasEnded).GroupBy(j => j.Id, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        }
        catch (Exception e) when (e is ExecutorUnavailableException or SlurmCommandException)
        {
            return [];
        }
    }

    private string BatchScript(GangLaunch gang, string dir)
    {
        var srun = _options.BinDirectory.Length == 0 ? "srun" : Path.Combine(_options.BinDirectory, "srun");
        var text = new StringBuilder();
        text.Append("#!/bin/sh\n");
        text.Append(CultureInfo.InvariantCulture, $"# AI Mass job {gang.JobId} attempt {gang.Attempt}: {gang.Tasks.Count} task(s) started together by one srun step\n");
        // The step's shape is given again: since 22.05 srun no longer takes --cpus-per-task from the allocation.
        text.Append("exec ").Append(Quote(srun))
            .Append(CultureInfo.InvariantCulture, $" --kill-on-bad-exit=1 --ntasks={gang.Tasks.Count} --cpus-per-task={CpusPerTask(gang.PerTask)}");
        if (gang.PerTask.Gpus > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $" --gpus-per-task={gang.PerTask.Gpus}");
        }
        text.Append(" /bin/sh -c 'exec /bin/sh \"$0/task-$SLURM_PROCID.sh\"' ").Append(Quote(dir)).Append('\n');
        return text.ToString();
    }

    // As the local executor's wrapper: output appended to the task's log, the command's status written aside and
    // renamed into place, SIGTERM trapped so the shell outlives the command it forwards the signal to.
    private static string TaskScript(TaskLaunch task)
    {
        var text = new StringBuilder();
        text.Append("#!/bin/sh\n");
        text.Append("exit_file=").Append(Quote(task.LogPath + ".exit")).Append('\n');
        text.Append("exec </dev/null >>").Append(Quote(task.LogPath)).Append(" 2>&1\n");
        foreach (var (key, value) in task.Environment.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            text.Append("export ").Append(key).Append('=').Append(Quote(value)).Append('\n');
        }
        text.Append("cd ").Append(Quote(task.WorkingDirectory)).Append(" || exit 1\n");
        text.Append("trap : TERM INT HUP\n");
        text.Append(string.Join(' ', task.Command.Select(Quote))).Append('\n');
        text.Append("code=$?\n");
        text.Append("printf '%s\\n' \"$code\" > \"$exit_file.tmp\" && mv -f \"$exit_file.tmp\" \"$exit_file\"\n");
        text.Append("exit \"$code\"\n");
        return text.ToString();
    }

    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static void WriteScript(string path, string text)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, text);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        }
        File.Move(temporary, path, overwrite: true);
    }
}
