using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Specs;

/// <summary>Reads cluster files (<c>aimass up --cluster cluster.yaml</c>; see docs/scheduling.md).</summary>
public static class ClusterSpecReader
{
    /// <summary>Parses a cluster file; throws <see cref="SpecException"/> listing every problem with its field and line.</summary>
    public static ClusterSpec Parse(string text, string source = "cluster file")
    {
        ArgumentNullException.ThrowIfNull(text);
        var errors = new SpecErrors(source);
        var spec = Read(errors.RequireRoot(text, "the cluster file is empty"));
        errors.ThrowIfAny();
        return spec;
    }

    /// <summary>Reads a cluster from a mapping (a file's root, or a scenario's <c>cluster:</c>); problems go to its errors.</summary>
    internal static ClusterSpec Read(SpecMap root)
    {
        var policy = Policy(root.Map("policy"));
        var queues = new List<QueueSpec>();
        foreach (var q in root.MapList("queues") ?? [])
        {
            var name = q.String("name", required: true);
            var weight = q.Double("weight", 1e-6, 1e6) ?? 1;
            var ordering = q.Enum<OrderingPolicy>("ordering");
            q.RejectUnknown();
            if (name is not null)
            {
                queues.Add(new QueueSpec(name) { Weight = weight, Ordering = ordering });
            }
        }
        var nodes = new List<NodeSpec>();
        foreach (var n in root.MapList("nodes") ?? [])
        {
            var name = n.String("name", required: true);
            var count = n.Int("count", 1, 10_000);
            var node = Node(n, name ?? "node", n.String("pool") ?? "main");
            n.RejectUnknown();
            if (name is null || node is null)
            {
                continue;
            }
            if (count is null)
            {
                nodes.Add(node);
                continue;
            }
            for (var i = 1; i <= count; i++)
            {
                nodes.Add(node with { Name = $"{name}-{i}" });
            }
        }
        var pools = new List<PoolSpec>();
        var delays = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        foreach (var p in root.MapList("pools") ?? [])
        {
            var name = p.String("name", required: true);
            var kind = p.Enum<PoolKind>("kind") ?? PoolKind.Dynamic;
            var min = p.Int("min_nodes", 0, 10_000) ?? 0;
            var max = p.Int("max_nodes", 0, 10_000) ?? 0;
            var idle = p.Parsed<TimeSpan>("idle_timeout", Quantity.TryParseDuration) ?? TimeSpan.FromMinutes(10);
            var delay = p.Parsed<TimeSpan>("provisioning_delay", Quantity.TryParseDuration) ?? TimeSpan.Zero;
            var templateMap = p.Map("template");
            NodeSpec? template = null;
            if (templateMap is not null)
            {
                template = Node(templateMap, name + "-template", name ?? "pool");
                templateMap.RejectUnknown();
            }
            else if (kind == PoolKind.Dynamic)
            {
                p.Error("template", "a dynamic pool needs a node template (resources, labels, gpu_model)");
            }
            if (kind == PoolKind.Dynamic && max < Math.Max(1, min))
            {
                p.Error("max_nodes", $"must be at least 1 and at least min_nodes ({min})");
            }
            p.RejectUnknown();
            if (name is null)
            {
                continue;
            }
            pools.Add(new PoolSpec(name, kind) { MinNodes = min, MaxNodes = max, IdleTimeout = idle, Template = template });
            delays[name] = delay;
        }
        root.RejectUnknown();
        var duplicate = nodes.GroupBy(n => n.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            root.Error("nodes", $"node name '{duplicate.Key}' is used more than once");
        }
        return new ClusterSpec { Policy = policy, Queues = queues, Nodes = nodes, Pools = pools, ProvisioningDelays = delays };
    }

    private static SchedulerPolicy Policy(SpecMap? map)
    {
        var policy = new SchedulerPolicy();
        if (map is null)
        {
            return policy;
        }
        var weights = map.StringMap("owner_weights");
        var parsedWeights = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (owner, text) in weights ?? new Dictionary<string, string>())
        {
            if (double.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var w) && w > 0 && double.IsFinite(w))
            {
                parsedWeights[owner] = w;
            }
            else
            {
                map.Error("owner_weights", $"weight of '{owner}' must be a positive number (got '{text}')");
            }
        }
        policy = policy with
        {
            Ordering = map.Enum<OrderingPolicy>("ordering") ?? policy.Ordering,
            Backfill = map.Enum<BackfillPolicy>("backfill") ?? policy.Backfill,
            Placement = map.Enum<PlacementStrategy>("placement") ?? policy.Placement,
            Preemption = map.Bool("preemption") ?? policy.Preemption,
            PreemptionGrace = map.Parsed<TimeSpan>("preemption_grace", Quantity.TryParseDuration) ?? policy.PreemptionGrace,
            MaxReservations = map.Int("max_reservations", 1, 100_000) ?? policy.MaxReservations,
            UnknownWalltime = map.Parsed<TimeSpan>("unknown_walltime", Quantity.TryParseDuration) ?? policy.UnknownWalltime,
            OwnerWeights = parsedWeights,
        };
        map.RejectUnknown();
        return policy;
    }

    private static NodeSpec? Node(SpecMap map, string name, string pool)
    {
        if (!map.Has("resources"))
        {
            map.Error("resources", "is required (cpu, memory, and gpu or custom resources the node offers)");
            return null;
        }
        var capacity = JobSpecReader.Resources(map);
        var labels = map.StringMap("labels") ?? new Dictionary<string, string>();
        var gpuModel = map.String("gpu_model");
        var gpuMemory = map.Parsed<long>("gpu_memory", Quantity.TryParseBytes);
        return new NodeSpec(name, pool, capacity) { Labels = labels, GpuModel = gpuModel, GpuMemoryBytes = gpuMemory };
    }
}
