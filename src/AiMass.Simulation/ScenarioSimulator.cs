using System.Diagnostics;
using AiMass.Scheduling;

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

/// <summary>
/// Runs a scenario: the live scheduler (<see cref="ClusterScheduler"/>, unchanged) on a virtual clock over the
/// scenario's nodes and pools, with its jobs arriving, running for their work, being preempted and killed by node
/// failures (losing what they did since their last checkpoint), dynamic pools provisioning nodes after their delay,
/// and — for the <c>las</c> policy — Tiresias' least-attained-service queues. At equal times job ends come first,
/// then node changes, then arrivals, then policy timers, then one scheduling pass.
/// </summary>
public sealed class ScenarioSimulator
{
    private const int PhaseEnd = 0;
    private const int PhaseNode = 1;
    private const int PhaseArrival = 2;
    private const int PhaseTimer = 3;

    private readonly Scenario _scenario;
    private readonly SimulationPolicy _policy;
    private readonly DateTimeOffset _epoch = DateTimeOffset.UnixEpoch;
    private readonly VirtualClock _clock;
    private readonly ClusterScheduler _scheduler;
    private readonly EventCalendar<Event> _events = new();
    private readonly List<JobState> _jobs = [];
    private readonly Dictionary<long, JobState> _byId = [];
    private readonly SortedDictionary<string, int> _skipped = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _nodeEpochs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Random> _nodeRandom = new(StringComparer.Ordinal);
    private readonly List<ClusterSample> _series = [];
    private readonly bool _dynamicPools;
    private long _now;
    private long _nextWake = long.MaxValue;
    private int _pending;
    private int _outstanding;
    private int _running;
    private long _busyCpuMillis;
    private long _busyGpus;
    private double _busyCpuIntegral;
    private double _busyGpuIntegral;
    private double _upCpuIntegral;
    private double _upGpuIntegral;
    private long _integralFrom = long.MinValue;
    private long _integralTo = long.MinValue;
    private int _nodeFailures;
    private int _failureKills;
    private int _preemptions;
    private int _provisioned;
    private long _passes;

    private ScenarioSimulator(Scenario scenario, SimulationPolicy policy)
    {
        _scenario = scenario;
        _policy = policy;
        _clock = new VirtualClock(_epoch);
        _scheduler = new ClusterScheduler(policy.Apply(scenario.Cluster.Policy), _clock);
        foreach (var queue in scenario.Cluster.Queues)
        {
            _scheduler.AddQueue(queue);
        }
        foreach (var pool in scenario.Cluster.Pools)
        {
            _scheduler.AddPool(pool);
        }
        foreach (var node in scenario.Cluster.Nodes)
        {
            _scheduler.AddNode(node);
        }
        _dynamicPools = scenario.Cluster.Pools.Any(p => p.Kind == PoolKind.Dynamic);
    }

    /// <summary>Runs <paramref name="scenario"/> under <paramref name="policy"/> (null: the scenario's own policy).</summary>
    public static ScenarioResult Run(Scenario scenario, SimulationPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        var watch = Stopwatch.StartNew();
        var simulator = new ScenarioSimulator(scenario, policy ?? new SimulationPolicy());
        simulator.Load();
        simulator.Loop();
        return simulator.Result(watch);
    }

    private enum Kind
    {
        Arrival,
        End,
        Stop,
        Fail,
        Repair,
        Ready,
        Demote,
        Promote,
        Wake,
    }

    /// <summary>An event: the job (index) or node it is about, the job's or node's epoch it was scheduled in, and for a trace failure its down time.</summary>
    private readonly record struct Event(Kind Kind, int Index, int Epoch, string? Node, long DownTicks = 0);

    private sealed class JobState(SimJob job, int index)
    {
        public SimJob Job { get; } = job;

        public int Index { get; } = index;

        /// <summary>Bumped whenever it starts or stops, so events of an earlier run are recognised as stale.</summary>
        public int Epoch { get; set; }

        public bool Running { get; set; }

        public bool Done { get; set; }

