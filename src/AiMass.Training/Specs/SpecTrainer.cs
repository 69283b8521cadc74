using System.Globalization;
using Assembly = System.Reflection.Assembly;
using System.Runtime.Loader;
using AiMass.Tensors;
using AiMass.Training.Data;
using Module = AiMass.Tensors.Module;

namespace AiMass.Training.Specs;

/// <summary>What a model class from a user assembly gets to build its network.</summary>
/// <param name="FeatureShape">Shape of one example's features as the data delivers them (raw values).</param>
/// <param name="Outputs">Number of outputs (classes, or regression targets).</param>
/// <param name="Params">The spec's <c>model.params</c>.</param>
/// <param name="Random">Seeded generator for initialisation.</param>
/// <param name="Preprocess">The spec's normalisation as a layer (identity when none), to put first.</param>
public sealed record ModelFactoryContext(int[] FeatureShape, int Outputs, IReadOnlyDictionary<string, string> Params, Random Random, Module Preprocess);

/// <summary>
/// A user model for <c>model: {type: class, assembly: ..., class: ...}</c>: a public class with a parameterless
/// constructor that builds a module from raw features to logits (classification) or predictions (regression).
/// </summary>
public interface IModelFactory
{
    /// <summary>Builds the network.</summary>
    Module Create(ModelFactoryContext context);
}

/// <summary>The outcome of <see cref="SpecTrainer.Run"/>.</summary>
/// <param name="Train">The training result.</param>
/// <param name="ModelPath">The exported ONNX model (the best one when the spec asks for it); empty when the run was interrupted (<see cref="TrainResult.Interrupted"/>).</param>
/// <param name="Metrics">Final evaluation metrics of the exported model (empty without evaluation data).</param>
/// <param name="DatasetDigest">Digest of the training data.</param>
/// <param name="Params">The run's hyperparameters as flat strings, for the registry.</param>
public sealed record TrainingOutcome(TrainResult Train, string ModelPath, IReadOnlyDictionary<string, double> Metrics, string DatasetDigest, IReadOnlyDictionary<string, string> Params);

/// <summary>Runs a <see cref="TrainingSpec"/> with the <see cref="Estimator"/>: data, built-in or user model, optimizer, schedule, checkpoints, evaluation, export.</summary>
public sealed class SpecTrainer
{
    private readonly TrainingSpec _spec;

    /// <summary>Prepares a run of <paramref name="spec"/>.</summary>
    public SpecTrainer(TrainingSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        _spec = spec;
    }

