namespace AiMass.Simulation;

/// <summary>
/// How a running job progresses: restore its checkpoint, stage its input in from the shared storage, compute (slower
/// when its gang's traffic does not get the bandwidth it needs), wait for space on the storage if it is full, stage its
/// output out. Transfers are flows on the network model's links, shared max-min fairly by traffic class weight; rates
/// are recomputed once per instant in which a flow starts or ends (a fluid model).
/// </summary>
public sealed partial class ScenarioSimulator
{
    private enum Step
    {
        Restore,
        StageIn,
        Compute,
        StorageWait,
        StageOut,
    }

    /// <summary>A flow of a job's current step and what it still has to move (infinite for training traffic).</summary>
    private sealed class JobFlow(Flow flow, double left)
    {
        public Flow Flow { get; } = flow;

        public double Left { get; set; } = left;
    }

    private readonly List<double> _linkCapacity = [];
    private readonly Dictionary<string, int> _links = new(StringComparer.Ordinal);
    private readonly HashSet<JobState> _flowing = [];
    private readonly List<JobState> _storageWaiters = [];
    private bool _reflow;
    private long _storageUsed;
    private long _storagePeak;
    private double _stagingTicks;
    private double _slowTicks;
    private double _stallTicks;

    private int Link(string name, double? bandwidth)
    {
        if (bandwidth is null)
        {
            return -1;
        }
        if (!_links.TryGetValue(name, out var index))
        {
            index = _linkCapacity.Count;
            _linkCapacity.Add(bandwidth.Value);
            _links[name] = index;
        }
        return index;
    }

    private int Uplink(string node) => Link("node:" + node, _scenario.Network.NodeBandwidth);

    /// <summary>Begins a run of a job on its nodes.</summary>
    private void BeginRun(JobState job)
    {
        job.RunStartRemaining = job.Remaining;
        Enter(job, job.RunOverhead > 0 ? Step.Restore : Step.StageIn);
    }

    private void Enter(JobState job, Step step)
    {
        DropFlows(job);
        job.Step = step;
        job.LastUpdate = _now;
        job.StepEpoch++;
        var net = _scenario.Network;
        switch (step)
        {
            case Step.Restore:
                ScheduleStep(job, _now + job.RunOverhead);
                break;
            case Step.StageIn when job.Job.StageInBytes > 0 && net.StorageBandwidth is not null:
                AddStagingFlows(job, job.Job.StageInBytes);
                break;
            case Step.StageIn:
                Enter(job, Step.Compute);
                break;
            case Step.Compute:
                job.Rate = 1;
                if (job.Job.CommBandwidth > 0 && job.Job.Tasks > 1 && (net.NodeBandwidth is not null || net.SpineBandwidth is not null))
                {
                    var weight = net.Weight(NetworkModel.TrainingClass);
                    foreach (var node in job.Nodes)
                    {
                        var path = new[] { Uplink(node), Link("spine", net.SpineBandwidth) }.Where(l => l >= 0).ToArray();
                        job.Flows.Add(new JobFlow(new Flow(path, weight, job.Job.CommBandwidth), double.PositiveInfinity));
                    }
                    _flowing.Add(job);
                    _reflow = true;
                }
                else
                {
                    ScheduleStep(job, _now + (long)Math.Ceiling(job.Remaining));
                }
                break;
            case Step.StorageWait:
                _storageWaiters.Add(job);
                break;
            case Step.StageOut:
                var bytes = job.Job.StageOutBytes;
                if (bytes > 0 && net.StorageCapacity is { } capacity && !job.HoldsStorage)
                {
                    if (_storageUsed + bytes > capacity)
                    {
                        Enter(job, Step.StorageWait);
                        return;
                    }
                    _storageUsed += bytes;
                    _storagePeak = Math.Max(_storagePeak, _storageUsed);
                    job.HoldsStorage = true;
                }
                if (bytes > 0 && net.StorageBandwidth is not null)
                {
                    AddStagingFlows(job, bytes);
                }
                else
                {
                    Finish(job);
                }
                break;
        }
    }

    private void AddStagingFlows(JobState job, long bytes)
    {
        var net = _scenario.Network;
        var weight = net.Weight(NetworkModel.StagingClass);
        var storage = Link("storage", net.StorageBandwidth);
        foreach (var node in job.Nodes)
        {
            var path = new[] { storage, Uplink(node) }.Where(l => l >= 0).ToArray();
            job.Flows.Add(new JobFlow(new Flow(path, weight), (double)bytes / job.Nodes.Length));
        }
        _flowing.Add(job);
        _reflow = true;
    }

    private void DropFlows(JobState job)
    {
        if (job.Flows.Count > 0)
        {
            job.Flows.Clear();
            _flowing.Remove(job);
            _reflow = true;
        }
    }