        public long Remaining { get; set; } = job.Duration.Ticks;

        public long RunStart { get; set; }

        public long RunOverhead { get; set; }

        public long? FirstStart { get; set; }

        public long? End { get; set; }

        public int Starts { get; set; }

        public List<JobRun> Runs { get; } = [];

        public IReadOnlyList<string> Nodes { get; set; } = [];

        public int Preemptions { get; set; }

        public int FailureKills { get; set; }

        public long LostTicks { get; set; }

        public long FailureLostTicks { get; set; }

        /// <summary>Whether the job's last stop was a node failure (its restore time is then lost to failures).</summary>
        public bool RestartAfterFailure { get; set; }

        /// <summary>Least-attained-service: service since the job was last put in the first queue, and its queue.</summary>
        public double Attained { get; set; }

        public int Level { get; set; }

        public long LastRun { get; set; }

        public double ServiceUnits => Job.Gpus > 0 ? Job.Gpus : Job.CpuMillis / 1000.0;
    }

    private void Load()
    {
        var shapes = _scenario.Cluster.Nodes.Select(n => n.Capacity)
            .Concat(_scenario.Cluster.Pools.Where(p => p.Template is not null).Select(p => p.Template!.Capacity))
            .Distinct().ToList();
        var queues = new HashSet<string>(_scheduler.Queues.Select(q => q.Spec.Name), StringComparer.Ordinal);
        foreach (var (why, count) in _scenario.SkippedJobs)
        {
            _skipped[why] = _skipped.GetValueOrDefault(why) + count;
        }
        var ids = new HashSet<long>();
        foreach (var original in _scenario.Jobs.OrderBy(j => j.Submit).ThenBy(j => j.Id))
        {
            if (!ids.Add(original.Id))
            {
                throw new ArgumentException($"job number {original.Id} appears more than once in the workload");
            }
            if (original.Duration <= TimeSpan.Zero)
            {
                Skip("run time not positive");
                continue;
            }
            if (GangShaper.Fit(original, shapes) is not { } job)
            {
                Skip("needs more than any node offers, and does not split into equal tasks that fit one");
                continue;
            }
            if (queues.Add(job.Queue))
            {
                _scheduler.AddQueue(new QueueSpec(job.Queue)); // a trace's queue (Philly's virtual cluster) the cluster does not declare: weight 1
            }
            try
            {
                _scheduler.Check(Request(job));
            }
            catch (SchedulingException e)
            {
                Skip(e.Message);
                continue;
            }
            var state = new JobState(job, _jobs.Count);
            _jobs.Add(state);
            _byId[job.Id] = state;
            _events.Add(job.Submit.Ticks, PhaseArrival, new Event(Kind.Arrival, state.Index, 0, null));
            _outstanding++;
        }
        foreach (var node in _scenario.Cluster.Nodes)
        {
            ScheduleFailure(node.Name, node.Pool, 0);
        }
        foreach (var failure in _scenario.Failures.Trace)
        {
            _events.Add(failure.At.Ticks, PhaseNode, new Event(Kind.Fail, -1, -1, failure.Node, Math.Max(1, failure.Down.Ticks)));
        }
    }

    private void Skip(string why) => _skipped[why] = _skipped.GetValueOrDefault(why) + 1;

    private JobRequest Request(SimJob job) => new(job.Id, job.Tasks, job.PerTask)
    {
        Name = job.Name,
        Queue = job.Queue,
        Owner = job.User,
        Priority = _policy.LeastAttainedService ? Top : job.Priority,
        Walltime = job.Estimate,
        Preemptible = _policy.LeastAttainedService || job.Preemptible,
        NodeSelector = job.NodeSelector,
        SubmitTime = _epoch + job.Submit,
    };

    private int Top => _scenario.Las.Thresholds.Count;

