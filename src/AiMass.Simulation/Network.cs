using System.Globalization;

namespace AiMass.Simulation;

/// <summary>A link of the simulated network: a node's uplink, the spine, or the shared storage's front end.</summary>
/// <param name="Name">Unique name.</param>
/// <param name="Bandwidth">Capacity in bytes per second.</param>
public sealed record NetworkLink(string Name, double Bandwidth);

/// <summary>
/// The network and storage of a scenario: links with bandwidth that flows share max-min fairly, weighted by their
/// traffic class (the software-defined network's QoS), and a shared storage with a bandwidth and a capacity.
/// </summary>
public sealed record NetworkModel
{
    /// <summary>Bandwidth of each node's uplink, bytes/s; null: uplinks are not a bottleneck.</summary>
    public double? NodeBandwidth { get; init; }

    /// <summary>Bandwidth of the spine that traffic between nodes crosses, bytes/s; null: not a bottleneck.</summary>
    public double? SpineBandwidth { get; init; }

    /// <summary>Aggregate bandwidth of the shared storage, bytes/s; null: no storage model (staging is instant).</summary>
    public double? StorageBandwidth { get; init; }

    /// <summary>Capacity of the shared storage, bytes; null: unlimited. Job outputs fill it until their retention ends.</summary>
    public long? StorageCapacity { get; init; }

    /// <summary>How long a job's output stays on the storage before it is removed; null: for ever.</summary>
    public TimeSpan? OutputRetention { get; init; }

    /// <summary>Weights of the traffic classes (<c>staging</c>, <c>training</c>); a class of weight 4 gets four times the share of one of weight 1 on a busy link.</summary>
    public IReadOnlyDictionary<string, double> ClassWeights { get; init; } = new Dictionary<string, double>(StringComparer.Ordinal);

    /// <summary>True when nothing is modelled (the simulator then takes its fast path).</summary>
    public bool IsEmpty => NodeBandwidth is null && SpineBandwidth is null && StorageBandwidth is null && StorageCapacity is null;

    /// <summary>The traffic class of data staging (reading inputs, writing outputs).</summary>
    public const string StagingClass = "staging";

    /// <summary>The traffic class of distributed training (parameter server or all-reduce between a gang's tasks).</summary>
    public const string TrainingClass = "training";

    /// <summary>The weight of a class (1 when not given).</summary>
    public double Weight(string trafficClass) => ClassWeights.GetValueOrDefault(trafficClass, 1.0);

    /// <summary>Parses a bandwidth: <c>10GB/s</c>, <c>1.25GiB/s</c>, <c>100Gbps</c>, <c>400Mb/s</c>; bytes per second.</summary>
    public static bool TryParseBandwidth(string? text, out double bytesPerSecond, out string? error)
    {
        bytesPerSecond = 0;
        var t = text?.Trim() ?? "";
        var bits = false;
        if (t.EndsWith("bps", StringComparison.Ordinal))
        {
            bits = true;
            t = t[..^3];
        }
        else if (t.EndsWith("b/s", StringComparison.Ordinal))
        {
            bits = true;
            t = t[..^3];
        }
        else if (t.EndsWith("B/s", StringComparison.Ordinal))
        {
            t = t[..^3];
        }
        else
        {
            error = $"'{text}' is not a bandwidth: write it as bytes per second (10GB/s, 1.5GiB/s) or bits (100Gbps, 400Mb/s)";
            return false;
        }
        var digits = t.TakeWhile(c => char.IsAsciiDigit(c) || c == '.').Count();
        if (!double.TryParse(t[..digits], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !(value > 0))
        {
            error = $"'{text}' is not a positive bandwidth";
            return false;
        }
        double? scale = t[digits..] switch
        {
            "" => 1,
            "k" or "K" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "Ki" => 1024.0,
            "Mi" => 1024.0 * 1024,
            "Gi" => 1024.0 * 1024 * 1024,
            "Ti" => 1024.0 * 1024 * 1024 * 1024,
            _ => null,
        };
        if (scale is null)
        {
            error = $"'{text}': unknown unit prefix '{t[digits..]}' (use k, M, G, T or Ki, Mi, Gi, Ti)";
            return false;
        }
        bytesPerSecond = value * scale.Value / (bits ? 8 : 1);
        error = null;
        return true;
    }
}

/// <summary>A flow on the network: a path of links, a weight, and a demand (the most it can use; infinite for bulk transfers).</summary>
public sealed class Flow
{
    /// <summary>Creates a flow.</summary>
    public Flow(IReadOnlyList<int> path, double weight, double demand = double.PositiveInfinity)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!(weight > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(weight), weight, "a flow's weight must be positive");
        }
        Path = path;
        Weight = weight;
        Demand = demand;
    }

    /// <summary>The links it crosses (indexes into the allocator's links).</summary>
    public IReadOnlyList<int> Path { get; }

    /// <summary>Its traffic class's weight.</summary>
    public double Weight { get; }

    /// <summary>The most it can use, bytes/s.</summary>
    public double Demand { get; }

    /// <summary>Its allocated rate, bytes/s (after <see cref="MaxMinFairness.Allocate"/>).</summary>
    public double Rate { get; internal set; }
}

/// <summary>
/// Weighted max-min fair sharing by progressive filling: all flows' rates grow in proportion to their weights until a
/// link is full (its flows are then fixed) or a flow reaches its demand; repeat with the rest. The result is the
/// unique weighted max-min fair allocation: no flow can get more without taking from one with a smaller weighted rate.
/// </summary>
public static class MaxMinFairness
{
    /// <summary>Sets <see cref="Flow.Rate"/> of every flow, given each link's capacity (bytes/s).</summary>
    public static void Allocate(IReadOnlyList<double> capacities, IReadOnlyList<Flow> flows)
    {
        ArgumentNullException.ThrowIfNull(capacities);
        ArgumentNullException.ThrowIfNull(flows);
        var left = capacities.ToArray();
        var active = new List<Flow>(flows.Count);
        foreach (var f in flows)
        {
            f.Rate = 0;
            if (f.Demand > 0)
            {
                active.Add(f);
            }
        }
        var weights = new double[left.Length];
        while (active.Count > 0)
        {
            Array.Clear(weights);
            foreach (var f in active)
            {
                foreach (var l in f.Path)
                {
                    weights[l] += f.Weight;
                }
            }
            // The largest common increment (per unit of weight) before a link fills or a flow meets its demand.
            var step = double.PositiveInfinity;
            for (var l = 0; l < left.Length; l++)
            {
                if (weights[l] > 0)
                {
                    step = Math.Min(step, Math.Max(0, left[l]) / weights[l]);
                }
            }
            foreach (var f in active)
            {
                step = Math.Min(step, (f.Demand - f.Rate) / f.Weight);
            }
            if (double.IsPositiveInfinity(step))
            {
                foreach (var f in active)
                {
                    f.Rate = f.Demand; // nothing constrains these flows (no links, infinite demand: unbounded)
                }
                return;
            }
            foreach (var f in active)
            {
                f.Rate += step * f.Weight;
            }
            for (var l = 0; l < left.Length; l++)
            {
                left[l] -= step * weights[l];
            }
            active.RemoveAll(f => f.Rate >= f.Demand * (1 - 1e-12) || f.Path.Any(l => left[l] <= capacities[l] * 1e-12));
        }
    }
}