    private void ScheduleStep(JobState job, long at) =>
        _events.Add(Math.Max(at, _now), PhaseEnd, new Event(Kind.StepDone, job.Index, job.StepEpoch, null));

    /// <summary>Brings a running job's progress in its step up to now, at the rates it has had since its last update.</summary>
    private void Progress(JobState job)
    {
        var dt = _now - job.LastUpdate;
        job.LastUpdate = _now;
        if (dt <= 0)
        {
            return;
        }
        switch (job.Step)
        {
            case Step.Compute:
                job.Remaining = Math.Max(0, job.Remaining - (job.Rate * dt));
                _slowTicks += (1 - job.Rate) * dt;
                break;
            case Step.StageIn or Step.StageOut:
                foreach (var f in job.Flows)
                {
                    f.Left = Math.Max(0, f.Left - (f.Flow.Rate * dt / TimeSpan.TicksPerSecond));
                }
                _stagingTicks += dt;
                break;
            case Step.StorageWait:
                _stallTicks += dt;
                break;
            default:
                break;
        }
    }

    /// <summary>A job's step may be over: move it on (or, if flows remain, wait for the next recomputation).</summary>
    private void StepDone(JobState job)
    {
        Progress(job);
        switch (job.Step)
        {
            case Step.Restore:
                Enter(job, Step.StageIn);
                break;
            case Step.Compute when job.Remaining <= 1: // within a tick: done
                job.Remaining = 0;
                Enter(job, Step.StageOut);
                break;
            case Step.Compute:
                if (job.Flows.Count == 0)
                {
                    ScheduleStep(job, _now + (long)Math.Ceiling(job.Remaining));
                }
                break;
            case Step.StageIn or Step.StageOut:
                var removed = job.Flows.RemoveAll(f => f.Left <= Math.Max(1, f.Flow.Rate * 2 / TimeSpan.TicksPerSecond));
                if (job.Flows.Count == 0)
                {
                    _flowing.Remove(job);
                    _reflow = true;
                    if (job.Step == Step.StageIn)
                    {
                        Enter(job, Step.Compute);
                    }
                    else
                    {
                        Finish(job);
                    }
                }
                else if (removed > 0)
                {
                    _reflow = true;
                }
                break;
            default:
                break;
        }
    }

    /// <summary>Shares the links among the flows of this instant and reschedules the steps whose rates changed.</summary>
    private void Reflow()
    {
        if (!_reflow)
        {
            return;
        }
        _reflow = false;
        var flows = new List<Flow>();
        foreach (var job in _flowing)
        {
            Progress(job);
            flows.AddRange(job.Flows.Select(f => f.Flow));
        }
        MaxMinFairness.Allocate(_linkCapacity, flows);
        foreach (var job in _flowing)
        {
            job.StepEpoch++;
            if (job.Step == Step.Compute)
            {
                // A synchronous gang computes at the pace of its slowest task's traffic.
                job.Rate = Math.Clamp(job.Flows.Min(f => f.Flow.Rate / f.Flow.Demand), 1e-9, 1);
                ScheduleStep(job, _now + (long)Math.Ceiling(job.Remaining / job.Rate));
            }
            else
            {
                var next = job.Flows.Min(f => f.Left / Math.Max(f.Flow.Rate, 1e-9));
                ScheduleStep(job, _now + (long)Math.Ceiling(Math.Min(next * TimeSpan.TicksPerSecond, long.MaxValue / 4.0)));
            }
        }
    }

    /// <summary>Ends a run before it finished: its flows stop, a reserved output space is given back.</summary>
    private void AbortRun(JobState job)
    {
        Progress(job);
        DropFlows(job);
        _storageWaiters.Remove(job);
        if (job.HoldsStorage)
        {
            job.HoldsStorage = false;
            ReleaseStorage(job.Job.StageOutBytes);
        }
        job.StepEpoch++;
    }

    /// <summary>The job's output is written: it is done; its output leaves the storage after the retention.</summary>
    private void Finish(JobState job)
    {
        if (job.HoldsStorage)
        {
            job.HoldsStorage = false;
            if (_scenario.Network.OutputRetention is { } retention)
            {
                _events.Add(_now + retention.Ticks, PhaseEnd, new Event(Kind.StorageFree, -1, 0, null, job.Job.StageOutBytes));
            }
        }
        Complete(job);
    }

    private void ReleaseStorage(long bytes)
    {
        _storageUsed -= bytes;
        // Admit waiting writers in the order they came, while their output fits.
        while (_storageWaiters.Count > 0 && _scenario.Network.StorageCapacity is { } capacity
            && _storageUsed + _storageWaiters[0].Job.StageOutBytes <= capacity)
        {
            var next = _storageWaiters[0];
            _storageWaiters.RemoveAt(0);
            Progress(next);
            Enter(next, Step.StageOut);
        }
    }
}
