using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace AiMass.Serving;

/// <summary>
/// The model host's measurements, named after Triton's <c>nv_inference_*</c> family so dashboards port over: the
/// counters of <see cref="Snapshot"/> (exported as <c>aimass_nv_inference_request_success</c>, <c>..._request_failure</c>
/// by reason, <c>..._count</c> rows inferred, <c>..._exec_count</c> model executions, cumulative microseconds
/// <c>..._request_duration_us</c>, <c>..._queue_duration_us</c>, <c>..._compute_infer_duration_us</c>), and on meter
/// <c>AiMass</c> the gauge <c>nv_inference_pending_request_count</c> and the histogram
/// <c>nv_inference_overhead_duration_us</c>; every one labelled by model and version.
/// </summary>
/// <remarks>
/// The counters are plain interlocked counts per model version, read when metrics are collected: a request pays a few
/// atomic additions instead of a call into every metrics listener per measurement (prometheus-net's listener looked up
/// labels under a lock for each, about 2 % of the CPU of a loaded host).
/// </remarks>
public static class ServingMetrics
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "AiMass";

    /// <summary>Names of models not loaded here counted under their own name at most; beyond, under <c>(other)</c>.</summary>
    internal const int MaxUnknownModels = 1000;

    private static readonly string[] Reasons = ["BAD_REQUEST", "NOT_FOUND", "REJECTED", "UNAVAILABLE", "TIMEOUT", "CANCELED", "BACKEND"];
    private static readonly Meter Meter = new(MeterName);
    private static readonly ConcurrentDictionary<(string Model, string Version), Counters> Models = new();
    private static readonly ConcurrentDictionary<DynamicBatcher, (string Model, string Version)> Batchers = new();
    private static readonly Histogram<double> OverheadMicros = Meter.CreateHistogram<double>("nv_inference_overhead_duration_us", unit: "us",
        description: "Time the server adds to a request besides queue and execution (reading, parsing, encoding), per request.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [10, 25, 50, 100, 250, 500, 1000, 5000] });
    private static int _unknown;

    static ServingMetrics() =>
        Meter.CreateObservableGauge("nv_inference_pending_request_count", () => Batchers.Select(b =>
            new Measurement<long>(b.Key.Waiting, Tags(b.Value.Model, b.Value.Version))), description: "Requests waiting in the queue.");

    /// <summary>
    /// The cumulative counts of every model version so far (Triton's <c>nv_inference_*</c> counters): the exporter reads
    /// them when metrics are collected, so requests pay only atomic additions.
    /// </summary>
    public static IReadOnlyList<ModelStatistics> Snapshot() =>
        Models.Select(m => new ModelStatistics(m.Key.Model, m.Key.Version, Volatile.Read(ref m.Value.Success),
            Reasons.Select((reason, i) => (reason, count: Volatile.Read(ref m.Value.Failures[i]))).Where(f => f.count > 0).ToDictionary(f => f.reason, f => f.count),
            Volatile.Read(ref m.Value.Rows), Volatile.Read(ref m.Value.Executions), TimeSpan.FromTicks(Volatile.Read(ref m.Value.RequestTicks)),
            TimeSpan.FromTicks(Volatile.Read(ref m.Value.QueueTicks)), TimeSpan.FromTicks(Volatile.Read(ref m.Value.ComputeTicks)))).ToList();

    /// <summary>The reason label of a failure from its status.</summary>
    public static string Reason(int status) => Reasons[ReasonIndex(status)];

    private static int ReasonIndex(int status) => status switch
    {
        400 or 413 => 0,
        404 => 1,
        429 => 2,
        503 => 3,
        504 => 4,
        499 => 5,
        _ => 6,
    };

    /// <summary>Records the end of a request.</summary>
    public static void RequestEnded(string model, string version, int status, TimeSpan duration)
    {
        var counters = For(model, version);
        if (status < 400)
        {
            Interlocked.Increment(ref counters.Success);
        }
        else
        {
            Interlocked.Increment(ref counters.Failures[ReasonIndex(status)]);
        }
        Interlocked.Add(ref counters.RequestTicks, duration.Ticks);
    }

    /// <summary>Records the time a request spent outside the queue and the model.</summary>
    public static void Overhead(TimeSpan overhead) => OverheadMicros.Record(Math.Max(0, overhead.TotalMicroseconds));

    internal static Counters Track(DynamicBatcher batcher, string model, string version)
    {
        Batchers[batcher] = (model, version);
        return Models.GetOrAdd((model, version), _ => new Counters());
    }

    internal static void Untrack(DynamicBatcher batcher) => Batchers.TryRemove(batcher, out _);

    /// <summary>The counters of a model version; requests naming models never loaded here share one set beyond a limit.</summary>
    private static Counters For(string model, string version)
    {
        if (Models.TryGetValue((model, version), out var counters))
        {
            return counters;
        }
        if (Interlocked.Increment(ref _unknown) > MaxUnknownModels)
        {
            Interlocked.Decrement(ref _unknown);
            (model, version) = ("(other)", "");
        }
        return Models.GetOrAdd((model, version), _ => new Counters());
    }

    private static KeyValuePair<string, object?>[] Tags(string model, string version) => [new("model", model), new("version", version)];

    /// <summary>Cumulative counts of one model version, updated with interlocked operations.</summary>
    internal sealed class Counters
    {
        public long Success;
        public long Rows;
        public long Executions;
        public long RequestTicks;
        public long QueueTicks;
        public long ComputeTicks;
        public readonly long[] Failures = new long[Reasons.Length];

        /// <summary>Counts an execution of <paramref name="rows"/> rows and its requests' queue times.</summary>
        public void Executed(int rows, TimeSpan compute, TimeSpan queued)
        {
            Interlocked.Increment(ref Executions);
            Interlocked.Add(ref Rows, rows);
            Interlocked.Add(ref ComputeTicks, compute.Ticks);
            Interlocked.Add(ref QueueTicks, queued.Ticks);
        }
    }
}

/// <summary>Cumulative counts of one model version (the counters of Triton's statistics).</summary>
/// <param name="Model">Model name.</param>
/// <param name="Version">Version.</param>
/// <param name="Success">Requests answered.</param>
/// <param name="Failures">Requests failed, by reason (<see cref="ServingMetrics.Reason"/>); only reasons that occurred.</param>
/// <param name="Rows">Rows (batch elements) inferred.</param>
/// <param name="Executions">Model executions; a batch counts once.</param>
/// <param name="Request">Time from receiving requests to their answers, summed.</param>
/// <param name="Queue">Time requests waited in the queue, summed.</param>
/// <param name="Compute">Time of model executions, summed.</param>
public sealed record ModelStatistics(string Model, string Version, long Success, IReadOnlyDictionary<string, long> Failures,
    long Rows, long Executions, TimeSpan Request, TimeSpan Queue, TimeSpan Compute);
