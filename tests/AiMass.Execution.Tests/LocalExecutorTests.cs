namespace AiMass.Execution.Tests;

public sealed class LocalExecutorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aimass-exec-").FullName;
    private readonly LocalExecutor _executor = new(TimeSpan.FromMilliseconds(50));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private TaskLaunch Launch(string script, int task = 0, IReadOnlyDictionary<string, string>? env = null) => new(
        JobId: 1, TaskIndex: task, Attempt: 1, Node: "local",
        Command: ["/bin/sh", "-c", script],
        WorkingDirectory: Path.Combine(_dir, "work"),
        Environment: env ?? new Dictionary<string, string>(),
        LogPath: Path.Combine(_dir, "logs", $"task-{task}.log"));

    private static async Task<TaskExit> WaitAsync(LocalExecutor executor, TaskHandle handle)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await executor.WaitAsync(handle, cts.Token);
    }

    [Fact]
    public async Task Run_CapturesStdoutAndStderr_InTheWorkingDirectory_WithTheEnvironment()
    {
        var handle = await _executor.StartAsync(Launch("echo out; echo err >&2; pwd; echo $GREETING", env: new Dictionary<string, string> { ["GREETING"] = "hello" }), default);
        var exit = await WaitAsync(_executor, handle);
        Assert.True(exit.Succeeded, exit.Description);
        var log = await File.ReadAllLinesAsync(handle.LogPath);
        Assert.Equal(["out", "err", Path.Combine(_dir, "work"), "hello"], log);
    }

    [Theory]
    [InlineData("exit 3", 3, "exited with code 3")]
    [InlineData("kill -9 $$", 137, "killed by signal 9 (SIGKILL)")]
    [InlineData("no-such-program-aimass", 127, "exited with code 127")]
    public async Task Exit_IsReportedAsTheShellWouldSayIt(string script, int code, string description)
    {
        var handle = await _executor.StartAsync(Launch(script), default);
        var exit = await WaitAsync(_executor, handle);
        Assert.Equal(code, exit.ExitCode);
        Assert.Equal(description, exit.Description);
    }

    [Fact]
    public async Task Terminate_ReachesTheWholeProcessTree()
    {
        var pidFile = Path.Combine(_dir, "grandchild.pid");
        var handle = await _executor.StartAsync(Launch($"sleep 300 & echo $! > {pidFile}; sleep 300"), default);
        var grandchild = await PollForPidAsync(pidFile);
        Assert.True(ProcessTree.IsAlive(grandchild, 0));

        _executor.Terminate(handle, kill: false);
        var exit = await WaitAsync(_executor, handle);

        Assert.Equal(143, exit.ExitCode); // the foreground sleep died of SIGTERM
        await PollAsync(() => !ProcessTree.IsAlive(grandchild, 0), "the background child should be gone too");
    }

    [Fact]
    public async Task Terminate_GivesTheTaskAChanceToCleanUp_KillDoesNot()
    {
        var script = "trap 'echo saving checkpoint; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
        var graceful = await _executor.StartAsync(Launch(script, task: 0), default);
        await PollAsync(() => File.Exists(graceful.LogPath) && File.ReadAllText(graceful.LogPath).Contains("ready", StringComparison.Ordinal), "task should start");
        _executor.Terminate(graceful, kill: false);
        Assert.True((await WaitAsync(_executor, graceful)).Succeeded);
        Assert.Contains("saving checkpoint", await File.ReadAllTextAsync(graceful.LogPath), StringComparison.Ordinal);

        var killed = await _executor.StartAsync(Launch("trap '' TERM; sleep 300", task: 1), default);
        _executor.Terminate(killed, kill: true);
        var exit = await WaitAsync(_executor, killed);
        // The wrapper died with it and recorded nothing, but the executor saw its own child die of SIGKILL.
        Assert.Equal("killed by signal 9 (SIGKILL)", exit.Description);
        // An executor that did not start it (after a restart) can only say it is lost.
        Assert.StartsWith("lost", new LocalExecutor().Probe(killed)!.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Recovery_AnotherExecutorFindsARunningTask_AndSeesHowItEnds()
    {
        var flag = Path.Combine(_dir, "go");
        var handle = await _executor.StartAsync(Launch($"while [ ! -f {flag} ]; do sleep 0.05; done; exit 7"), default);

        var afterRestart = new LocalExecutor(TimeSpan.FromMilliseconds(50));
        Assert.Null(afterRestart.Probe(handle));
        var waiting = afterRestart.WaitAsync(handle, default);
        await File.WriteAllTextAsync(flag, "");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.Equal(7, (await waiting.WaitAsync(cts.Token)).ExitCode);
        Assert.Equal(7, (await WaitAsync(_executor, handle)).ExitCode);
    }

    [Fact]
    public void Probe_AReusedPid_IsNotMistakenForTheTask()
    {
        var self = Environment.ProcessId;
        var handle = new TaskHandle(1, 0, 1, "local", self, ProcessTree.StartTime(self)!.Value + 1, Path.Combine(_dir, "x.log"), Path.Combine(_dir, "x.log.exit"));
        Assert.NotNull(_executor.Probe(handle));
    }

    [Fact]
    public void AHandleWhoseLaunchWasNotRecorded_IsLost_AndSignalsNothing()
    {
        // A control plane killed between recording a task and recording its process id leaves pid 0. kill(2) reads 0
        // as the caller's own process group: probing or stopping such a handle must not reach kill(2) at all.
        var handle = new TaskHandle(1, 0, 1, "local", 0, 0, Path.Combine(_dir, "x.log"), Path.Combine(_dir, "x.log.exit"));
        Assert.Equal(TaskEnd.Lost, _executor.Probe(handle)!.End);
        _executor.Terminate(handle, kill: true);
        Assert.Null(_executor.Usage(handle));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProcessTree.KillGroup(0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProcessTree.Signal(1, ProcessTree.SigTerm));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProcessTree.KillGroup(-1, 0));
    }

    [Fact]
    public async Task Probe_AReusedPidLeadingAnotherGroup_LeavesThatGroupAlone()
    {
        // The task's pid now belongs to another task's process group leader: probing the old task must not kill it.
        var other = await _executor.StartAsync(Launch("sleep 30", task: 1), default);
        try
        {
            var stale = other with { TaskIndex = 0, ProcessStart = other.ProcessStart + 1 };
            Assert.Equal(TaskEnd.Lost, _executor.Probe(stale)!.End);
            Assert.Null(_executor.Probe(other));
        }
        finally
        {
            _executor.Terminate(other, kill: true);
        }
        Assert.Equal(137, (await WaitAsync(_executor, other)).ExitCode); // killed by our SIGKILL, not by the probe
    }

    [Fact]
    public void LocalMachine_ReportsThisMachine()
    {
        var machine = LocalMachine.Describe();
        Assert.Equal(Environment.ProcessorCount * 1000L, machine.Capacity.CpuMillis);
        Assert.True(machine.Capacity.MemoryBytes > 256L << 20);
    }

    private static async Task<int> PollForPidAsync(string file)
    {
        var pid = 0;
        await PollAsync(() => File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), out pid), $"{file} should appear");
        return pid;
    }

    private static async Task PollAsync(Func<bool> condition, string what)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), $"timed out: {what}");
            await Task.Delay(20);
        }
    }
}
