using System.Globalization;
using System.Text.RegularExpressions;
using AiMass.Jobs;
using AiMass.Resources;
using YamlDotNet.RepresentationModel;

namespace AiMass.Specs;

/// <summary>Reads job specs written in YAML or JSON (see docs/scheduling.md for the fields).</summary>
public static partial class JobSpecReader
{
    /// <summary>Environment variables the platform sets for every task; a spec may not set them.</summary>
    public static IReadOnlySet<string> ReservedEnv { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "AIMASS_SERVER", "AIMASS_JOB_ID", "AIMASS_TASK_INDEX", "AIMASS_NUM_TASKS", "AIMASS_RESUME_FROM", "AIMASS_TASK_ADDRESSES",
        "AIMASS_ATTEMPT", "AIMASS_CHECKPOINT_DIR",
    };

    /// <summary>Parses a job spec; throws <see cref="SpecException"/> listing every problem with its field and line.</summary>
    public static JobSpec Parse(string text, string source = "job spec")
    {
        ArgumentNullException.ThrowIfNull(text);
        var errors = new SpecErrors(source);
        var root = errors.RequireRoot(text, "the spec is empty");
        var spec = Read(root);
        errors.ThrowIfAny();
        return spec!;
    }

    private static JobSpec? Read(SpecMap map)
    {
        var name = map.String("name", required: true);
        if (name is not null && (name.Length > 128 || name.Trim().Length == 0))
        {
            map.Error("name", "must be 1 to 128 characters");
        }
        var command = Command(map);
        var replicas = map.Int("replicas", 1, JobDefaults.MaxReplicas) ?? 1;
        var maxRestarts = map.Int("max_restarts", 0, 1000) ?? 0;
        var template = ReadTemplate(map);
        if (name is null || command is null || template is null)
        {
            return null;
        }
        return template with { Name = name, Command = command, Replicas = replicas, MaxRestarts = maxRestarts };
    }

    /// <summary>
    /// Reads the fields of a job that say where and how it runs — resources, priority, queue, owner, walltime,
    /// preemptible, env, node selector, working directory — from a mapping whose owner supplies the name and command
    /// (a study's <c>job:</c> section); reports unknown fields. Null when something is wrong.
    /// </summary>
    internal static JobSpec? ReadTemplate(SpecMap map)
    {
        var before = map.Errors.Count;
        var resources = Resources(map);
        var priority = map.Int("priority", -1_000_000, 1_000_000) ?? 0;
        var queue = map.String("queue") ?? JobDefaults.Queue;
        var owner = map.String("owner");
        var walltime = map.Parsed<TimeSpan>("walltime", Quantity.TryParseDuration);
        if (walltime is { } w && w <= TimeSpan.Zero)
        {
            map.Error("walltime", "must be positive");
        }
        var preemptible = map.Bool("preemptible") ?? false;
        var env = map.StringMap("env", key =>
            !EnvName().IsMatch(key) ? $"'{key}' is not a valid environment variable name"
            : ReservedEnv.Contains(key) ? $"{key} is set by the platform for every task"
            : null);
        var selector = map.StringMap("node_selector");
        var workingDir = map.String("working_dir");
        if (workingDir is not null && !Path.IsPathFullyQualified(workingDir))
        {
            map.Error("working_dir", $"'{workingDir}' must be an absolute path");
        }
        map.RejectUnknown();
        return map.Errors.Count > before ? null : new JobSpec
        {
            Name = "",
            Command = [],
            Resources = resources,
            Priority = priority,
            Queue = queue,
            Owner = owner,
            Walltime = walltime,
            Preemptible = preemptible,
            Env = env ?? new Dictionary<string, string>(),
            NodeSelector = selector ?? new Dictionary<string, string>(),
            WorkingDir = workingDir,
        };
    }

