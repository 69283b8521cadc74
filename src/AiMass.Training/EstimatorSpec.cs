using System.Globalization;
using AiMass.Tensors;
using AiMass.Training.Data;

namespace AiMass.Training;

/// <summary>Why the model function is called.</summary>
public enum Mode
{
    /// <summary>A training step: the spec needs a loss and a train op.</summary>
    Train,

    /// <summary>Evaluation: the spec needs predictions (and a loss to report it).</summary>
    Evaluate,

    /// <summary>Prediction: the spec needs predictions.</summary>
    Predict,
}

/// <summary>
/// The model function: given a batch's features, its labels (null when predicting), the mode and the context that
/// holds the model's modules, optimizers and hyperparameters, it returns what the estimator needs for that mode.
/// It is called for every batch; modules and optimizers are created on the first call through
/// <see cref="ModelContext.Module{T}"/> and <see cref="ModelContext.Optimizer"/> and reused afterwards (and restored
/// from the latest checkpoint when they are created).
/// </summary>
public delegate EstimatorSpec ModelFn(Tensor features, Labels? labels, Mode mode, ModelContext context);

/// <summary>What the model function returns.</summary>
public sealed record EstimatorSpec
{
    /// <summary>Model outputs for the batch ([n, k]; logits for classification).</summary>
    public Tensor? Predictions { get; init; }

    /// <summary>The scalar loss (required in training, reported in evaluation).</summary>
    public Tensor? Loss { get; init; }

    /// <summary>How the loss is minimised (required in training).</summary>
    public TrainOp? TrainOp { get; init; }

    /// <summary>Metrics computed over an evaluation from <see cref="Predictions"/> and the labels.</summary>
    public IReadOnlyList<Func<IStreamingMetric>> EvalMetrics { get; init; } = [];

    /// <summary>What <see cref="Estimator.Export"/> writes: the module whose forward pass is the served model.</summary>
    public ExportSignature? Export { get; init; }
}

/// <summary>A training step: zero the gradients, back-propagate the loss, clip, set the scheduled rate, update.</summary>
/// <param name="Optimizer">The optimizer (from <see cref="ModelContext.Optimizer"/>).</param>
public sealed record TrainOp(Optimizer Optimizer)
{
    /// <summary>Clip the global gradient norm to this value.</summary>
    public float? ClipNorm { get; init; }

    /// <summary>Learning rate per step.</summary>
    public ILearningRateSchedule? Schedule { get; init; }
}

/// <summary>The served model: a module taking the features (as the input pipeline delivers them) to the predictions.</summary>
/// <param name="Model">The module exported to ONNX.</param>
public sealed record ExportSignature(Module Model)
{
    /// <summary>ONNX export settings (input/output names, opset, IR version).</summary>
    public OnnxExportOptions Options { get; init; } = new();
}

/// <summary>
/// What the model function can keep between calls: modules, optimizers and random generators by name (created once,
/// restored from the checkpoint the estimator resumes from, saved in every checkpoint), and hyperparameters.
/// </summary>
public sealed class ModelContext
{
    private readonly Dictionary<string, Module> _modules = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Optimizer> _optimizers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CheckpointableRandom> _randoms = new(StringComparer.Ordinal);
    private readonly IReadOnlyDictionary<string, string> _params;

    internal ModelContext(ulong seed, IReadOnlyDictionary<string, string> parameters)
    {
        Seed = seed;
        _params = parameters;
    }

    /// <summary>The run's seed.</summary>
    public ulong Seed { get; }

    /// <summary>The hyperparameters as given.</summary>
    public IReadOnlyDictionary<string, string> Params => _params;

    /// <summary>The mode of the current call.</summary>
    public Mode Mode { get; internal set; }

    /// <summary>Optimizer steps taken so far.</summary>
    public long Step { get; internal set; }

    /// <summary>The checkpoint to restore modules, optimizers and generators from as they are created.</summary>
    internal Checkpoint? Restore { get; set; }

