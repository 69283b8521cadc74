using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace AiMass.Serving;

/// <summary>
/// The model host's instruments (meter <c>AiMass</c>), named after Triton's <c>nv_inference_*</c> family so dashboards
/// port over: exported as <c>aimass_nv_inference_request_success</c>, <c>..._request_failure</c> (by reason),
/// <c>..._count</c> (rows inferred), <c>..._exec_count</c> (model executions), cumulative microseconds
/// <c>..._request_duration_us</c>, <c>..._queue_duration_us</c>, <c>..._compute_infer_duration_us</c>, and the gauge
/// <c>..._pending_request_count</c>; every one labelled by model and version.
/// </summary>
public static class ServingMetrics
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "AiMass";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Success = Meter.CreateCounter<long>("nv_inference_request_success", description: "Inference requests answered, by model and version.");
    private static readonly Counter<long> Failure = Meter.CreateCounter<long>("nv_inference_request_failure", description: "Inference requests failed, by model, version and reason.");
    private static readonly Counter<long> Count = Meter.CreateCounter<long>("nv_inference_count", description: "Rows (batch elements) inferred.");
    private static readonly Counter<long> Executions = Meter.CreateCounter<long>("nv_inference_exec_count", description: "Model executions (a batch counts once).");
    private static readonly Counter<double> RequestMicros = Meter.CreateCounter<double>("nv_inference_request_duration_us", description: "Cumulative time from receiving a request to its answer.");
    private static readonly Counter<double> QueueMicros = Meter.CreateCounter<double>("nv_inference_queue_duration_us", description: "Cumulative time requests waited in the queue.");
    private static readonly Counter<double> ComputeMicros = Meter.CreateCounter<double>("nv_inference_compute_infer_duration_us", description: "Cumulative time of model executions.");
    private static readonly ConcurrentDictionary<DynamicBatcher, (string Model, string Version)> Batchers = new();

    static ServingMetrics() =>
        Meter.CreateObservableGauge("nv_inference_pending_request_count", () => Batchers.Select(b =>
            new Measurement<long>(b.Key.Waiting, Tags(b.Value.Model, b.Value.Version))), description: "Requests waiting in the queue.");

    /// <summary>The reason label of a failure from its status.</summary>
    public static string Reason(int status) => status switch
    {
        400 or 413 => "BAD_REQUEST",
        404 => "NOT_FOUND",
        429 => "REJECTED",
        503 => "UNAVAILABLE",
        504 => "TIMEOUT",
        499 => "CANCELED",
        _ => "BACKEND",
    };

    /// <summary>Records the end of a request.</summary>
    public static void RequestEnded(string model, string version, int status, TimeSpan duration)
    {
        var tags = Tags(model, version);
        if (status < 400)
        {
            Success.Add(1, tags);
        }
        else
        {
            Failure.Add(1, [.. tags, new("reason", Reason(status))]);
        }
        RequestMicros.Add(duration.TotalMicroseconds, tags);
    }

    internal static void Track(DynamicBatcher batcher, string model, string version) => Batchers[batcher] = (model, version);

    internal static void Untrack(DynamicBatcher batcher) => Batchers.TryRemove(batcher, out _);

    private static readonly Histogram<double> OverheadMicros = Meter.CreateHistogram<double>("nv_inference_overhead_duration_us", unit: "us",
        description: "Time the server adds to a request besides queue and execution (reading, parsing, encoding), per request.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [10, 25, 50, 100, 250, 500, 1000, 5000] });

    /// <summary>Records the time a request spent outside the queue and the model.</summary>
    public static void Overhead(TimeSpan overhead) => OverheadMicros.Record(Math.Max(0, overhead.TotalMicroseconds));

    internal static void Executed(string model, string version, int rows, TimeSpan compute, IEnumerable<TimeSpan> queued)
    {
        var tags = Tags(model, version);
        Executions.Add(1, tags);
        Count.Add(rows, tags);
        ComputeMicros.Add(compute.TotalMicroseconds, tags);
        QueueMicros.Add(queued.Sum(q => q.TotalMicroseconds), tags);
    }

    private static KeyValuePair<string, object?>[] Tags(string model, string version) => [new("model", model), new("version", version)];
}
