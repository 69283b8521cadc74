using System.Diagnostics.Metrics;
using AiMass.Scheduling;

namespace AiMass.Jobs;

/// <summary>
/// The job service's instruments (meter <c>AiMass.Jobs</c>, exported as <c>aimass_jobs_*</c>): queue lengths, wait
/// and run time histograms, allocation per pool and per owner, scheduling pass duration.
/// </summary>
public sealed class JobMetrics : IDisposable
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "AiMass.Jobs";

    private readonly Meter _meter;
    private readonly Histogram<double> _wait;
    private readonly Histogram<double> _run;
    private readonly Histogram<double> _pass;
    private readonly Counter<long> _started;
    private readonly Counter<long> _finished;
    private Func<ClusterSnapshot>? _snapshot;

    /// <summary>Creates the instruments.</summary>
    public JobMetrics(IMeterFactory? factory = null)
    {
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _wait = _meter.CreateHistogram<double>("wait_time", unit: "s", description: "Time from submission (or requeue) to start, by queue.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600] });
        _run = _meter.CreateHistogram<double>("run_time", unit: "s", description: "Time from start to end of an attempt, by queue and outcome.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600] });
        _pass = _meter.CreateHistogram<double>("scheduling_pass_duration", unit: "s", description: "Time of one scheduling pass.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1] });
        _started = _meter.CreateCounter<long>("started", description: "Job attempts started, by queue.");
        _finished = _meter.CreateCounter<long>("finished", description: "Jobs ended, by queue and final state.");
        _meter.CreateObservableGauge("queue_length", () => Snapshot()?.Queues.Select(q =>
            new Measurement<long>(q.Pending, new KeyValuePair<string, object?>("queue", q.Spec.Name))) ?? [], description: "Jobs waiting, by queue.");
        _meter.CreateObservableGauge("running", () => Snapshot()?.Queues.Select(q =>
            new Measurement<long>(q.Running, new KeyValuePair<string, object?>("queue", q.Spec.Name))) ?? [], description: "Jobs running or stopping, by queue.");
        _meter.CreateObservableGauge("pool_allocated", () => Snapshot()?.PoolAllocation() ?? [], description: "Resources allocated per pool (cpu in cores, memory in bytes, gpu).");
        _meter.CreateObservableGauge("pool_capacity", () => Snapshot()?.PoolCapacity() ?? [], description: "Resources of the nodes that are up per pool.");
        _meter.CreateObservableGauge("owner_allocated", () => Snapshot()?.OwnerAllocation() ?? [], description: "Resources allocated per owner.");
    }

    internal void Observe(Func<ClusterSnapshot> snapshot) => _snapshot = snapshot;

    internal void Started(string queue, TimeSpan waited)
    {
        var tag = new KeyValuePair<string, object?>("queue", queue);
        _started.Add(1, tag);
        _wait.Record(Math.Max(0, waited.TotalSeconds), tag);
    }

    internal void AttemptEnded(string queue, string outcome, TimeSpan ran) =>
        _run.Record(Math.Max(0, ran.TotalSeconds), new KeyValuePair<string, object?>("queue", queue), new KeyValuePair<string, object?>("outcome", outcome));

    internal void Finished(string queue, string state) =>
        _finished.Add(1, new KeyValuePair<string, object?>("queue", queue), new KeyValuePair<string, object?>("state", state));

    internal void Pass(TimeSpan elapsed) => _pass.Record(elapsed.TotalSeconds);

    private ClusterSnapshot? Snapshot() => _snapshot?.Invoke();

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();
}

/// <summary>An immutable picture of the scheduler after a pass, read by the API and the metrics without locks.</summary>
internal sealed record ClusterSnapshot(
    IReadOnlyList<NodeView> Nodes,
    IReadOnlyList<QueueView> Queues,
    IReadOnlyDictionary<long, JobView> Jobs,
    IReadOnlyDictionary<string, Resources.ResourceVector> Owners,
    IReadOnlyDictionary<string, (double Cpu, long Memory)> Usage)
{
    public static ClusterSnapshot Empty { get; } = new([], [], new Dictionary<long, JobView>(), new Dictionary<string, Resources.ResourceVector>(), new Dictionary<string, (double, long)>());

    public IEnumerable<Measurement<double>> PoolAllocation() =>
        Nodes.GroupBy(n => n.Spec.Pool).SelectMany(g => Measure(g.Key, "pool", g.Aggregate(Resources.ResourceVector.Zero, (a, n) => a + n.Allocated)));

    public IEnumerable<Measurement<double>> PoolCapacity() =>
        Nodes.Where(n => n.State == NodeState.Up).GroupBy(n => n.Spec.Pool).SelectMany(g => Measure(g.Key, "pool", g.Aggregate(Resources.ResourceVector.Zero, (a, n) => a + n.Spec.Capacity)));

    public IEnumerable<Measurement<double>> OwnerAllocation() => Owners.SelectMany(p => Measure(p.Key, "owner", p.Value));

    private static IEnumerable<Measurement<double>> Measure(string name, string tag, Resources.ResourceVector v)
    {
        KeyValuePair<string, object?>[] Tags(string resource) => [new(tag, name), new("resource", resource)];
        yield return new Measurement<double>(v.CpuMillis / 1000.0, Tags("cpu"));
        yield return new Measurement<double>(v.MemoryBytes, Tags("memory"));
        yield return new Measurement<double>(v.Gpus, Tags("gpu"));
        foreach (var (custom, amount) in v.Custom)
        {
            yield return new Measurement<double>(amount, Tags(custom));
        }
    }
}