    private void Loop()
    {
        // Failures recur for ever: the run ends when every job is done (or at the horizon, or after a century).
        var horizon = _scenario.Horizon?.Ticks ?? TimeSpan.FromDays(36_525).Ticks;
        while (_outstanding > 0 && _events.NextTime <= horizon && _events.TryTake(out var time, out _, out var e))
        {
            Advance(time);
            Handle(e);
            if (_events.NextTime == time)
            {
                continue; // every event of this instant first, then one pass
            }
            Pass();
        }
        if (_outstanding > 0 && _scenario.Horizon is { } h)
        {
            Advance(Math.Max(_now, h.Ticks));
        }
    }

    private void Advance(long time)
    {
        if (_integralTo != long.MinValue && time > _integralTo)
        {
            var dt = (time - _integralTo) / (double)TimeSpan.TicksPerSecond;
            var up = _scheduler.UpCapacity;
            _busyCpuIntegral += _busyCpuMillis / 1000.0 * dt;
            _busyGpuIntegral += _busyGpus * dt;
            _upCpuIntegral += up.CpuMillis / 1000.0 * dt;
            _upGpuIntegral += up.Gpus * dt;
        }
        if (_integralFrom == long.MinValue)
        {
            _integralFrom = time;
        }
        _integralTo = time;
        _now = time;
        _clock.AdvanceTo(_epoch.AddTicks(time));
    }

    private void Handle(Event e)
    {
        var job = e.Index >= 0 ? _jobs[e.Index] : null;
        switch (e.Kind)
        {
            case Kind.Arrival:
                _scheduler.Submit(Request(job!.Job));
                _pending++;
                break;
            case Kind.End when job!.Epoch == e.Epoch && job.Running:
                job.Running = false;
                job.Done = true;
                job.End = _now;
                job.Runs.Add(new JobRun(Seconds(job.RunStart), Seconds(_now), job.Nodes, RunEnd.Completed));
                ChargeRestore(job, job.RunOverhead);
                job.Remaining = 0;
                job.Epoch++;
                _running--;
                _outstanding--;
                Unbusy(job);
                _scheduler.Release(job.Job.Id);
                break;
            case Kind.Stop when job!.Epoch == e.Epoch && job.Running:
                Stop(job, _scenario.Checkpoints.OnPreemption, failure: false);
                _scheduler.Requeue(job.Job.Id, "preempted");
                break;
            case Kind.Fail:
                Fail(e.Node!, e.DownTicks > 0 ? TimeSpan.FromTicks(e.DownTicks) : null, e.Epoch);
                break;
            case Kind.Repair when NodeEpoch(e.Node!) == e.Epoch && _scheduler.GetNode(e.Node!) is { State: NodeState.Down } node:
                _scheduler.SetNodeState(e.Node!, NodeState.Up, "repaired");
                ScheduleFailure(e.Node!, node.Spec.Pool, e.Epoch);
                break;
            case Kind.Ready when _scheduler.GetNode(e.Node!) is { State: NodeState.Provisioning } node:
                _scheduler.SetNodeState(e.Node!, NodeState.Up, "provisioned");
                ScheduleFailure(e.Node!, node.Spec.Pool, NodeEpoch(e.Node!));
                break;
            case Kind.Demote when job!.Epoch == e.Epoch && job.Running:
                job.Level++;
                _scheduler.SetPriority(job.Job.Id, Top - job.Level);
                ScheduleDemotion(job);
                break;
            case Kind.Promote when job!.Epoch == e.Epoch && !job.Running && !job.Done:
                job.Level = 0;
                job.Attained = 0;
                _scheduler.SetPriority(job.Job.Id, Top);
                break;
            default:
                break; // a stale event (the job or node moved on) or a wake-up for the pass
        }
    }

