using System.Globalization;
using System.Text.Json;
using AiMass.Tensors;
using AiMass.Training.Data;

namespace AiMass.Training;

/// <summary>Where and how a run keeps its state.</summary>
public sealed record RunConfig
{
    /// <summary>The model directory: checkpoints, evaluation history, exports.</summary>
    public required string ModelDir { get; init; }

    /// <summary>Seed of initialisation, shuffling and dropout.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Checkpoint every N steps (null: not by steps).</summary>
    public long? CheckpointEverySteps { get; init; } = 1000;

    /// <summary>Checkpoint when this much time passed since the last one (null: not by time).</summary>
    public TimeSpan? CheckpointEvery { get; init; }

    /// <summary>Checkpoints kept (the newest).</summary>
    public int KeepCheckpoints { get; init; } = 5;

    /// <summary>Threads of the engine's kernels and BLAS (null: leave as configured).</summary>
    public int? Threads { get; init; }

    /// <summary>A specific checkpoint file to resume from (the control plane's <c>AIMASS_RESUME_FROM</c>); the newest valid one in <see cref="ModelDir"/> otherwise.</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>Stop with an error naming the step when the loss becomes NaN or infinite.</summary>
    public bool NanGuard { get; init; } = true;

    /// <summary>Warnings and notices (skipped checkpoints, resumption), and the training log.</summary>
    public TextWriter Log { get; init; } = TextWriter.Null;

    /// <summary>Write the mean loss, learning rate and throughput to <see cref="Log"/> every N steps (null: no training log).</summary>
    public long? LogEverySteps { get; init; }

    /// <summary>Clock of time-based cadences.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>What and how long to train in <see cref="Estimator.TrainAndEvaluate"/>.</summary>
/// <param name="Input">The training data (batched, shuffled as wanted).</param>
public sealed record TrainSpec(Dataset Input)
{
    /// <summary>Stop after this many steps in total.</summary>
    public long? MaxSteps { get; init; }

    /// <summary>Stop after this many epochs in total.</summary>
    public int? Epochs { get; init; }

    /// <summary>Hooks of the run.</summary>
    public IReadOnlyList<TrainingHook> Hooks { get; init; } = [];
}

/// <summary>How evaluation runs alongside training, independently of checkpointing.</summary>
/// <param name="Input">The evaluation data.</param>
public sealed record EvalSpec(Dataset Input)
{
    /// <summary>Name of the evaluation (prefix of reported metrics, file <c>eval-NAME.jsonl</c>).</summary>
    public string Name { get; init; } = "eval";

    /// <summary>Evaluate every N steps (null: not by steps).</summary>
    public long? EverySteps { get; init; }

    /// <summary>Evaluate when this much time passed since the last evaluation.</summary>
    public TimeSpan? Every { get; init; }

    /// <summary>Evaluate at the end of every epoch.</summary>
    public bool EveryEpoch { get; init; } = true;

    /// <summary>Exporters run after every evaluation.</summary>
    public IReadOnlyList<BestExporter> Exporters { get; init; } = [];
}

/// <summary>The outcome of a training run.</summary>
/// <param name="Step">Steps taken in total.</param>
/// <param name="Epoch">Epochs completed.</param>
/// <param name="StopReason">Why it stopped early, or null.</param>
/// <param name="LastEvaluation">The last evaluation, when there was one.</param>
/// <param name="ResumedFrom">The checkpoint it started from, or null.</param>
public sealed record TrainResult(long Step, int Epoch, string? StopReason, EvaluationResult? LastEvaluation, string? ResumedFrom)
{
    /// <summary>
    /// True when the run was interrupted (<see cref="TrainingRun.Interrupt"/>): it wrote a checkpoint of the step it
    /// reached and stopped without its final evaluation, to be resumed from that checkpoint.
    /// </summary>
    public bool Interrupted { get; init; }
}

/// <summary>
/// Trains, evaluates, predicts with and exports a model defined by one <see cref="ModelFn"/>. State lives in the
/// model directory: a run resumes from the newest valid checkpoint (parameters, optimizer state, step, epoch, input
/// position and random states), so a process killed at any moment and started again continues its loss curve within
/// one checkpoint interval. Evaluation cadence (<see cref="EvalSpec"/>) is independent of checkpoint cadence.
/// </summary>
public sealed class Estimator
{
    private readonly ModelFn _modelFn;
    private readonly CheckpointStore _store;
    private readonly TensorArena _arena = new();
    private ExportSignature? _export;
    private int[]? _featureShape;
    private bool _restored;
    private string? _resumedFrom;
    private int _epoch;
    private long _position;

