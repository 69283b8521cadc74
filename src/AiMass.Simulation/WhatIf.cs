using System.Globalization;
using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Simulation;

/// <summary>
/// A change to a scenario, to ask what would happen: <c>pool gpu +4 nodes</c>, <c>pool gpu -2 nodes</c>,
/// <c>load x1.5</c>, <c>queue research weight 3</c>, <c>checkpoint every 30m</c>, <c>checkpoint none</c>.
/// </summary>
public sealed class WhatIf
{
    /// <summary>The forms a change can take, for help and error texts.</summary>
    public const string Forms = "'pool NAME +N nodes', 'pool NAME -N nodes', 'load xF', 'queue NAME weight W', 'checkpoint every DURATION', 'checkpoint none'";

    private readonly Func<Scenario, Scenario> _apply;

    private WhatIf(string text, Func<Scenario, Scenario> apply)
    {
        Text = text;
        _apply = apply;
    }

    /// <summary>The change as written.</summary>
    public string Text { get; }

    /// <summary>Parses a change; throws <see cref="ArgumentException"/> saying what forms there are.</summary>
    public static WhatIf Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        ArgumentException Bad(string why) => new($"what-if '{text}': {why}; the forms are {Forms}");
        switch (words)
        {
            case ["pool", var pool, var delta, "node" or "nodes"]:
                if (!int.TryParse(delta, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) || n == 0 || (delta[0] != '+' && delta[0] != '-'))
                {
                    throw Bad($"'{delta}' is not a signed number of nodes such as +4 or -2");
                }
                return new WhatIf(text, s => Resize(s, pool, n, text));
            case ["load", var factor] when factor.StartsWith('x'):
                if (!double.TryParse(factor[1..], NumberStyles.Float, CultureInfo.InvariantCulture, out var f) || !(f > 0) || double.IsInfinity(f))
                {
                    throw Bad($"'{factor}' is not a positive factor such as x1.5");
                }
                // Arrivals f times as frequent: every submission time divided by f.
                return new WhatIf(text, s => s with { Jobs = s.Jobs.Select(j => j with { Submit = j.Submit / f }).ToList() });
            case ["queue", var queue, "weight", var weight]:
                if (!double.TryParse(weight, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) || !(w > 0) || double.IsInfinity(w))
                {
                    throw Bad($"'{weight}' is not a positive weight");
                }
                return new WhatIf(text, s => s with
                {
                    Cluster = s.Cluster with
                    {
                        Queues = s.Cluster.Queues.Any(q => q.Name == queue)
                            ? s.Cluster.Queues.Select(q => q.Name == queue ? q with { Weight = w } : q).ToList()
                            : [.. s.Cluster.Queues, new QueueSpec(queue) { Weight = w }],
                    },
                });
            case ["checkpoint", "every", var every]:
                if (!Quantity.TryParseDuration(every, out var interval, out var error) || interval <= TimeSpan.Zero)
                {
                    throw Bad(error ?? $"'{every}' is not a positive duration");
                }
                return new WhatIf(text, s => s with { Checkpoints = s.Checkpoints with { Interval = interval } });
            case ["checkpoint", "none"]:
                return new WhatIf(text, s => s with { Checkpoints = s.Checkpoints with { Interval = null } });
            default:
                throw Bad("not understood");
        }
    }

    /// <summary>The scenario with the change made; throws <see cref="ArgumentException"/> when it does not apply (an unknown pool, ...).</summary>
    public Scenario Apply(Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        return _apply(scenario) with { Name = $"{scenario.Name} ({Text})" };
    }

    private static Scenario Resize(Scenario s, string pool, int delta, string text)
    {
        var cluster = s.Cluster;
        if (cluster.Pools.FirstOrDefault(p => p.Name == pool && p.Kind == PoolKind.Dynamic) is { } dynamic)
        {
            var max = dynamic.MaxNodes + delta;
            if (max < Math.Max(1, dynamic.MinNodes))
            {
                throw new ArgumentException($"what-if '{text}': dynamic pool {pool} has at most {dynamic.MaxNodes} nodes and at least {dynamic.MinNodes}; it cannot lose {-delta}");
            }
            return s with { Cluster = cluster with { Pools = cluster.Pools.Select(p => p == dynamic ? p with { MaxNodes = max } : p).ToList() } };
        }
        var members = cluster.Nodes.Where(n => n.Pool == pool).ToList();
        if (members.Count == 0)
        {
            var pools = cluster.Nodes.Select(n => n.Pool).Concat(cluster.Pools.Select(p => p.Name)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
            throw new ArgumentException($"what-if '{text}': the scenario has no pool '{pool}'; its pools are {string.Join(", ", pools)}");
        }
        if (delta < 0)
        {
            if (-delta >= members.Count)
            {
                throw new ArgumentException($"what-if '{text}': pool {pool} has {members.Count} node(s); it cannot lose {-delta}");
            }
            var removed = members.Skip(members.Count + delta).ToHashSet();
            return s with { Cluster = cluster with { Nodes = cluster.Nodes.Where(n => !removed.Contains(n)).ToList() } };
        }
        // New nodes are copies of the pool's last node.
        var names = cluster.Nodes.Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        var added = new List<NodeSpec>();
        for (var i = 1; added.Count < delta; i++)
        {
            var name = $"{pool}-whatif-{i}";
            if (names.Add(name))
            {
                added.Add(members[^1] with { Name = name });
            }
        }
        return s with { Cluster = cluster with { Nodes = [.. cluster.Nodes, .. added] } };
    }
}