    private void Pass()
    {
        _passes++;
        var pass = _scheduler.Schedule();
        foreach (var started in pass.Started)
        {
            var job = _byId[started.JobId];
            job.Nodes = started.Tasks.Select(t => t.Node).ToArray();
            Start(job);
        }
        foreach (var preemption in pass.Preemptions)
        {
            var victim = _byId[preemption.VictimId];
            victim.Preemptions++;
            _preemptions++;
            // The job saves its work and exits when told (checkpoint model), at the latest by its kill deadline.
            _events.Add(_now, PhaseEnd, new Event(Kind.Stop, victim.Index, victim.Epoch, null));
        }
        foreach (var scaleUp in pass.ScaleUps)
        {
            var delay = _scenario.Cluster.ProvisioningDelays.GetValueOrDefault(scaleUp.Pool);
            foreach (var node in scaleUp.Nodes)
            {
                _provisioned++;
                _events.Add(_now + delay.Ticks, PhaseNode, new Event(Kind.Ready, -1, 0, node));
            }
        }
        foreach (var scaleDown in pass.ScaleDowns)
        {
            _nodeEpochs[scaleDown.Node] = NodeEpoch(scaleDown.Node) + 1; // its pending failure is void
        }
        if (_dynamicPools)
        {
            ScheduleIdleWake();
        }
        Sample();
    }

    private void Start(JobState job)
    {
        _pending--;
        _running++;
        job.Running = true;
        job.Epoch++;
        job.RunStart = _now;
        job.RunOverhead = job.Starts > 0 ? _scenario.Checkpoints.RestoreTime.Ticks : 0;
        job.FirstStart ??= _now;
        job.Starts++;
        _busyCpuMillis += job.Job.CpuMillis;
        _busyGpus += job.Job.Gpus;
        _events.Add(_now + job.RunOverhead + job.Remaining, PhaseEnd, new Event(Kind.End, job.Index, job.Epoch, null));
        if (_policy.LeastAttainedService)
        {
            ScheduleDemotion(job);
        }
    }

    /// <summary>Ends a run before the job's work is done, keeping what it saved.</summary>
    private void Stop(JobState job, bool checkpointNow, bool failure)
    {
        var held = _now - job.RunStart;
        var computed = Math.Min(Math.Max(0, held - job.RunOverhead), job.Remaining);
        var interval = (job.Job.CheckpointInterval ?? _scenario.Checkpoints.Interval)?.Ticks;
        var saved = checkpointNow ? computed : interval is { } i and > 0 ? computed / i * i : 0;
        job.Remaining -= saved;
        ChargeRestore(job, Math.Min(held, job.RunOverhead));
        job.LostTicks += computed - saved;
        if (failure)
        {
            job.FailureLostTicks += computed - saved;
        }
        job.RestartAfterFailure = failure;
        job.Attained += computed / (double)TimeSpan.TicksPerSecond * job.ServiceUnits;
        job.Runs.Add(new JobRun(Seconds(job.RunStart), Seconds(_now), job.Nodes, failure ? RunEnd.NodeFailed : RunEnd.Preempted));
        job.LastRun = held;
        job.Running = false;
        job.Epoch++;
        _running--;
        _pending++;
        Unbusy(job);
        if (_policy.LeastAttainedService && _scenario.Las.StarvationFactor > 0)
        {
            var wait = (long)(Math.Max(held, TimeSpan.TicksPerSecond) * _scenario.Las.StarvationFactor);
            _events.Add(_now + wait, PhaseTimer, new Event(Kind.Promote, job.Index, job.Epoch, null));
        }
    }

    /// <summary>Time spent restoring a checkpoint is lost to whatever stopped the previous run.</summary>
    private static void ChargeRestore(JobState job, long spent)
    {
        job.LostTicks += spent;
        if (job.RestartAfterFailure)
        {
            job.FailureLostTicks += spent;
        }
    }

    private void Unbusy(JobState job)
    {
        _busyCpuMillis -= job.Job.CpuMillis;
        _busyGpus -= job.Job.Gpus;
    }