    /// <summary>Creates an estimator; <paramref name="parameters"/> are the hyperparameters the model function reads.</summary>
    public Estimator(ModelFn modelFn, RunConfig config, IReadOnlyDictionary<string, string>? parameters = null)
    {
        ArgumentNullException.ThrowIfNull(modelFn);
        ArgumentNullException.ThrowIfNull(config);
        _modelFn = modelFn;
        Config = config;
        _store = new CheckpointStore(config.ModelDir, config.KeepCheckpoints);
        Context = new ModelContext(config.Seed, parameters ?? new Dictionary<string, string>());
        if (config.Threads is { } threads)
        {
            Parallelism.Threads = threads;
        }
    }

    /// <summary>The configuration.</summary>
    public RunConfig Config { get; }

    /// <summary>The model function's state: modules, optimizers, generators, hyperparameters.</summary>
    public ModelContext Context { get; }

    /// <summary>Steps taken (after resumption: including the earlier runs').</summary>
    public long Step => Context.Step;

    /// <summary>The checkpoint store of the model directory.</summary>
    public CheckpointStore Checkpoints => _store;

    /// <summary>Trains on <paramref name="input"/> until <paramref name="maxSteps"/> steps or <paramref name="epochs"/> epochs in total (counting resumed ones).</summary>
    public TrainResult Train(Dataset input, long? maxSteps = null, int? epochs = null, IEnumerable<TrainingHook>? hooks = null) =>
        Run(new TrainSpec(input) { MaxSteps = maxSteps, Epochs = epochs, Hooks = hooks?.ToList() ?? [] }, null);

    /// <summary>Trains and evaluates on the cadence of <paramref name="eval"/>, and once more at the end.</summary>
    public TrainResult TrainAndEvaluate(TrainSpec train, EvalSpec eval)
    {
        ArgumentNullException.ThrowIfNull(eval);
        return Run(train, eval);
    }

    /// <summary>Evaluates the model on <paramref name="input"/>: mean loss and every metric of the spec.</summary>
    public EvaluationResult Evaluate(Dataset input, string name = "eval")
    {
        ArgumentNullException.ThrowIfNull(input);
        RestoreOnce(requireTrained: true);
        Context.SetMode(Mode.Evaluate);
        using var _ = Autograd.NoGrad();
        Dictionary<string, IStreamingMetric>? metrics = null;
        double lossSum = 0;
        long examples = 0;
        var hasLoss = false;
        foreach (var batch in input.Batches())
        {
            using var scope = _arena.Enter();
            var spec = Call(batch.Features, batch.Labels, Mode.Evaluate);
            var predictions = spec.Predictions ?? throw new TrainingException("the model function returned no predictions in Evaluate mode");
            metrics ??= spec.EvalMetrics.Select(f => f()).ToDictionary(m => m.Name, StringComparer.Ordinal);
            if (batch.Labels is { } labels)
            {
                foreach (var metric in metrics.Values)
                {
                    metric.Update(predictions, labels);
                }
            }
            if (spec.Loss is { } loss)
            {
                hasLoss = true;
                lossSum += loss.Item() * batch.Size;
            }
            examples += batch.Size;
        }
        if (examples == 0)
        {
            throw new TrainingException($"evaluation '{name}' got no examples from its input");
        }
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        if (hasLoss)
        {
            values["loss"] = lossSum / examples;
        }
        foreach (var (key, metric) in metrics!)
        {
            values[key] = metric.Result();
        }
        var result = new EvaluationResult(name, Step, examples, values);
        AppendHistory(result);
        return result;
    }

    /// <summary>The model's predictions for every example of <paramref name="input"/>, one array per example.</summary>
    public IEnumerable<float[]> Predict(Dataset input)
    {
        ArgumentNullException.ThrowIfNull(input);
        RestoreOnce(requireTrained: true);
        Context.SetMode(Mode.Predict);
        foreach (var batch in input.Batches())
        {
            float[] values;
            int k;
            using (Autograd.NoGrad())
            using (_arena.Enter())
            {
                var predictions = Call(batch.Features, null, Mode.Predict).Predictions
                    ?? throw new TrainingException("the model function returned no predictions in Predict mode");
                values = predictions.ToArray();
                k = values.Length / batch.Size;
            }
            for (var i = 0; i < batch.Size; i++)
            {
                yield return values.AsSpan(i * k, k).ToArray();
            }
        }
    }