    internal IReadOnlyDictionary<string, Module> Modules => _modules;

    internal IReadOnlyDictionary<string, Optimizer> Optimizers => _optimizers;

    internal IReadOnlyDictionary<string, CheckpointableRandom> Randoms => _randoms;

    /// <summary>A hyperparameter, or <paramref name="fallback"/> when it was not given.</summary>
    public T Param<T>(string name, T fallback) where T : IParsable<T>
    {
        if (!_params.TryGetValue(name, out var text))
        {
            return fallback;
        }
        return T.TryParse(text, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new TrainingException($"hyperparameter '{name}' = '{text}' is not a valid {typeof(T).Name}");
    }

    /// <summary>
    /// The module named <paramref name="name"/>, created by <paramref name="create"/> on the first call (its
    /// parameters then restored from the checkpoint being resumed) and the same instance afterwards.
    /// </summary>
    public T Module<T>(string name, Func<T> create) where T : Module
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(create);
        if (_modules.TryGetValue(name, out var existing))
        {
            return existing as T ?? throw new TrainingException($"module '{name}' is a {existing.GetType().Name}, not a {typeof(T).Name}");
        }
        var module = create();
        if (Restore is { } checkpoint)
        {
            var prefix = name + ".";
            var state = checkpoint.Model.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(p => p.Key[prefix.Length..], p => p.Value, StringComparer.Ordinal);
            try
            {
                module.LoadStateDict(state);
            }
            catch (ArgumentException e)
            {
                throw new TrainingException($"the checkpoint at step {checkpoint.Step} does not fit module '{name}': {e.Message} (did the architecture change? use a new model directory)", e);
            }
        }
        module.Train(Mode == Mode.Train);
        _modules[name] = module;
        return module;
    }

    /// <summary>The optimizer named <paramref name="name"/>, created once (its state restored from the checkpoint being resumed).</summary>
    public Optimizer Optimizer(string name, Func<Optimizer> create)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(create);
        if (_optimizers.TryGetValue(name, out var existing))
        {
            return existing;
        }
        var optimizer = create();
        if (Restore is { } checkpoint)
        {
            var prefix = name + ".";
            optimizer.LoadStateDict(checkpoint.Optimizer.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(p => p.Key[prefix.Length..], p => p.Value, StringComparer.Ordinal));
        }
        _optimizers[name] = optimizer;
        return optimizer;
    }

    /// <summary>A random generator seeded from the run's seed and <paramref name="name"/>, whose state is checkpointed (dropout, augmentation).</summary>
    public CheckpointableRandom Random(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (_randoms.TryGetValue(name, out var existing))
        {
            return existing;
        }
        var random = new CheckpointableRandom(Seed ^ Fnv(name));
        if (Restore?.Random.TryGetValue(name, out var state) == true)
        {
            random.State = state;
        }
        _randoms[name] = random;
        return random;
    }

    internal void SetMode(Mode mode)
    {
        Mode = mode;
        foreach (var module in _modules.Values)
        {
            module.Train(mode == Mode.Train);
        }
    }

    internal Checkpoint Capture(long step, int epoch, long position, IReadOnlyDictionary<string, string> metadata) => new()
    {
        Step = step,
        Epoch = epoch,
        InputPosition = position,
        Model = _modules.SelectMany(m => m.Value.StateDict().Select(p => (Key: m.Key + "." + p.Key, p.Value)))
            .ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal),
        Optimizer = _optimizers.SelectMany(o => o.Value.StateDict().Select(p => (Key: o.Key + "." + p.Key, p.Value)))
            .ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal),
        Random = _randoms.ToDictionary(r => r.Key, r => r.Value.State, StringComparer.Ordinal),
        Metadata = metadata,
    };

    private static ulong Fnv(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in text)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }
        return hash;
    }
}

/// <summary>A training failure the user can act on (NaN loss, a spec that lacks what a mode needs, bad labels).</summary>
public sealed class TrainingException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TrainingException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public TrainingException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TrainingException()
    {
    }
}