    /// <summary>Schedules the moment a running job's attained service crosses its queue's threshold.</summary>
    private void ScheduleDemotion(JobState job)
    {
        var thresholds = _scenario.Las.Thresholds;
        while (job.Level < thresholds.Count && job.Attained >= thresholds[job.Level])
        {
            job.Level++; // it already has more than this queue allows (it ran before)
        }
        _scheduler.SetPriority(job.Job.Id, Top - job.Level);
        if (job.Level >= thresholds.Count)
        {
            return;
        }
        // Attained holds the service of earlier runs; this run adds its units for every second it computes.
        var seconds = (thresholds[job.Level] - job.Attained) / Math.Max(job.ServiceUnits, 1e-9);
        var at = job.RunStart + job.RunOverhead + (long)Math.Ceiling(seconds * TimeSpan.TicksPerSecond);
        if (at < job.RunStart + job.RunOverhead + job.Remaining)
        {
            _events.Add(Math.Max(at, _now), PhaseTimer, new Event(Kind.Demote, job.Index, job.Epoch, null));
        }
    }

    private int NodeEpoch(string node) => _nodeEpochs.GetValueOrDefault(node);

    /// <summary>Schedules a node's next random failure, when its pool has a failure model.</summary>
    private void ScheduleFailure(string node, string pool, int epoch)
    {
        var model = _scenario.Failures.Pools.FirstOrDefault(p => p.Pool == pool) ?? _scenario.Failures.Pools.FirstOrDefault(p => p.Pool == "*");
        if (model is null)
        {
            return;
        }
        var random = NodeRandom(node);
        var up = model.TimeToFailure.Sample(random);
        _events.Add(_now + Math.Max(1, up.Ticks), PhaseNode, new Event(Kind.Fail, -1, epoch, node));
    }

    /// <summary>Each node draws from its own stream, so one node's failures do not shift another's when the workload changes.</summary>
    private Random NodeRandom(string node)
    {
        if (!_nodeRandom.TryGetValue(node, out var random))
        {
            var hash = 17;
            foreach (var c in node)
            {
                hash = unchecked((hash * 31) + c);
            }
            _nodeRandom[node] = random = new Random(unchecked((_scenario.Seed * 486_187_739) ^ hash));
        }
        return random;
    }

    /// <summary>
    /// A node fails: its jobs are killed (losing work since their last checkpoint) and requeued; it comes back after its
    /// repair time. A random failure carries the node's epoch (-1 for a trace failure, which always applies).
    /// </summary>
    private void Fail(string name, TimeSpan? traceDown, int epoch)
    {
        if (_scheduler.GetNode(name) is not { } node || node.State is NodeState.Down or NodeState.Provisioning)
        {
            return; // a trace failure of an unknown node, or a node already down or gone
        }
        if (epoch >= 0 && epoch != NodeEpoch(name))
        {
            return;
        }
        _nodeFailures++;
        var nextEpoch = NodeEpoch(name) + 1;
        _nodeEpochs[name] = nextEpoch;
        foreach (var id in _scheduler.SetNodeState(name, NodeState.Down, "failed"))
        {
            var job = _byId[id];
            job.FailureKills++;
            _failureKills++;
            Stop(job, checkpointNow: false, failure: true);
            _scheduler.Requeue(id, $"node {name} failed");
        }
        TimeSpan down;
        if (traceDown is { } d)
        {
            down = d;
        }
        else
        {
            var model = _scenario.Failures.Pools.First(p => p.Pool == node.Spec.Pool || p.Pool == "*");
            down = model.TimeToRepair.Sample(NodeRandom(name));
        }
        _events.Add(_now + Math.Max(1, down.Ticks), PhaseNode, new Event(Kind.Repair, -1, nextEpoch, name));
    }

    /// <summary>Wakes the loop when the first idle dynamic node reaches its pool's idle timeout (so it can be released).</summary>
    private void ScheduleIdleWake()
    {
        var earliest = long.MaxValue;
        var pools = _scheduler.Pools.ToDictionary(p => p.Name, StringComparer.Ordinal);
        foreach (var node in _scheduler.Nodes)
        {
            if (node.IdleSince is { } since && node.State == NodeState.Up
                && pools.TryGetValue(node.Spec.Pool, out var pool) && pool.Kind == PoolKind.Dynamic)
            {
                earliest = Math.Min(earliest, (since + pool.IdleTimeout - _epoch).Ticks);
            }
        }
        if (earliest != long.MaxValue && earliest > _now && (earliest < _nextWake || _nextWake <= _now))
        {
            _nextWake = earliest;
            _events.Add(earliest, PhaseTimer, new Event(Kind.Wake, -1, 0, null));
        }
    }