    /// <summary>
    /// Writes the model as ONNX to <paramref name="path"/> (atomically) and returns it. The export signature comes
    /// from the model function; when it was not called yet in this process, it is called once on zeros of
    /// <paramref name="featureShape"/>.
    /// </summary>
    public string Export(string path, int[]? featureShape = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        RestoreOnce(requireTrained: true);
        if (_export is null || _featureShape is null)
        {
            var shape = featureShape ?? _featureShape
                ?? throw new TrainingException("export needs the feature shape: the model function has not run in this process");
            Context.SetMode(Mode.Predict);
            using (Autograd.NoGrad())
            {
                Call(Tensor.Zeros([1, .. shape]), null, Mode.Predict);
            }
        }
        var signature = _export ?? throw new TrainingException("the model function returned no export signature (EstimatorSpec.Export)");
        var bytes = OnnxExport.Export(signature.Model, _featureShape!, signature.Options);
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temporary = full + $".{Environment.ProcessId}.tmp";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                file.Write(bytes);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
        return full;
    }

    private TrainResult Run(TrainSpec train, EvalSpec? eval)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.MaxSteps is null && train.Epochs is null)
        {
            throw new ArgumentException("give the number of epochs or the maximum number of steps", nameof(train));
        }
        RestoreOnce(requireTrained: false);
        if (_position > 0 && Context.Restore?.Metadata.GetValueOrDefault("input") is { } input && input != train.Input.Describe())
        {
            // The position counts batches of the input the checkpoint was taken with; another input (batch size, data,
            // shuffle) makes it meaningless, so the interrupted epoch starts over.
            Config.Log.WriteLine($"warning: the checkpoint was taken on another input ({input}); epoch {_epoch + 1} starts from its first batch");
            _position = 0;
        }
        var run = new TrainingRun(Config) { Step = Step, Epoch = _epoch };
        IReadOnlyList<TrainingHook> hooks = Config.LogEverySteps is { } every ? [Hooks.Logging(Config.Log, every), .. train.Hooks] : train.Hooks;
        foreach (var hook in hooks)
        {
            hook.Begin(run);
        }
        var time = Config.Time;
        var lastCheckpoint = time.GetTimestamp();
        var lastEval = lastCheckpoint;
        var savedStep = _resumedFrom is null ? -1 : Step;
        var evaluatedStep = -1L;
        EvaluationResult? lastEvaluation = null;