    /// <summary>A job spec as JSON that <see cref="Parse"/> reads back to an equal spec (how the platform submits the jobs it composes).</summary>
    public static string ToJson(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var resources = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            [ResourceNames.Cpu] = Quantity.FormatCpu(spec.Resources.CpuMillis),
            [ResourceNames.Memory] = spec.Resources.MemoryBytes.ToString(CultureInfo.InvariantCulture),
            [ResourceNames.Gpu] = spec.Resources.Gpus,
        };
        foreach (var (name, amount) in spec.Resources.Custom)
        {
            resources[name] = amount.ToString(CultureInfo.InvariantCulture);
        }
        var job = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["name"] = spec.Name,
            ["command"] = spec.Command,
            ["replicas"] = spec.Replicas,
            ["resources"] = resources,
            ["priority"] = spec.Priority,
            ["queue"] = spec.Queue,
            ["max_restarts"] = spec.MaxRestarts,
            ["preemptible"] = spec.Preemptible,
            ["env"] = spec.Env,
            ["node_selector"] = spec.NodeSelector,
        };
        if (spec.Owner is { } owner)
        {
            job["owner"] = owner;
        }
        if (spec.Walltime is { } walltime)
        {
            job["walltime"] = ((long)Math.Ceiling(walltime.TotalSeconds)).ToString(CultureInfo.InvariantCulture) + "s";
        }
        if (spec.WorkingDir is { } dir)
        {
            job["working_dir"] = dir;
        }
        return System.Text.Json.JsonSerializer.Serialize(job);
    }

    private static IReadOnlyList<string>? Command(SpecMap map)
    {
        var node = map.Raw("command");
        if (node is null)
        {
            map.Errors.Add("command", map.Node, "is required (a list such as [python3, train.py], or one shell line)");
            return null;
        }
        if (node is YamlScalarNode)
        {
            var line = map.String("command", required: true);
            if (line is null || line.Trim().Length == 0)
            {
                map.Error("command", "must not be empty");
                return null;
            }
            return ["/bin/sh", "-c", line];
        }
        var list = map.StringList("command");
        if (list is { Count: 0 })
        {
            map.Error("command", "must not be empty");
            return null;
        }
        return list;
    }

    /// <summary>Reads a <c>resources</c> mapping: cpu, memory, gpu and custom resources (whole numbers).</summary>
    internal static ResourceVector Resources(SpecMap parent, string key = "resources")
    {
        var map = parent.Map(key);
        if (map is null)
        {
            return new ResourceVector(1000, 512L << 20); // one core and 512 MiB, as documented
        }
        var cpu = map.Parsed<long>(ResourceNames.Cpu, Quantity.TryParseCpu) ?? 1000;
        var memory = map.Parsed<long>(ResourceNames.Memory, Quantity.TryParseBytes) ?? 512L << 20;
        var gpu = map.Int(ResourceNames.Gpu, 0, 1024) ?? 0;
        var custom = new List<KeyValuePair<string, long>>();
        foreach (var name in map.Keys.Where(k => k is not (ResourceNames.Cpu or ResourceNames.Memory or ResourceNames.Gpu)).ToList())
        {
            var meant = new[] { ResourceNames.Cpu, ResourceNames.Memory, ResourceNames.Gpu }
                .FirstOrDefault(known => SpecMap.Distance(known, name.ToLowerInvariant()) <= 2);
            if (meant is not null)
            {
                map.Error(name, $"unknown resource; did you mean '{meant}'? (custom resources must not look like cpu, memory or gpu)");
                map.Raw(name);
                continue;
            }
            if (!ResourceNames.IsValidCustom(name))
            {
                map.Error(name, $"'{name}' is not a valid custom resource name ({ResourceNames.CustomPattern})");
                map.Raw(name);
                continue;
            }
            var text = map.String(name);
            if (text is null)
            {
                continue;
            }
            if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
            {
                map.Error(name, $"'{text}' is not a whole, non-negative number");
                continue;
            }
            custom.Add(new(name, amount));
        }
        map.RejectUnknown();
        return new ResourceVector(cpu, memory, gpu, custom);
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant)]
    private static partial Regex EnvName();
}