    private void Sample()
    {
        var up = _scheduler.UpCapacity;
        var sample = new ClusterSample(_now / (double)TimeSpan.TicksPerSecond, _busyCpuMillis / 1000.0, _busyGpus, up.CpuMillis / 1000.0, up.Gpus, _pending, _running);
        if (_series.Count > 0 && _series[^1].Time == sample.Time)
        {
            _series[^1] = sample;
        }
        else if (_series.Count == 0 || _series[^1] with { Time = sample.Time } != sample)
        {
            _series.Add(sample);
        }
    }

    private static double Seconds(long ticks) => ticks / (double)TimeSpan.TicksPerSecond;

    private ScenarioResult Result(Stopwatch watch)
    {
        foreach (var job in _jobs.Where(j => j.Running))
        {
            job.Runs.Add(new JobRun(Seconds(job.RunStart), Seconds(_now), job.Nodes, RunEnd.Running));
        }
        var results = _jobs.OrderBy(j => j.Job.Id).Select(j => new ScenarioJobResult(
            j.Job, j.FirstStart is { } s ? Seconds(s) : null, j.End is { } e ? Seconds(e) : null)
        {
            Restarts = Math.Max(0, j.Starts - 1),
            Runs = j.Runs,
            Preemptions = j.Preemptions,
            FailureKills = j.FailureKills,
            LostSeconds = Seconds(j.LostTicks),
            FailureLostSeconds = Seconds(j.FailureLostTicks),
        }).ToList();
        var finished = results.Where(r => r.End is not null).ToList();
        var waits = finished.Select(r => r.Wait!.Value).Order().ToArray();
        var jcts = finished.Select(r => r.CompletionTime!.Value).Order().ToArray();
        var first = results.Count > 0 ? results.Min(r => r.Submit) : 0;
        var last = finished.Count > 0 ? finished.Max(r => r.End!.Value) : first;
        var summary = new ScenarioSummary
        {
            Jobs = finished.Count,
            Unfinished = results.Count - finished.Count,
            CpuUtilization = _upCpuIntegral > 0 ? _busyCpuIntegral / _upCpuIntegral : 0,
            GpuUtilization = _upGpuIntegral > 0 ? _busyGpuIntegral / _upGpuIntegral : 0,
            MeanWait = waits.Length > 0 ? waits.Average() : 0,
            P50Wait = SimulationSummary.Percentile(waits, 0.50),
            P95Wait = SimulationSummary.Percentile(waits, 0.95),
            P99Wait = SimulationSummary.Percentile(waits, 0.99),
            MeanBoundedSlowdown = finished.Count > 0 ? finished.Average(r => r.BoundedSlowdown!.Value) : 0,
            MeanJobCompletionTime = jcts.Length > 0 ? jcts.Average() : 0,
            P50JobCompletionTime = SimulationSummary.Percentile(jcts, 0.50),
            P95JobCompletionTime = SimulationSummary.Percentile(jcts, 0.95),
            Makespan = last - first,
            BusyGpuHours = _busyGpuIntegral / 3600,
            BusyCpuHours = _busyCpuIntegral / 3600,
            NodeFailures = _nodeFailures,
            JobsKilledByFailures = _failureKills,
            LostGpuHours = results.Sum(r => r.FailureLostSeconds * r.Job.Gpus) / 3600,
            LostCpuHours = results.Sum(r => r.FailureLostSeconds * r.Job.CpuMillis / 1000.0) / 3600,
            Preemptions = _preemptions,
            PreemptionLostGpuHours = results.Sum(r => (r.LostSeconds - r.FailureLostSeconds) * r.Job.Gpus) / 3600,
            NodesProvisioned = _provisioned,
        };
        watch.Stop();
        return new ScenarioResult(_policy.Name, results, _skipped, summary, _series, _events.Processed + _passes, watch.Elapsed);
    }
}