        void Checkpoint()
        {
            var path = _store.Save(Context.Capture(Step, _epoch, _position, new Dictionary<string, string>
            {
                ["input"] = train.Input.Describe(),
                ["time"] = time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture),
            }));
            savedStep = Step;
            lastCheckpoint = time.GetTimestamp();
            foreach (var hook in hooks)
            {
                hook.AfterCheckpoint(run, path, Step);
            }
        }

        void Evaluate()
        {
            lastEvaluation = this.Evaluate(eval!.Input, eval.Name);
            evaluatedStep = Step;
            lastEval = time.GetTimestamp();
            foreach (var exporter in eval.Exporters)
            {
                exporter.Consider(this, lastEvaluation);
            }
            foreach (var hook in hooks)
            {
                hook.AfterEvaluation(run, lastEvaluation);
            }
        }

        bool Done() => run.StopReason is not null || (train.MaxSteps is { } max && Step >= max) || (train.Epochs is { } e && _epoch >= e);

        var batchesPerEpoch = train.Input.BatchesPerEpoch;
        while (!Done())
        {
            Context.SetMode(Mode.Train);
            var any = false;
            var interrupted = false;
            foreach (var batch in train.Input.Batches(_epoch, _position))
            {
                any = true;
                var loss = TrainStep(batch, out var rate);
                _position = batch.Index + 1;
                run.Step = Step;
                var info = new StepInfo(Step, _epoch, batch.Index, loss, rate, batch.Size, batchesPerEpoch);
                foreach (var hook in hooks)
                {
                    hook.AfterStep(run, info);
                }
                if ((Config.CheckpointEverySteps is { } cs && Step % cs == 0) ||
                    (Config.CheckpointEvery is { } ct && time.GetElapsedTime(lastCheckpoint) >= ct))
                {
                    Checkpoint();
                }
                if (eval is not null && !run.Interrupted && ((eval.EverySteps is { } es && Step % es == 0) || (eval.Every is { } et && time.GetElapsedTime(lastEval) >= et)))
                {
                    Evaluate();
                    Context.SetMode(Mode.Train);
                }
                if (run.StopReason is not null || (train.MaxSteps is { } max && Step >= max))
                {
                    interrupted = batchesPerEpoch is not { } per || _position < per;
                    break;
                }
            }
            if (!any && _position == 0)
            {
                throw new TrainingException("the training input produced no batches");
            }
            if (interrupted)
            {
                break;
            }
            // The epoch is complete (a resumed position past the end also counts as complete).
            _epoch++;
            _position = 0;
            run.Epoch = _epoch;
            if (eval is { EveryEpoch: true } && evaluatedStep != Step)
            {
                Evaluate();
            }
        }
        if (eval is not null && evaluatedStep != Step && !run.Interrupted)
        {
            Evaluate();
        }
        if (savedStep != Step)
        {
            Checkpoint();
        }
        foreach (var hook in hooks)
        {
            hook.Finish(run);
        }
        return new TrainResult(Step, _epoch, run.StopReason, lastEvaluation, _resumedFrom) { Interrupted = run.Interrupted };
    }

    private double TrainStep(Batch batch, out double rate)
    {
        // Everything the step computes lives in the arena and is recycled for the next step (same shapes, warm memory).
        using var step = _arena.Enter();
        var spec = Call(batch.Features, batch.Labels, Mode.Train);
        var loss = spec.Loss ?? throw new TrainingException("the model function returned no loss in Train mode");
        var op = spec.TrainOp ?? throw new TrainingException("the model function returned no train op in Train mode");
        if (loss.Length != 1)
        {
            throw new TrainingException($"the loss must be a scalar, got shape {Shapes.Format(loss.Shape)}");
        }
        var value = loss.Item();
        if (Config.NanGuard && !float.IsFinite(value))
        {
            throw new TrainingException(string.Create(CultureInfo.InvariantCulture,
                $"the loss is {value} at step {Step + 1} (epoch {_epoch + 1}, batch {batch.Index + 1}); lower the learning rate, clip gradients, or check the data — the last checkpoint is kept"));
        }
        var optimizer = op.Optimizer;
        if (op.Schedule is { } schedule)
        {
            optimizer.LearningRate = schedule.Rate(Step);
        }
        optimizer.ZeroGrad();
        loss.Backward();
        if (op.ClipNorm is { } clip)
        {
            var norm = GradientClipping.ClipByNorm(optimizer.Parameters.Select(p => p.Param), clip);
            if (Config.NanGuard && !float.IsFinite(norm))
            {
                throw new TrainingException(string.Create(CultureInfo.InvariantCulture, $"the gradient norm is {norm} at step {Step + 1} (epoch {_epoch + 1}, batch {batch.Index + 1})"));
            }
        }
        optimizer.Step();
        Context.Step++;
        rate = optimizer.LearningRate;
        return value;
    }

    private EstimatorSpec Call(Tensor features, Labels? labels, Mode mode)
    {
        var spec = _modelFn(features, labels, mode, Context) ?? throw new TrainingException($"the model function returned null in {mode} mode");
        // Modules exist now: the checkpoint has been applied to everything created in this call.
        _featureShape ??= features.Shape[1..];
        _export = spec.Export ?? _export;
        return spec;
    }

    private void RestoreOnce(bool requireTrained)
    {
        if (_restored)
        {
            return;
        }
        Checkpoint? checkpoint = null;
        if (Config.ResumeFrom is { } from)
        {
            try
            {
                checkpoint = CheckpointStore.Read(from);
                _resumedFrom = from;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                Config.Log.WriteLine($"warning: cannot resume from {from}: {e.Message}; looking for the newest valid checkpoint in {Config.ModelDir}");
            }
        }
        if (checkpoint is null)
        {
            var (latest, path, skipped) = _store.LoadLatest();
            foreach (var reason in skipped)
            {
                Config.Log.WriteLine($"warning: skipped checkpoint {reason}");
            }
            checkpoint = latest;
            _resumedFrom = path;
        }
        if (checkpoint is null)
        {
            if (requireTrained)
            {
                throw new TrainingException($"no checkpoint in {Config.ModelDir} and nothing trained in this process: train first");
            }
        }
        else
        {
            Context.Restore = checkpoint;
            Context.Step = checkpoint.Step;
            _epoch = checkpoint.Epoch;
            _position = checkpoint.InputPosition;
            Config.Log.WriteLine($"resuming from {_resumedFrom} (step {checkpoint.Step}, epoch {checkpoint.Epoch + 1}, batch {checkpoint.InputPosition})");
        }
        _restored = true;
    }

    private void AppendHistory(EvaluationResult result)
    {
        Directory.CreateDirectory(Config.ModelDir);
        var line = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["step"] = result.Step,
            ["time"] = Config.Time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture),
            ["examples"] = result.Examples,
            ["metrics"] = result.Metrics,
        });
        File.AppendAllText(Path.Combine(Config.ModelDir, $"eval-{result.Name}.jsonl"), line + "\n");
    }
}