    /// <summary>
    /// Trains in <paramref name="modelDir"/> (resuming from its newest valid checkpoint, or from
    /// <paramref name="resumeFrom"/>), evaluates, exports to <c>MODEL_DIR/export/model.onnx</c>.
    /// </summary>
    public TrainingOutcome Run(string modelDir, IEnumerable<TrainingHook> hooks, TextWriter log, string? resumeFrom = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(hooks);
        ArgumentNullException.ThrowIfNull(log);
        var t = _spec.Training;
        var train = LoadData(_spec.Data.Train, _spec.Data.Limit, "train");
        var eval = _spec.Data.Eval is { } e ? LoadData(e, _spec.Data.EvalLimit, "eval") : null;
        var regression = train.LabelKind == LabelKind.Values;
        if (train.LabelKind == LabelKind.None)
        {
            throw new TrainingException("the training data has no labels (CSV: set data.label)");
        }
        var outputs = _spec.Model.Outputs ?? (regression ? train.TargetSize : MaxLabel(train) + 1);
        var trainInput = train.Batched(t.BatchSize).Prefetched(2);
        if (_spec.Data.Shuffle)
        {
            trainInput = trainInput.Shuffled(t.Seed);
        }
        var config = new RunConfig
        {
            ModelDir = modelDir,
            Seed = t.Seed,
            CheckpointEverySteps = t.CheckpointEverySteps,
            CheckpointEvery = t.CheckpointEvery,
            KeepCheckpoints = t.KeepCheckpoints,
            Threads = t.Threads ?? Math.Max(1, Environment.ProcessorCount),
            ResumeFrom = resumeFrom,
            Log = log,
            Time = time ?? TimeProvider.System,
        };
        var metricNames = t.Metrics ?? (regression ? ["mae", "rmse"] : ["accuracy"]);
        var metrics = metricNames.Select(Metrics.Create).ToList();
        var totalSteps = t.MaxSteps ?? (t.Epochs ?? 1) * (trainInput.BatchesPerEpoch ?? _spec.Training.Schedule.StepSize);
        var estimator = new Estimator(ModelFn(train.FeatureShape, outputs, regression, metrics, totalSteps), config, Params());
        var allHooks = hooks.ToList();
        if (t.EarlyStopping is { } stop)
        {
            allHooks.Add(Hooks.EarlyStopping(stop.Metric, stop.Patience, stop.MinDelta));
        }
        var trainSpec = new TrainSpec(trainInput) { Epochs = t.Epochs, MaxSteps = t.MaxSteps, Hooks = allHooks };
        TrainResult result;
        BestExporter? best = null;
        if (eval is not null)
        {
            best = _spec.Export.BestMetric is { } metric ? new BestExporter(metric) { Keep = _spec.Export.KeepBest } : null;
            result = estimator.TrainAndEvaluate(trainSpec, new EvalSpec(eval.Batched(t.BatchSize))
            {
                EverySteps = t.EvalEverySteps,
                Every = t.EvalEvery,
                Exporters = best is null ? [] : [best],
            });
        }
        else
        {
            result = estimator.Train(trainInput, t.MaxSteps, t.Epochs, allHooks);
        }
        if (result.Interrupted)
        {
            // Nothing is exported from a run that stopped half-way; its checkpoint is where it resumes.
            return new TrainingOutcome(result, "", new Dictionary<string, double>(), train.Digest, Params());
        }
        var finalPath = estimator.Export(Path.Combine(modelDir, "export", "model.onnx"));
        IReadOnlyDictionary<string, double> finalMetrics = result.LastEvaluation?.Metrics ?? new Dictionary<string, double>();
        if (best?.List(modelDir) is { Count: > 0 } kept)
        {
            finalPath = Path.Combine(kept[0].Directory, "model.onnx");
            var chosen = File.ReadAllText(Path.Combine(kept[0].Directory, "metrics.json"));
            using var doc = System.Text.Json.JsonDocument.Parse(chosen);
            finalMetrics = doc.RootElement.GetProperty("metrics").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble(), StringComparer.Ordinal);
            log.WriteLine($"best {best.Metric} export: {finalPath}");
        }
        return new TrainingOutcome(result, finalPath, finalMetrics, train.Digest, Params());
    }

    /// <summary>The run's settings as flat strings (<c>model.hidden</c>, <c>optimizer.learning_rate</c>…), recorded as version params.</summary>
    public IReadOnlyDictionary<string, string> Params()
    {
        var m = _spec.Model;
        var t = _spec.Training;
        var p = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["model.type"] = m.Type.ToString().ToLowerInvariant(),
            ["training.batch_size"] = Text(t.BatchSize),
            ["training.seed"] = Text(t.Seed),
            ["optimizer.type"] = t.Optimizer.Type,
            ["optimizer.learning_rate"] = Text(t.Optimizer.LearningRate),
            ["schedule.type"] = t.Schedule.Type,
        };
        switch (m.Type)
        {
            case ModelType.Mlp:
                p["model.hidden"] = string.Join(",", m.Hidden);
                p["model.activation"] = m.Activation;
                p["model.dropout"] = Text(m.Dropout);
                break;
            case ModelType.Cnn:
                p["model.channels"] = string.Join(",", m.Channels);
                p["model.kernel"] = Text(m.Kernel);
                p["model.fc"] = Text(m.Fc);
                p["model.dropout"] = Text(m.Dropout);
                p["model.batch_norm"] = m.BatchNorm ? "true" : "false";
                break;
            default:
                p["model.class"] = m.Class ?? "";
                break;
        }
        foreach (var (key, value) in m.Params)
        {
            p["model.params." + key] = value;
        }
        if (t.Epochs is { } epochs)
        {
            p["training.epochs"] = Text(epochs);
        }
        if (t.MaxSteps is { } steps)
        {
            p["training.max_steps"] = Text(steps);
        }
        if (t.Optimizer.WeightDecay is { } wd)
        {
            p["optimizer.weight_decay"] = Text(wd);
        }
        if (t.ClipNorm is { } clip)
        {
            p["training.clip_norm"] = Text(clip);
        }
        return p;
    }

    private static string Text<T>(T value) where T : IFormattable => value.ToString(null, CultureInfo.InvariantCulture);

    private Dataset LoadData(DataFiles files, int? limit, string split)
    {
        var d = _spec.Data;
        Dataset data;
        try
        {
            data = d.Format switch
            {
                DataFormat.Idx => Dataset.FromIdx(_spec.Resolve(files.Path), files.Labels is { } l ? _spec.Resolve(l) : null),
                _ when d.Stream => Dataset.StreamCsv(_spec.Resolve(files.Path), new CsvOptions { LabelColumns = d.Label, Regression = d.Regression }),
                _ => Dataset.FromCsv(_spec.Resolve(files.Path), new CsvOptions { LabelColumns = d.Label, Regression = d.Regression }),
            };
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new TrainingException($"data.{split}: {e.Message}", e);
        }
        return limit is { } n ? data.Take(n) : data;
    }

    private static int MaxLabel(Dataset data)
    {
        var max = 0;
        foreach (var batch in data.Batched(4096).Batches())
        {
            max = Math.Max(max, batch.Labels!.Classes!.Max());
        }
        return max;
    }

    private ModelFn ModelFn(int[] featureShape, int outputs, bool regression, IReadOnlyList<Func<IStreamingMetric>> metrics, long totalSteps)
    {
        var t = _spec.Training;
        var schedule = Schedule(totalSteps);
        return (features, labels, mode, context) =>
        {
            var model = context.Module("model", () => Build(featureShape, outputs, context));
            var predictions = model.Forward(features);
            Tensor? loss = null;
            if (labels is not null)
            {
                loss = regression
                    ? (t.Loss == "huber" ? Losses.Huber(predictions, labels.Values!) : Losses.MeanSquaredError(predictions, labels.Values!))
                    : Losses.CrossEntropy(predictions, labels.Classes!);
            }
            TrainOp? op = null;
            if (mode == Mode.Train)
            {
                var optimizer = context.Optimizer("optimizer", () => CreateOptimizer(model));
                op = new TrainOp(optimizer) { ClipNorm = t.ClipNorm, Schedule = schedule };
            }
            return new EstimatorSpec
            {
                Predictions = predictions,
                Loss = loss,
                TrainOp = op,
                EvalMetrics = metrics,
                Export = new ExportSignature(model) { Options = new OnnxExportOptions { Opset = _spec.Export.Opset, GraphName = _spec.Name } },
            };
        };
    }

    private Module Build(int[] featureShape, int outputs, ModelContext context)
    {
        var m = _spec.Model;
        var d = _spec.Data;
        var random = context.Random("init");
        var preprocess = new Normalize(d.Scale, Vector(d.Mean, 0f), Vector(d.Std, 1f));
        var init = m.Init switch
        {
            "kaiming" => WeightInit.Kaiming,
            "xavier" => WeightInit.Xavier,
            _ => WeightInit.Default,
        };
        var features = Shapes.Size(featureShape);
        var layers = new List<Module> { preprocess };
        switch (m.Type)
        {
            case ModelType.Mlp:
            {
                layers.Add(Lambda.Flatten());
                var width = features;
                foreach (var h in m.Hidden)
                {
                    layers.Add(new Linear(width, h, random, init: init));
                    layers.Add(Activation(m.Activation));
                    if (m.Dropout > 0)
                    {
                        layers.Add(new Dropout((float)m.Dropout, context.Random("dropout")));
                    }
                    width = h;
                }
                layers.Add(new Linear(width, outputs, random, init: init));
                return new Sequential([.. layers]);
            }
            case ModelType.Cnn:
            {
                var (channels, height, width) = featureShape.Length switch
                {
                    2 => (1, featureShape[0], featureShape[1]),
                    3 => (featureShape[0], featureShape[1], featureShape[2]),
                    _ => throw new TrainingException($"a cnn needs images: features of shape [height, width] or [channels, height, width], got {Shapes.Format(featureShape)}"),
                };
                int[] nchw = [-1, channels, height, width]; // a copy: the loop below changes channels, height and width
                layers.Add(new Lambda("to_nchw", x => Ops.Reshape(x, nchw)));
                foreach (var c in m.Channels)
                {
                    layers.Add(new Conv2d(channels, c, m.Kernel, random, padding: m.Kernel / 2, init: init));
                    if (m.BatchNorm)
                    {
                        layers.Add(new BatchNorm(c));
                    }
                    layers.Add(Activation(m.Activation));
                    layers.Add(Lambda.MaxPool(2));
                    (channels, height, width) = (c, height / 2, width / 2);
                    if (height < 1 || width < 1)
                    {
                        throw new TrainingException($"model.channels: {m.Channels.Count} convolutions with 2x2 pooling shrink {Shapes.Format(featureShape)} to nothing");
                    }
                }
                layers.Add(Lambda.Flatten());
                layers.Add(new Linear(channels * height * width, m.Fc, random, init: init));
                layers.Add(Activation(m.Activation));
                if (m.Dropout > 0)
                {
                    layers.Add(new Dropout((float)m.Dropout, context.Random("dropout")));
                }
                layers.Add(new Linear(m.Fc, outputs, random, init: init));
                return new Sequential([.. layers]);
            }
            default:
                return CreateUserModel(new ModelFactoryContext(featureShape, outputs, m.Params, random, preprocess));
        }
    }

    private Module CreateUserModel(ModelFactoryContext context)
    {
        var m = _spec.Model;
        var path = _spec.Resolve(m.Assembly!);
        if (!File.Exists(path))
        {
            throw new TrainingException($"model.assembly: {path} does not exist");
        }
        Assembly assembly;
        try
        {
            assembly = AssemblyLoadContext.Default.LoadFromAssemblyPath(path);
        }
        catch (BadImageFormatException e)
        {
            throw new TrainingException($"model.assembly: {path} is not a .NET assembly: {e.Message}", e);
        }
        var type = assembly.GetType(m.Class!, throwOnError: false)
            ?? throw new TrainingException($"model.class: {path} has no type '{m.Class}' (public types: {string.Join(", ", assembly.GetExportedTypes().Select(x => x.FullName).Take(10))})");
        if (!typeof(IModelFactory).IsAssignableFrom(type) || type.GetConstructor(Type.EmptyTypes) is null)
        {
            throw new TrainingException($"model.class: {type.FullName} must implement {typeof(IModelFactory).FullName} and have a public parameterless constructor");
        }
        var factory = (IModelFactory)Activator.CreateInstance(type)!;
        return factory.Create(context);
    }

    private static Tensor Vector(IReadOnlyList<float>? values, float fallback) =>
        values is null || values.Count == 0 ? Tensor.Scalar(fallback) : values.Count == 1 ? Tensor.Scalar(values[0]) : Tensor.FromArray(values.ToArray(), values.Count);

    private static Lambda Activation(string name) => name switch
    {
        "relu" => Lambda.Relu(),
        "gelu" => Lambda.Gelu(),
        "tanh" => Lambda.Tanh(),
        "sigmoid" => Lambda.Sigmoid(),
        "leaky_relu" => Lambda.LeakyRelu(),
        _ => throw new TrainingException($"model.activation: unknown '{name}' (relu, gelu, tanh, sigmoid, leaky_relu)"),
    };

    private Optimizer CreateOptimizer(Module model)
    {
        var o = _spec.Training.Optimizer;
        var p = model.NamedParameters();
        return o.Type switch
        {
            "sgd" => new Sgd(p, o.LearningRate, o.Momentum, o.Nesterov, o.WeightDecay ?? 0),
            "adagrad" => new AdaGrad(p, o.LearningRate, weightDecay: o.WeightDecay ?? 0),
            "rmsprop" => new RmsProp(p, o.LearningRate, momentum: o.Momentum, weightDecay: o.WeightDecay ?? 0),
            "adam" => new Adam(p, o.LearningRate, o.Beta1, o.Beta2, weightDecay: o.WeightDecay ?? 0),
            "adamw" => new AdamW(p, o.LearningRate, o.Beta1, o.Beta2, weightDecay: o.WeightDecay ?? 0.01f),
            _ => throw new TrainingException($"training.optimizer.type: unknown '{o.Type}' (sgd, adagrad, rmsprop, adam, adamw)"),
        };
    }

    private ILearningRateSchedule? Schedule(long totalSteps)
    {
        var s = _spec.Training.Schedule;
        var rate = _spec.Training.Optimizer.LearningRate;
        ILearningRateSchedule? schedule = s.Type switch
        {
            "constant" => s.WarmupSteps > 0 ? Schedules.Constant(rate) : null,
            "step" => Schedules.Step(rate, s.StepSize, s.Gamma),
            "exponential" => Schedules.Exponential(rate, s.Gamma),
            "cosine" => Schedules.Cosine(rate, Math.Max(1, totalSteps - s.WarmupSteps), s.MinRate),
            _ => throw new TrainingException($"training.schedule.type: unknown '{s.Type}' (constant, step, exponential, cosine)"),
        };
        return schedule is not null && s.WarmupSteps > 0 ? Schedules.LinearWarmup(s.WarmupSteps, schedule) : schedule;
    }
}
