using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace AiMass.Jobs.Deployments;

/// <summary>
/// Deployment instruments on the <c>AiMass</c> meter, exported at <c>/metrics</c> as <c>aimass_deployment_*</c>: replicas
/// by role and state, desired replicas, routing weights, routed requests by outcome, router overhead, and the shadow's
/// requests, disagreements and latency.
/// </summary>
public static class DeploymentMetrics
{
    /// <summary>The meter name (shared with the model host's <c>aimass_nv_inference_*</c>).</summary>
    public const string MeterName = "AiMass";

    private static readonly Meter Meter = new(MeterName);
    private static readonly ConcurrentDictionary<DeploymentController, bool> Controllers = new();
    private static readonly Counter<long> Requests = Meter.CreateCounter<long>("deployment_requests", description: "Requests routed, by deployment, role (primary, canary) and outcome (HTTP status class or 'unreachable', 'no_replica').");
    private static readonly Histogram<double> Overhead = Meter.CreateHistogram<double>("deployment_routing_duration_us", unit: "us",
        description: "Time from a request's arrival to its forwarding (reading the body, waiting for a replica, choosing one), by deployment.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [25, 50, 100, 200, 300, 500, 1000, 2500, 10000] });
    private static readonly Counter<long> Shadow = Meter.CreateCounter<long>("deployment_shadow_requests", description: "Copies sent to the shadow, by deployment and result (agree, disagree, error, dropped when 64 copies are in flight, uncompared when the answer is over 16 MiB).");
    private static readonly Histogram<double> ShadowLatency = Meter.CreateHistogram<double>("deployment_shadow_latency_us", unit: "us",
        description: "Latency of the shadow's answers, by deployment.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [100, 250, 500, 1000, 2500, 5000, 10000, 50000, 250000] });

    static DeploymentMetrics()
    {
        Meter.CreateObservableGauge("deployment_replicas", () => All().SelectMany(d => d.Tracks.SelectMany(t => t.Replicas
            .GroupBy(r => r.State)
            .Select(g => new Measurement<long>(g.Count(), Tag("deployment", d.Name), Tag("role", t.Role), Tag("state", g.Key))))),
            description: "Replicas by deployment, role and state (starting, ready, unhealthy, draining).");
        Meter.CreateObservableGauge("deployment_desired_replicas", () => All().Select(d => new Measurement<long>(d.DesiredReplicas, Tag("deployment", d.Name))),
            description: "Primary replicas the autoscaler wants, by deployment.");
        Meter.CreateObservableGauge("deployment_routing_weight", () => All().SelectMany(d => d.Tracks.Where(t => t.Role != DeploymentController.ShadowRole)
            .Select(t => new Measurement<long>(t.Weight, Tag("deployment", d.Name), Tag("role", t.Role)))),
            description: "Percent of requests routed to the primary and the canary, by deployment.");
    }

    internal static void Observe(DeploymentController controller) => Controllers[controller] = true;

    internal static void Forget(DeploymentController controller) => Controllers.TryRemove(controller, out _);

    /// <summary>Counts a routed request.</summary>
    public static void Routed(string deployment, string role, string outcome, TimeSpan overhead)
    {
        Requests.Add(1, Tag("deployment", deployment), Tag("role", role), Tag("outcome", outcome));
        Overhead.Record(overhead.TotalMicroseconds, Tag("deployment", deployment));
    }

    /// <summary>Counts a shadow copy and how its answer compared.</summary>
    public static void Shadowed(string deployment, string result, TimeSpan latency)
    {
        Shadow.Add(1, Tag("deployment", deployment), Tag("result", result));
        ShadowLatency.Record(latency.TotalMicroseconds, Tag("deployment", deployment));
    }

    private static IEnumerable<AiMass.Deployments.DeploymentInfo> All() => Controllers.Keys.SelectMany(c => c.Snapshot());

    private static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);
}