/// <summary>
/// Keeps the best <see cref="Keep"/> exports by a metric: after an evaluation that ranks among them, the model is
/// exported to <c>MODEL_DIR/export/best/STEP/model.onnx</c> with its <c>metrics.json</c>, and exports that fell out
/// of the best are deleted. The ranking is read back from disk, so it survives restarts.
/// </summary>
/// <param name="Metric">The metric ranked by.</param>
public sealed record BestExporter(string Metric)
{
    /// <summary>How many exports are kept.</summary>
    public int Keep { get; init; } = 1;

    /// <summary>Whether larger values are better (default: by the metric's name).</summary>
    public bool? HigherIsBetter { get; init; }

    /// <summary>The kept exports, best first: (directory, metric value, step).</summary>
    public IReadOnlyList<(string Directory, double Value, long Step)> List(string modelDir)
    {
        var root = Path.Combine(modelDir, "export", "best");
        if (!Directory.Exists(root))
        {
            return [];
        }
        var higher = HigherIsBetter ?? Metrics.IsHigherBetter(Metric);
        var entries = new List<(string, double, long)>();
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var file = Path.Combine(dir, "metrics.json");
            if (!File.Exists(file) || !File.Exists(Path.Combine(dir, "model.onnx")))
            {
                continue;
            }
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            if (doc.RootElement.TryGetProperty("metrics", out var metrics) && metrics.TryGetProperty(Metric, out var v) && v.ValueKind == JsonValueKind.Number)
            {
                entries.Add((dir, v.GetDouble(), doc.RootElement.GetProperty("step").GetInt64()));
            }
        }
        return higher ? entries.OrderByDescending(e => e.Item2).ThenBy(e => e.Item3).ToList() : entries.OrderBy(e => e.Item2).ThenBy(e => e.Item3).ToList();
    }

    internal void Consider(Estimator estimator, EvaluationResult result)
    {
        if (!result.Metrics.TryGetValue(Metric, out var value))
        {
            throw new TrainingException($"the best-model exporter ranks by '{Metric}', but the evaluation reports only {string.Join(", ", result.Metrics.Keys)}");
        }
        if (double.IsNaN(value))
        {
            return;
        }
        var modelDir = estimator.Config.ModelDir;
        var kept = List(modelDir);
        var higher = HigherIsBetter ?? Metrics.IsHigherBetter(Metric);
        if (kept.Count >= Keep && !(higher ? value > kept[Keep - 1].Value : value < kept[Keep - 1].Value))
        {
            return;
        }
        var dir = Path.Combine(modelDir, "export", "best", result.Step.ToString("D10", CultureInfo.InvariantCulture));
        estimator.Export(Path.Combine(dir, "model.onnx"));
        var json = JsonSerializer.Serialize(new Dictionary<string, object> { ["step"] = result.Step, ["evaluation"] = result.Name, ["metrics"] = result.Metrics });
        var temporary = Path.Combine(dir, "metrics.json.tmp");
        File.WriteAllText(temporary, json);
        File.Move(temporary, Path.Combine(dir, "metrics.json"), overwrite: true);
        foreach (var (old, _, _) in List(modelDir).Skip(Keep))
        {
            Directory.Delete(old, recursive: true);
        }
    }
}
