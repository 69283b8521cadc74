using System.Globalization;
using AiMass.Resources;
using AiMass.Scheduling;
using AiMass.Simulation;

namespace AiMass.Specs;

/// <summary>
/// Reads simulation scenarios (<c>aimass sim run --scenario s.yaml</c>; docs/simulator.md): the cluster (inline, in
/// the cluster file's format, or <c>cluster_file</c>), the workload (traces and synthetic generators), failures,
/// checkpoints and the least-attained-service settings. Files are found relative to the scenario.
/// </summary>
public static class ScenarioReader
{
    /// <summary>Reads a scenario file.</summary>
    public static Scenario ReadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new SpecException(path, [new SpecError("", 0, 0, $"the file {Path.GetFullPath(path)} does not exist")]);
        }
        return Parse(File.ReadAllText(path), Path.GetDirectoryName(Path.GetFullPath(path))!, path);
    }

    /// <summary>Parses a scenario; throws <see cref="SpecException"/> listing every problem with its field and line.</summary>
    public static Scenario Parse(string text, string baseDirectory, string source = "scenario")
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(baseDirectory);
        var errors = new SpecErrors(source);
        var root = errors.RequireRoot(text, "the scenario is empty");
        var name = root.String("name") ?? Path.GetFileNameWithoutExtension(source);
        var seed = root.Int("seed", int.MinValue, int.MaxValue) ?? 1;
        var horizon = root.Parsed<TimeSpan>("horizon", Quantity.TryParseDuration);
        var cluster = Cluster(root, baseDirectory);
        var skipped = new Dictionary<string, int>(StringComparer.Ordinal);
        var jobs = Workload(root.Map("workload"), baseDirectory, seed, skipped);
        if (!root.Has("workload"))
        {
            root.Error("workload", "is required: traces (files) and/or synthetic generators of jobs");
        }
        var failures = Failures(root.Map("failures"));
        var network = Network(root.Map("network"), root.Map("storage"));
        var checkpoints = Checkpoints(root.Map("checkpoints"));
        var las = Las(root.Map("las"));
        root.RejectUnknown();
        if (cluster is not null && cluster.Nodes.Count == 0 && cluster.Pools.All(p => p.Kind == PoolKind.Static))
        {
            root.Error("cluster", "declares no nodes and no dynamic pool: nothing could run");
        }
        errors.ThrowIfAny();
        return new Scenario
        {
            Name = name,
            Seed = seed,
            Horizon = horizon,
            Cluster = cluster!,
            Jobs = jobs,
            SkippedJobs = skipped,
            Failures = failures,
            Network = network,
            Checkpoints = checkpoints,
            Las = las,
        };
    }

    private static ClusterSpec? Cluster(SpecMap root, string baseDirectory)
    {
        var inline = root.Map("cluster");
        var file = root.String("cluster_file");
        if ((inline is null) == (file is null))
        {
            root.Error("cluster", "give the cluster either inline (cluster:) or as a file (cluster_file:), once");
            return null;
        }
        try
        {
            if (file is not null)
            {
                var path = Path.Combine(baseDirectory, file);
                if (!File.Exists(path))
                {
                    root.Error("cluster_file", $"the file {path} does not exist");
                    return null;
                }
                return ClusterSpecReader.Parse(File.ReadAllText(path), file);
            }
            return ClusterSpecReader.Read(inline!);
        }
        catch (SpecException e) when (file is not null)
        {
            foreach (var error in e.Errors)
            {
                root.Error("cluster_file", $"{file}: {error}");
            }
            return null;
        }
    }

    private static List<SimJob> Workload(SpecMap? map, string baseDirectory, int seed, Dictionary<string, int> skipped)
    {
        var jobs = new List<SimJob>();
        if (map is null)
        {
            return jobs;
        }
        var defaults = Defaults(map.Map("defaults"));
        var traces = map.MapList("traces") ?? [];
        var synthetic = map.MapList("synthetic") ?? [];
        if (traces.Count == 0 && synthetic.Count == 0)
        {
            map.Error("traces", "the workload needs at least one trace or synthetic generator");
        }
        var owner = new Dictionary<long, string>();
        void Add(IEnumerable<SimJob> source, string from, SpecMap where)
        {
            foreach (var job in source)
            {
                if (owner.TryGetValue(job.Id, out var other))
                {
                    where.Error("file", $"job {job.Id} of {from} has the number of a job of {other}; give this source an id_offset");
                    return;
                }
                owner[job.Id] = from;
                jobs.Add(job);
            }
        }
        foreach (var t in traces)
        {
            var file = t.String("file", required: true);
            var format = t.String("format")?.ToLowerInvariant();
            var limit = t.Int("limit", 1, int.MaxValue);
            var offset = t.Int("id_offset", 0, int.MaxValue) ?? 0;
            var shift = t.Parsed<TimeSpan>("start", Quantity.TryParseDuration) ?? TimeSpan.Zero;
            t.RejectUnknown();
            if (file is null)
            {
                continue;
            }
            var path = Path.Combine(baseDirectory, file);
            format ??= Path.GetExtension(file).ToLowerInvariant() switch
            {
                ".swf" => "swf",
                ".csv" or ".json" => "dl",
                _ => null,
            };
            if (format is not ("swf" or "dl"))
            {
                t.Error("format", $"say which format {file} is in: swf (Standard Workload Format) or dl (CSV or JSON DL trace)");
                continue;
            }
            if (!File.Exists(path))
            {
                t.Error("file", $"the file {path} does not exist");
                continue;
            }
            IReadOnlyList<SimJob> read;
            try
            {
                if (format == "swf")
                {
                    var swf = SwfReader.ReadFile(path);
                    var unknown = swf.Jobs.Count(j => j.Processors <= 0);
                    if (unknown > 0)
                    {
                        skipped["processors unknown"] = skipped.GetValueOrDefault("processors unknown") + unknown;
                    }
                    read = SwfWorkload.ToSimJobs(swf, defaults);
                }
                else
                {
                    read = DlTraceReader.ReadFile(path, defaults);
                }
            }
            catch (TraceFormatException e)
            {
                t.Error("file", e.Message);
                continue;
            }
            catch (IOException e)
            {
                t.Error("file", $"cannot read {path}: {e.Message}");
                continue;
            }
            IEnumerable<SimJob> selected = read.OrderBy(j => j.Submit).ThenBy(j => j.Id);
            if (limit is { } n)
            {
                selected = selected.Take(n);
            }
            Add(selected.Select(j => j with { Id = j.Id + offset, Submit = j.Submit + shift }), file, t);
        }
        var index = 0;
        foreach (var g in synthetic)
        {
            var local = defaults with
            {
                StageInBytes = g.Parsed<long>("stage_in", Quantity.TryParseBytes) ?? defaults.StageInBytes,
                StageOutBytes = g.Parsed<long>("stage_out", Quantity.TryParseBytes) ?? defaults.StageOutBytes,
                CommBandwidth = g.Parsed<double>("comm_bandwidth", NetworkModel.TryParseBandwidth) ?? defaults.CommBandwidth,
            };
            var generator = Synthetic(g, local, jobs.Count == 0 ? 1 : jobs.Max(j => j.Id) + 1);
            g.RejectUnknown();
            index++;
            if (generator is not null)
            {
                // Each generator draws from its own stream of the scenario's seed.
                Add(generator.Generate(new Random(unchecked(seed + (7919 * index))), local), $"synthetic generator {index}", g);
            }
        }
        map.RejectUnknown();
        return jobs;
    }

    private static WorkloadDefaults Defaults(SpecMap? map)
    {
        var defaults = new WorkloadDefaults();
        if (map is null)
        {
            return defaults;
        }
        defaults = defaults with
        {
            CpuMillisPerGpu = map.Parsed<long>("cpu_per_gpu", Quantity.TryParseCpu) ?? defaults.CpuMillisPerGpu,
            MemoryPerGpu = map.Parsed<long>("memory_per_gpu", Quantity.TryParseBytes) ?? defaults.MemoryPerGpu,
            CpuMillis = map.Parsed<long>("cpu", Quantity.TryParseCpu) ?? defaults.CpuMillis,
            MemoryPerCpu = map.Parsed<long>("memory_per_cpu", Quantity.TryParseBytes) ?? defaults.MemoryPerCpu,
            Queue = map.String("queue") ?? defaults.Queue,
            Preemptible = map.Bool("preemptible") ?? defaults.Preemptible,
            StageInBytes = map.Parsed<long>("stage_in", Quantity.TryParseBytes) ?? defaults.StageInBytes,
            StageOutBytes = map.Parsed<long>("stage_out", Quantity.TryParseBytes) ?? defaults.StageOutBytes,
            CommBandwidth = map.Parsed<double>("comm_bandwidth", NetworkModel.TryParseBandwidth) ?? defaults.CommBandwidth,
        };
        map.RejectUnknown();
        return defaults;
    }

    private static SyntheticWorkload? Synthetic(SpecMap g, WorkloadDefaults defaults, long firstId)
    {
        var workload = new SyntheticWorkload { FirstId = firstId, Queues = [] };
        var count = g.Int("jobs", 1, 10_000_000);
        if (count is null && !g.Has("jobs"))
        {
            g.Error("jobs", "is required: how many jobs to generate");
        }
        var interarrival = g.Parsed<TimeSpan>("mean_interarrival", Quantity.TryParseDuration);
        if (interarrival is { } ia && ia <= TimeSpan.Zero)
        {
            g.Error("mean_interarrival", "must be positive");
        }
        var duration = Distribution(g, "duration", DistributionKind.Constant);
        var gpus = new List<KeyValuePair<long, double>>();
        foreach (var (key, value) in g.StringMap("gpus") ?? new Dictionary<string, string>())
        {
            if (long.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 1024
                && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) && w >= 0 && double.IsFinite(w))
            {
                gpus.Add(new(n, w));
            }
            else
            {
                g.Error("gpus", $"'{key}: {value}' is not 'GPU count: weight' (e.g. 1: 0.7)");
            }
        }
        if (g.Has("gpus") && !(gpus.Sum(p => p.Value) > 0))
        {
            g.Error("gpus", "needs at least one GPU count with a positive weight");
        }
        var queues = new List<KeyValuePair<string, double>>();
        foreach (var (key, value) in g.StringMap("queues") ?? new Dictionary<string, string>())
        {
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) && w >= 0 && double.IsFinite(w))
            {
                queues.Add(new(key, w));
            }
            else
            {
                g.Error("queues", $"weight of queue '{key}' must be a number of at least 0 (got '{value}')");
            }
        }
        workload = workload with
        {
            Jobs = count ?? workload.Jobs,
            MeanInterarrival = interarrival ?? workload.MeanInterarrival,
            Duration = duration ?? workload.Duration,
            MaxDuration = g.Parsed<TimeSpan>("max_duration", Quantity.TryParseDuration) ?? workload.MaxDuration,
            GpuMix = gpus.Count > 0 ? gpus : workload.GpuMix,
            CpusWithoutGpu = g.Parsed<long>("cpu", Quantity.TryParseCpu) is { } cpu ? cpu / 1000.0 : workload.CpusWithoutGpu,
            Users = g.Int("users", 1, 1_000_000) ?? workload.Users,
            Queues = queues.Count > 0 ? queues : [new(defaults.Queue, 1)],
            EstimateFactor = g.Double("estimate_factor", 0, 1000) ?? workload.EstimateFactor,
            GpuModel = g.String("gpu_model"),
            FirstId = g.Int("first_id", 1, int.MaxValue) ?? firstId,
            Start = g.Parsed<TimeSpan>("start", Quantity.TryParseDuration) ?? TimeSpan.Zero,
        };
        if (workload.EstimateFactor is > 0 and < 1)
        {
            g.Error("estimate_factor", "must be 0 (no estimates) or at least 1 (estimates at least the run time)");
        }
        return count is null ? null : workload;
    }

    /// <summary>
    /// A distribution written as a duration (the mean of an exponential, or the constant value for
    /// <paramref name="scalarKind"/> Constant) or as a mapping: <c>{distribution: weibull, mean: 30d, shape: 0.8}</c>,
    /// <c>{distribution: lognormal, median: 1h, sigma: 1.5}</c>, <c>{distribution: exponential, mean: 4h}</c>.
    /// </summary>
    private static Distribution? Distribution(SpecMap parent, string key, DistributionKind scalarKind)
    {
        if (parent.Raw(key) is null)
        {
            return null;
        }
        if (parent.Raw(key) is YamlDotNet.RepresentationModel.YamlScalarNode)
        {
            return parent.Parsed<TimeSpan>(key, Quantity.TryParseDuration) is { } value ? new Distribution(scalarKind, value) : null;
        }
        var map = parent.Map(key);
        if (map is null)
        {
            return null;
        }
        var kind = map.Enum<DistributionKind>("distribution") ?? DistributionKind.Exponential;
        Distribution? result = null;
        if (kind == DistributionKind.LogNormal)
        {
            var median = map.Parsed<TimeSpan>("median", Quantity.TryParseDuration);
            var sigma = map.Double("sigma", 0, 10) ?? 1;
            if (median is null)
            {
                map.Error("median", "is required for a log-normal distribution");
            }
            else
            {
                result = new Distribution(kind, median.Value, sigma);
            }
        }
        else
        {
            var mean = map.Parsed<TimeSpan>("mean", Quantity.TryParseDuration);
            var shape = kind == DistributionKind.Weibull ? map.Double("shape", 0.05, 20) ?? 1 : 1;
            if (mean is null)
            {
                map.Error("mean", $"is required for a {SpecMap.Snake(kind.ToString())} distribution");
            }
            else if (mean <= TimeSpan.Zero)
            {
                map.Error("mean", "must be positive");
            }
            else
            {
                result = new Distribution(kind, mean.Value, shape);
            }
        }
        map.RejectUnknown();
        return result;
    }

    private static FailureModel Failures(SpecMap? map)
    {
        if (map is null)
        {
            return new FailureModel();
        }
        var pools = new List<PoolFailures>();
        foreach (var p in map.MapList("pools") ?? [])
        {
            var pool = p.String("pool", required: true);
            var mtbf = Distribution(p, "mtbf", DistributionKind.Exponential);
            var mttr = Distribution(p, "mttr", DistributionKind.Exponential);
            if (mtbf is null && !p.Has("mtbf"))
            {
                p.Error("mtbf", "is required: the mean time between failures of a node (e.g. 30d, or {distribution: weibull, mean: 30d, shape: 0.7})");
            }
            if (mttr is null && !p.Has("mttr"))
            {
                p.Error("mttr", "is required: the mean time to repair a node (e.g. 4h)");
            }
            p.RejectUnknown();
            if (pool is not null && mtbf is not null && mttr is not null)
            {
                pools.Add(new PoolFailures(pool, mtbf, mttr));
            }
        }
        var trace = new List<NodeFailure>();
        foreach (var f in map.MapList("trace") ?? [])
        {
            var node = f.String("node", required: true);
            var at = f.Parsed<TimeSpan>("at", Quantity.TryParseDuration);
            var down = f.Parsed<TimeSpan>("down", Quantity.TryParseDuration);
            if (at is null && !f.Has("at"))
            {
                f.Error("at", "is required: when the node fails, from the start of the workload");
            }
            if (down is null && !f.Has("down"))
            {
                f.Error("down", "is required: how long the node stays down");
            }
            f.RejectUnknown();
            if (node is not null && at is not null && down is not null)
            {
                trace.Add(new NodeFailure(node, at.Value, down.Value));
            }
        }
        map.RejectUnknown();
        return new FailureModel { Pools = pools, Trace = trace };
    }

    private static NetworkModel Network(SpecMap? network, SpecMap? storage)
    {
        var model = new NetworkModel();
        if (network is not null)
        {
            var classes = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var (name, text) in network.StringMap("classes") ?? new Dictionary<string, string>())
            {
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) && w > 0 && double.IsFinite(w))
                {
                    classes[name] = w;
                }
                else
                {
                    network.Error("classes", $"weight of traffic class '{name}' must be a positive number (got '{text}')");
                }
            }
            foreach (var name in classes.Keys.Where(n => n is not (NetworkModel.StagingClass or NetworkModel.TrainingClass)))
            {
                network.Error("classes", $"unknown traffic class '{name}': the classes are {NetworkModel.StagingClass} (data staging) and {NetworkModel.TrainingClass} (a gang's own traffic)");
            }
            model = model with
            {
                NodeBandwidth = network.Parsed<double>("node_bandwidth", NetworkModel.TryParseBandwidth),
                SpineBandwidth = network.Parsed<double>("spine_bandwidth", NetworkModel.TryParseBandwidth),
                ClassWeights = classes,
            };
            network.RejectUnknown();
        }
        if (storage is not null)
        {
            model = model with
            {
                StorageBandwidth = storage.Parsed<double>("bandwidth", NetworkModel.TryParseBandwidth),
                StorageCapacity = storage.Parsed<long>("capacity", Quantity.TryParseBytes),
                OutputRetention = storage.Parsed<TimeSpan>("output_retention", Quantity.TryParseDuration),
            };
            if (model.StorageCapacity is <= 0)
            {
                storage.Error("capacity", "must be positive");
            }
            storage.RejectUnknown();
        }
        return model;
    }

    private static CheckpointModel Checkpoints(SpecMap? map)
    {
        var model = new CheckpointModel();
        if (map is null)
        {
            return model;
        }
        var interval = map.Parsed<TimeSpan>("interval", Quantity.TryParseDuration);
        if (interval is { } i && i <= TimeSpan.Zero)
        {
            map.Error("interval", "must be positive (leave it out when jobs do not checkpoint)");
        }
        model = model with
        {
            Interval = interval,
            OnPreemption = map.Bool("on_preemption") ?? model.OnPreemption,
            RestoreTime = map.Parsed<TimeSpan>("restore_time", Quantity.TryParseDuration) ?? model.RestoreTime,
        };
        map.RejectUnknown();
        return model;
    }

    private static LasOptions Las(SpecMap? map)
    {
        var options = new LasOptions();
        if (map is null)
        {
            return options;
        }
        var thresholds = new List<double>();
        foreach (var text in map.StringList("thresholds") ?? [])
        {
            if (Quantity.TryParseDuration(text, out var t, out var error) && t > TimeSpan.Zero)
            {
                thresholds.Add(t.TotalSeconds);
            }
            else
            {
                map.Error("thresholds", $"'{text}' is not a positive GPU-time (e.g. 1h: one GPU for an hour){(error is null ? "" : ": " + error)}");
            }
        }
        if (thresholds.Zip(thresholds.Skip(1)).Any(p => p.Second <= p.First))
        {
            map.Error("thresholds", "must be in ascending order");
        }
        options = options with
        {
            Thresholds = map.Has("thresholds") ? thresholds : options.Thresholds,
            StarvationFactor = map.Double("starvation_factor", 0, 1e6) ?? options.StarvationFactor,
        };
        map.RejectUnknown();
        return options;
    }
}
