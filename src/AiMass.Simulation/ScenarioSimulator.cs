using System.Diagnostics;
using AiMass.Scheduling;

namespace AiMass.Simulation;

/// <summary>
/// Runs a scenario: the live scheduler (<see cref="ClusterScheduler"/>, unchanged) on a virtual clock over the
/// scenario's nodes and pools, with its jobs arriving, running for their work, being preempted and killed by node
/// failures (losing what they did since their last checkpoint), dynamic pools provisioning nodes after their delay,
/// and — for the <c>las</c> policy — Tiresias' least-attained-service queues. At equal times job ends come first,
/// then node changes, then arrivals, then policy timers, then one scheduling pass.
/// </summary>
public sealed partial class ScenarioSimulator
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
    private long _integralTo;
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
        _scheduler = new ClusterScheduler(time: _clock);
        (scenario.Cluster with { Policy = policy.Apply(scenario.Cluster.Policy) }).ApplyTo(_scheduler);
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
        StepDone,
        StorageFree,
        Stop,
        Fail,
        Repair,
        Ready,
        Demote,
        Promote,
        Wake,
    }

    /// <summary>
    /// An event: the job (index) or node it is about, the job's, step's or node's epoch it was scheduled in, and a
    /// value (a trace failure's down time in ticks, the bytes a storage release frees).
    /// </summary>
    private readonly record struct Event(Kind Kind, int Index, int Epoch, string? Node, long Value = 0);

    private sealed class JobState(SimJob job, int index)
    {
        public SimJob Job { get; } = job;

        public int Index { get; } = index;

        /// <summary>Bumped whenever it starts or stops, so events of an earlier run are recognised as stale.</summary>
        public int Epoch { get; set; }

        public bool Running { get; set; }

        public bool Done { get; set; }

        /// <summary>Work left, in ticks at full speed.</summary>
        public double Remaining { get; set; } = job.Duration.Ticks;

        /// <summary>Work left when the current run began.</summary>
        public double RunStartRemaining { get; set; }

        public Step Step { get; set; }

        /// <summary>Bumped whenever the current step's end is rescheduled, so earlier step events are stale.</summary>
        public int StepEpoch { get; set; }

        public long LastUpdate { get; set; }

        /// <summary>Compute speed, as a fraction of full speed (below 1 when its traffic lacks bandwidth).</summary>
        public double Rate { get; set; } = 1;

        public List<JobFlow> Flows { get; } = [];

        /// <summary>Whether space for its output is reserved on the storage.</summary>
        public bool HoldsStorage { get; set; }

        public long RunStart { get; set; }

        public long RunOverhead { get; set; }

        public long? FirstStart { get; set; }

        public long? End { get; set; }

        public int Starts { get; set; }

        public List<JobRun> Runs { get; } = [];

        public string[] Nodes { get; set; } = [];

        public int Preemptions { get; set; }

        public int FailureKills { get; set; }

        public long LostTicks { get; set; }

        public long FailureLostTicks { get; set; }

        /// <summary>Whether the job's last stop was a node failure (its restore time is then lost to failures).</summary>
        public bool RestartAfterFailure { get; set; }

        /// <summary>Least-attained-service: service since the job was last put in the first queue, and its queue.</summary>
        public double Attained { get; set; }

        public int Level { get; set; }

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
            if (_scenario.Network.StorageCapacity is { } capacity && original.StageOutBytes > capacity)
            {
                Skip("its output is larger than the storage");
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
        _integralTo = _jobs.Count > 0 ? _jobs[0].Job.Submit.Ticks : 0; // jobs are loaded in submission order
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
            Reflow();
        }
        if (_outstanding > 0 && _scenario.Horizon is { } h)
        {
            Advance(Math.Max(_now, h.Ticks));
        }
    }

    private void Advance(long time)
    {
        // Utilisation counts from the first submission (Load sets _integralTo to it): earlier events (a failure before
        // any job arrived) do not count.
        if (time > _integralTo)
        {
            var dt = (time - _integralTo) / (double)TimeSpan.TicksPerSecond;
            var up = _scheduler.UpCapacity;
            _busyCpuIntegral += _busyCpuMillis / 1000.0 * dt;
            _busyGpuIntegral += _busyGpus * dt;
            _upCpuIntegral += up.CpuMillis / 1000.0 * dt;
            _upGpuIntegral += up.Gpus * dt;
            _integralTo = time;
        }
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
            case Kind.StepDone when job!.StepEpoch == e.Epoch && job.Running:
                StepDone(job);
                break;
            case Kind.StorageFree:
                ReleaseStorage(e.Value);
                break;
            case Kind.Stop when job!.Epoch == e.Epoch && job.Running:
                Stop(job, _scenario.Checkpoints.OnPreemption, failure: false);
                _scheduler.Requeue(job.Job.Id, "preempted");
                break;
            case Kind.Fail:
                Fail(e.Node!, e.Value > 0 ? TimeSpan.FromTicks(e.Value) : null, e.Epoch);
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

    /// <summary>The job's work is done and its output written: it leaves the cluster.</summary>
    private void Complete(JobState job)
    {
        job.Running = false;
        job.Done = true;
        job.End = _now;
        job.Runs.Add(new JobRun(Seconds(job.RunStart), Seconds(_now), job.Nodes, RunEnd.Completed));
        ChargeRestore(job, job.RunOverhead);
        job.Remaining = 0;
        job.Epoch++;
        job.StepEpoch++;
        _running--;
        _outstanding--;
        Unbusy(job);
        _scheduler.Release(job.Job.Id);
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
        BeginRun(job);
        if (_policy.LeastAttainedService)
        {
            ScheduleDemotion(job);
        }
    }

    /// <summary>Ends a run before the job's work is done, keeping what it saved.</summary>
    private void Stop(JobState job, bool checkpointNow, bool failure)
    {
        AbortRun(job);
        var held = _now - job.RunStart;
        var computed = (long)Math.Round(job.RunStartRemaining - job.Remaining);
        var interval = (job.Job.CheckpointInterval ?? _scenario.Checkpoints.Interval)?.Ticks;
        var saved = checkpointNow ? computed : interval is { } i and > 0 ? computed / i * i : 0;
        job.Remaining = job.RunStartRemaining - saved;
        ChargeRestore(job, Math.Min(held, job.RunOverhead));
        job.LostTicks += computed - saved;
        if (failure)
        {
            job.FailureLostTicks += computed - saved;
        }
        job.RestartAfterFailure = failure;
        job.Attained += computed / (double)TimeSpan.TicksPerSecond * job.ServiceUnits;
        job.Runs.Add(new JobRun(Seconds(job.RunStart), Seconds(_now), job.Nodes, failure ? RunEnd.NodeFailed : RunEnd.Preempted));
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

    /// <summary>
    /// Puts a job in the queue its attained service (GPU-seconds, or core-seconds) says, and schedules a check for when
    /// it would cross the next threshold computing at full speed (staging or a slow network make it later: the check
    /// then comes again).
    /// </summary>
    private void ScheduleDemotion(JobState job)
    {
        var thresholds = _scenario.Las.Thresholds;
        Progress(job);
        var service = job.Attained + ((job.RunStartRemaining - job.Remaining) / TimeSpan.TicksPerSecond * job.ServiceUnits);
        while (job.Level < thresholds.Count && service >= thresholds[job.Level] - 1e-6)
        {
            job.Level++;
        }
        _scheduler.SetPriority(job.Job.Id, Top - job.Level);
        if (job.Level >= thresholds.Count)
        {
            return;
        }
        var ticks = Math.Ceiling((thresholds[job.Level] - service) / Math.Max(job.ServiceUnits, 1e-9) * TimeSpan.TicksPerSecond);
        if (ticks < job.Remaining)
        {
            var computeStarts = job.Step == Step.Restore ? Math.Max(_now, job.RunStart + job.RunOverhead) : _now;
            _events.Add(computeStarts + (long)ticks, PhaseTimer, new Event(Kind.Demote, job.Index, job.Epoch, null));
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
            StagingHours = _stagingTicks / TimeSpan.TicksPerHour,
            NetworkSlowdownHours = _slowTicks / TimeSpan.TicksPerHour,
            StorageStallHours = _stallTicks / TimeSpan.TicksPerHour,
            PeakStorageBytes = _storagePeak,
        };
        watch.Stop();
        return new ScenarioResult(_policy.Name, results, _skipped, summary, _series, _events.Processed + _passes, watch.Elapsed);
    }
}
