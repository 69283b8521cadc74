using System.Globalization;
using AiMass.Registry;
using AiMass.Resources;
using AiMass.Training;
using AiMass.Training.Specs;

namespace AiMass.Specs;

/// <summary>Reads training specs (<c>aimass train SPEC.yaml</c>; fields in docs/training.md).</summary>
public static class TrainingSpecReader
{
    /// <summary>Reads a spec file; relative paths in it are resolved against the file's directory.</summary>
    public static TrainingSpec ReadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new SpecException(path, [new SpecError("", 0, 0, $"the file {full} does not exist")]);
        }
        return Parse(File.ReadAllText(full), path, Path.GetDirectoryName(full)!);
    }

    /// <summary>Parses a spec; throws <see cref="SpecException"/> listing every problem with its field and line.</summary>
    public static TrainingSpec Parse(string text, string source = "training spec", string? baseDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var errors = new SpecErrors(source);
        var root = errors.RequireRoot(text, "the spec is empty");
        var name = root.String("name", required: true);
        var model = Model(root);
        var data = Data(root);
        var training = Training(root.Map("training"));
        var export = Export(root.Map("export"));
        var register = Register(root.Map("register"));
        var job = Job(root.Map("job"));
        root.RejectUnknown();
        if (training is { Epochs: null, MaxSteps: null })
        {
            root.Errors.Add("training", root.Node, "give training.epochs or training.max_steps");
        }
        if (export?.BestMetric is not null && data?.Eval is null)
        {
            root.Errors.Add("export.best_metric", root.Node, "needs evaluation data (data.eval)");
        }
        if (training?.EarlyStopping is not null && data?.Eval is null)
        {
            root.Errors.Add("training.early_stopping", root.Node, "needs evaluation data (data.eval)");
        }
        errors.ThrowIfAny();
        return new TrainingSpec
        {
            Name = name!,
            Model = model!,
            Data = data!,
            Training = training!,
            Export = export!,
            Register = register,
            Job = job!,
            BaseDirectory = baseDirectory ?? Environment.CurrentDirectory,
        };
    }

    private static ModelSection? Model(SpecMap root)
    {
        var map = root.Map("model");
        if (map is null)
        {
            root.Errors.Add("model", root.Node, "is required (type: mlp, cnn or class)");
            return null;
        }
        var defaults = new ModelSection();
        var type = map.Enum<ModelType>("type") ?? ModelType.Mlp;
        var hidden = Ints(map, "hidden", 1, 1 << 20);
        // width and depth: the same hidden layers as hidden: [width, width, ...] — what a tuning study varies.
        var width = map.Int("width", 1, 1 << 20);
        var depth = map.Int("depth", 0, 64);
        if ((width is null) != (depth is null))
        {
            map.Error(width is null ? "depth" : "width", "width and depth go together (hidden layers of width units, depth of them)");
        }
        else if (width is not null && hidden is not null)
        {
            map.Error("width", "give hidden or width and depth, not both");
        }
        var section = new ModelSection
        {
            Type = type,
            Hidden = hidden ?? (width is { } w && depth is { } d ? Enumerable.Repeat(w, d).ToArray() : defaults.Hidden),
            Activation = OneOf(map, "activation", ["relu", "gelu", "tanh", "sigmoid", "leaky_relu"]) ?? defaults.Activation,
            Dropout = map.Double("dropout", 0, 0.99) ?? 0,
            Channels = Ints(map, "channels", 1, 4096) ?? defaults.Channels,
            Kernel = map.Int("kernel", 1, 15) ?? defaults.Kernel,
            Fc = map.Int("fc", 1, 1 << 20) ?? defaults.Fc,
            BatchNorm = map.Bool("batch_norm") ?? false,
            Init = OneOf(map, "init", ["default", "kaiming", "xavier"]) ?? defaults.Init,
            Outputs = map.Int("outputs", 1, 1 << 20),
            Assembly = map.String("assembly"),
            Class = map.String("class"),
            Params = map.StringMap("params") ?? new Dictionary<string, string>(),
        };
        if (type == ModelType.Class && (section.Assembly is null || section.Class is null))
        {
            map.Errors.Add("model", map.Node, "type class needs assembly (path of the .dll) and class (full type name)");
        }
        map.RejectUnknown();
        return section;
    }

    private static DataSection? Data(SpecMap root)
    {
        var map = root.Map("data");
        if (map is null)
        {
            root.Errors.Add("data", root.Node, "is required (format, train, eval)");
            return null;
        }
        var format = map.Enum<DataFormat>("format") ?? DataFormat.Idx;
        var train = Files(map, "train", format, required: true);
        var eval = Files(map, "eval", format, required: false);
        var label = map.Raw("label") is YamlDotNet.RepresentationModel.YamlSequenceNode ? map.StringList("label") : map.String("label") is { } one ? [one] : null;
        if (format == DataFormat.Csv && label is null)
        {
            map.Errors.Add("data.label", map.Node, "CSV data needs the label column(s)");
        }
        var section = new DataSection
        {
            Format = format,
            Train = train!,
            Eval = eval,
            Limit = map.Int("limit", 1, int.MaxValue),
            EvalLimit = map.Int("eval_limit", 1, int.MaxValue),
            Label = label ?? [],
            Regression = map.Bool("regression") ?? false,
            Stream = map.Bool("stream") ?? false,
            Scale = (float)(map.Double("scale", 1e-12, 1e12) ?? 1),
            Mean = Floats(map, "mean"),
            Std = Floats(map, "std"),
            Shuffle = map.Bool("shuffle") ?? true,
        };
        if (section.Std?.Any(s => s <= 0) == true)
        {
            map.Error("std", "must be positive");
        }
        map.RejectUnknown();
        return section;
    }

    private static DataFiles? Files(SpecMap parent, string key, DataFormat format, bool required)
    {
        if (parent.Raw(key) is YamlDotNet.RepresentationModel.YamlScalarNode)
        {
            var path = parent.String(key);
            if (format == DataFormat.Idx && path is not null)
            {
                parent.Error(key, "IDX data needs images and labels: {images: FILE, labels: FILE}");
            }
            return path is null ? null : new DataFiles(path, null);
        }
        var map = parent.Map(key);
        if (map is null)
        {
            if (required)
            {
                parent.Errors.Add(parent.PathOf(key), parent.Node, format == DataFormat.Idx ? "is required: {images: FILE, labels: FILE}" : "is required: a CSV file");
            }
            return null;
        }
        DataFiles? files = null;
        if (format == DataFormat.Idx)
        {
            var images = map.String("images", required: true);
            var labels = map.String("labels", required: true);
            files = images is null ? null : new DataFiles(images, labels);
        }
        else
        {
            var path = map.String("path", required: true);
            files = path is null ? null : new DataFiles(path, null);
        }
        map.RejectUnknown();
        return files;
    }

    private static TrainingSection? Training(SpecMap? map)
    {
        if (map is null)
        {
            return new TrainingSection();
        }
        var defaults = new TrainingSection();
        var optimizer = new OptimizerSection();
        if (map.Map("optimizer") is { } o)
        {
            optimizer = new OptimizerSection
            {
                Type = OneOf(o, "type", ["sgd", "adagrad", "rmsprop", "adam", "adamw"]) ?? optimizer.Type,
                LearningRate = (float)(o.Double("learning_rate", 0, 100) ?? optimizer.LearningRate),
                Momentum = (float)(o.Double("momentum", 0, 1) ?? 0),
                Nesterov = o.Bool("nesterov") ?? false,
                WeightDecay = o.Double("weight_decay", 0, 10) is { } wd ? (float)wd : null,
                Beta1 = (float)(o.Double("beta1", 0, 0.999999) ?? optimizer.Beta1),
                Beta2 = (float)(o.Double("beta2", 0, 0.999999999) ?? optimizer.Beta2),
            };
            o.RejectUnknown();
        }
        var schedule = new ScheduleSection();
        if (map.Map("schedule") is { } s)
        {
            schedule = new ScheduleSection
            {
                Type = OneOf(s, "type", ["constant", "step", "exponential", "cosine"]) ?? schedule.Type,
                WarmupSteps = s.Int("warmup_steps", 0, int.MaxValue) ?? 0,
                StepSize = s.Int("step_size", 1, int.MaxValue) ?? schedule.StepSize,
                Gamma = (float)(s.Double("gamma", 0, 1) ?? schedule.Gamma),
                MinRate = (float)(s.Double("min_rate", 0, 100) ?? 0),
            };
            s.RejectUnknown();
        }
        EarlyStoppingSection? early = null;
        if (map.Map("early_stopping") is { } e)
        {
            var metric = e.String("metric", required: true);
            if (metric is not null && metric != "loss" && !Metrics.Names.Contains(metric))
            {
                e.Error("metric", $"unknown metric '{metric}' (loss, {string.Join(", ", Metrics.Names)})");
            }
            early = new EarlyStoppingSection(metric ?? "loss") { Patience = e.Int("patience", 1, 1000) ?? 3, MinDelta = e.Double("min_delta", 0, 1e9) ?? 0 };
            e.RejectUnknown();
        }
        var metrics = map.StringList("metrics");
        foreach (var m in metrics ?? [])
        {
            if (!Metrics.Names.Contains(m))
            {
                map.Error("metrics", $"unknown metric '{m}' (known: {string.Join(", ", Metrics.Names)})");
            }
        }
        var section = new TrainingSection
        {
            Epochs = map.Int("epochs", 1, 1_000_000),
            MaxSteps = map.Int("max_steps", 1, int.MaxValue),
            BatchSize = map.Int("batch_size", 1, 1 << 20) ?? defaults.BatchSize,
            Seed = (ulong)(map.Int("seed", 0, int.MaxValue) ?? 42),
            Threads = map.Int("threads", 1, 1024),
            Optimizer = optimizer,
            Schedule = schedule,
            ClipNorm = map.Double("clip_norm", 1e-9, 1e9) is { } c ? (float)c : null,
            Loss = OneOf(map, "loss", ["auto", "mse", "huber"]) ?? "auto",
            CheckpointEverySteps = map.Int("checkpoint_every_steps", 1, int.MaxValue) ?? defaults.CheckpointEverySteps,
            CheckpointEvery = map.Parsed<TimeSpan>("checkpoint_every", Quantity.TryParseDuration),
            KeepCheckpoints = map.Int("keep_checkpoints", 1, 1000) ?? defaults.KeepCheckpoints,
            EvalEverySteps = map.Int("eval_every_steps", 1, int.MaxValue),
            EvalEvery = map.Parsed<TimeSpan>("eval_every", Quantity.TryParseDuration),
            Metrics = metrics,
            EarlyStopping = early,
            LogEverySteps = map.Int("log_every_steps", 1, int.MaxValue) ?? defaults.LogEverySteps,
        };
        map.RejectUnknown();
        return section;
    }

    private static ExportSection? Export(SpecMap? map)
    {
        if (map is null)
        {
            return new ExportSection();
        }
        var best = map.String("best_metric");
        if (best is not null && best != "loss" && !Metrics.Names.Contains(best))
        {
            map.Error("best_metric", $"unknown metric '{best}' (loss, {string.Join(", ", Metrics.Names)})");
        }
        var section = new ExportSection
        {
            Opset = map.Int("opset", 17, 21) ?? 17,
            BestMetric = best,
            KeepBest = map.Int("keep_best", 1, 100) ?? 1,
        };
        map.RejectUnknown();
        return section;
    }

    private static RegisterSection? Register(SpecMap? map)
    {
        if (map is null)
        {
            return null;
        }
        var model = map.String("model", required: true);
        if (model is not null && !Names.IsValidModelName(model))
        {
            map.Error("model", $"'{model}' is not a valid model name ({Names.ModelNamePattern})");
        }
        var section = new RegisterSection(model ?? "")
        {
            Alias = map.String("alias"),
            Description = map.String("description"),
            Tags = map.StringMap("tags") ?? new Dictionary<string, string>(),
        };
        map.RejectUnknown();
        return section;
    }

    private static JobSection? Job(SpecMap? map)
    {
        if (map is null)
        {
            return new JobSection();
        }
        var defaults = new JobSection();
        var cpu = map.String("cpu");
        if (cpu is not null && !Quantity.TryParseCpu(cpu, out _, out var cpuError))
        {
            map.Error("cpu", cpuError!);
        }
        var memory = map.String("memory");
        if (memory is not null && !Quantity.TryParseBytes(memory, out _, out var memoryError))
        {
            map.Error("memory", memoryError!);
        }
        var walltime = map.String("walltime");
        if (walltime is not null && !Quantity.TryParseDuration(walltime, out _, out var wallError))
        {
            map.Error("walltime", wallError!);
        }
        var section = new JobSection
        {
            Cpu = cpu ?? defaults.Cpu,
            Memory = memory ?? defaults.Memory,
            Gpus = map.Int("gpus", 0, 1024) ?? 0,
            Queue = map.String("queue"),
            Priority = map.Int("priority", -1_000_000, 1_000_000) ?? 0,
            MaxRestarts = map.Int("max_restarts", 0, 1000) ?? defaults.MaxRestarts,
            Walltime = walltime,
        };
        map.RejectUnknown();
        return section;
    }

    private static string? OneOf(SpecMap map, string key, string[] allowed)
    {
        var text = map.String(key);
        if (text is not null && !allowed.Contains(text))
        {
            map.Error(key, $"'{text}' is not one of {string.Join(", ", allowed)}");
            return null;
        }
        return text;
    }

    private static List<int>? Ints(SpecMap map, string key, int min, int max)
    {
        var list = map.StringList(key);
        if (list is null)
        {
            return null;
        }
        var result = new List<int>();
        foreach (var item in list)
        {
            if (!int.TryParse(item, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
            {
                map.Error(key, $"'{item}' is not a whole number between {min} and {max}");
                return null;
            }
            result.Add(v);
        }
        if (result.Count == 0)
        {
            map.Error(key, "must not be empty");
        }
        return result;
    }

    private static List<float>? Floats(SpecMap map, string key)
    {
        var node = map.Raw(key);
        var list = node is YamlDotNet.RepresentationModel.YamlSequenceNode ? map.StringList(key) : map.String(key) is { } one ? [one] : null;
        if (list is null)
        {
            return null;
        }
        var result = new List<float>();
        foreach (var item in list)
        {
            if (!float.TryParse(item, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v))
            {
                map.Error(key, $"'{item}' is not a number");
                return null;
            }
            result.Add(v);
        }
        return result;
    }
}
