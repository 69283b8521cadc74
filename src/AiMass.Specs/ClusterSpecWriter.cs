using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Specs;

/// <summary>
/// Writes a cluster as a cluster file (the format <see cref="ClusterSpecReader"/> reads, and <c>aimass up --cluster</c>
/// takes): what <c>GET /api/v1/cluster</c> serves and <c>aimass sim snapshot</c> saves.
/// </summary>
public static partial class ClusterSpecWriter
{
    /// <summary>The cluster as YAML.</summary>
    public static string Write(ClusterSpec cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var y = new StringBuilder();
        var p = cluster.Policy;
        y.Append("policy:\n")
            .Append(CultureInfo.InvariantCulture, $"  ordering: {SpecMap.Snake(p.Ordering.ToString())}\n")
            .Append(CultureInfo.InvariantCulture, $"  backfill: {SpecMap.Snake(p.Backfill.ToString())}\n")
            .Append(CultureInfo.InvariantCulture, $"  placement: {SpecMap.Snake(p.Placement.ToString())}\n")
            .Append(CultureInfo.InvariantCulture, $"  preemption: {(p.Preemption ? "true" : "false")}\n")
            .Append(CultureInfo.InvariantCulture, $"  preemption_grace: {Quantity.FormatDuration(p.PreemptionGrace)}\n")
            .Append(CultureInfo.InvariantCulture, $"  max_reservations: {p.MaxReservations}\n")
            .Append(CultureInfo.InvariantCulture, $"  unknown_walltime: {Quantity.FormatDuration(p.UnknownWalltime)}\n");
        if (p.OwnerWeights.Count > 0)
        {
            y.Append("  owner_weights:\n");
            foreach (var (owner, weight) in p.OwnerWeights.OrderBy(w => w.Key, StringComparer.Ordinal))
            {
                y.Append(CultureInfo.InvariantCulture, $"    {Q(owner)}: {weight}\n");
            }
        }
        if (cluster.Queues.Count > 0)
        {
            y.Append("queues:\n");
            foreach (var q in cluster.Queues)
            {
                y.Append(CultureInfo.InvariantCulture, $"  - name: {Q(q.Name)}\n    weight: {q.Weight}\n");
                if (q.Ordering is { } ordering)
                {
                    y.Append(CultureInfo.InvariantCulture, $"    ordering: {SpecMap.Snake(ordering.ToString())}\n");
                }
            }
        }
        if (cluster.Nodes.Count > 0)
        {
            y.Append("nodes:\n");
            foreach (var n in cluster.Nodes)
            {
                y.Append(CultureInfo.InvariantCulture, $"  - name: {Q(n.Name)}\n    pool: {Q(n.Pool)}\n");
                Node(y, n, "    ");
            }
        }
        if (cluster.Pools.Count > 0)
        {
            y.Append("pools:\n");
            foreach (var pool in cluster.Pools)
            {
                y.Append(CultureInfo.InvariantCulture, $"  - name: {Q(pool.Name)}\n    kind: {SpecMap.Snake(pool.Kind.ToString())}\n");
                if (pool.Kind == PoolKind.Dynamic)
                {
                    y.Append(CultureInfo.InvariantCulture, $"    min_nodes: {pool.MinNodes}\n    max_nodes: {pool.MaxNodes}\n")
                        .Append(CultureInfo.InvariantCulture, $"    idle_timeout: {Quantity.FormatDuration(pool.IdleTimeout)}\n")
                        .Append(CultureInfo.InvariantCulture, $"    provisioning_delay: {Quantity.FormatDuration(cluster.ProvisioningDelays.GetValueOrDefault(pool.Name))}\n");
                }
                if (pool.Template is { } template)
                {
                    y.Append("    template:\n");
                    Node(y, template, "      ");
                }
            }
        }
        return y.ToString();
    }

    private static void Node(StringBuilder y, NodeSpec n, string indent)
    {
        var c = n.Capacity;
        y.Append(CultureInfo.InvariantCulture, $"{indent}resources: {{cpu: {Quantity.FormatCpu(c.CpuMillis)}, memory: {Bytes(c.MemoryBytes)}");
        if (c.Gpus > 0)
        {
            y.Append(CultureInfo.InvariantCulture, $", gpu: {c.Gpus}");
        }
        foreach (var (name, amount) in c.Custom)
        {
            y.Append(CultureInfo.InvariantCulture, $", {Q(name)}: {amount}");
        }
        y.Append("}\n");
        if (n.GpuModel is not null)
        {
            y.Append(CultureInfo.InvariantCulture, $"{indent}gpu_model: {Q(n.GpuModel)}\n");
        }
        if (n.GpuMemoryBytes is { } gpuMemory)
        {
            y.Append(CultureInfo.InvariantCulture, $"{indent}gpu_memory: {Bytes(gpuMemory)}\n");
        }
        if (n.Labels.Count > 0)
        {
            y.Append(CultureInfo.InvariantCulture, $"{indent}labels:\n");
            foreach (var (key, value) in n.Labels.OrderBy(l => l.Key, StringComparer.Ordinal))
            {
                y.Append(CultureInfo.InvariantCulture, $"{indent}  {Q(key)}: {Q(value)}\n");
            }
        }
    }

    /// <summary>Bytes exactly: the largest binary unit that divides them (<c>512Gi</c>), else the plain number.</summary>
    private static string Bytes(long bytes)
    {
        string[] units = ["Pi", "Ti", "Gi", "Mi", "Ki"];
        for (var i = 0; i < units.Length; i++)
        {
            var unit = 1L << (10 * (units.Length - i));
            if (bytes >= unit && bytes % unit == 0)
            {
                return (bytes / unit).ToString(CultureInfo.InvariantCulture) + units[i];
            }
        }
        return bytes.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>A scalar as YAML: plain when it cannot be misread, else double-quoted.</summary>
    internal static string Q(string text) =>
        Plain().IsMatch(text) && !bool.TryParse(text, out _) && !double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _) && text is not ("null" or "~")
            ? text
            : "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_./-]*$")]
    private static partial Regex Plain();
}
