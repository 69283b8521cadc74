using AiMass.Tensors;
using AiMass.Training.Data;

namespace AiMass.Training.Tests;

public sealed class EstimatorTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "aimass-estimator-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    /// <summary>Two interleaved spirals-like blobs: class = whether x0 * x1 > 0 (XOR of signs), 4 features with noise.</summary>
    internal static Dataset XorData(int count, ulong seed)
    {
        var random = new CheckpointableRandom(seed);
        var features = new float[count * 4];
        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            var a = random.NextSingle() * 2 - 1;
            var b = random.NextSingle() * 2 - 1;
            features[i * 4] = a;
            features[i * 4 + 1] = b;
            features[i * 4 + 2] = random.NextSingle() * 0.1f;
            features[i * 4 + 3] = random.NextSingle() * 0.1f;
            labels[i] = a * b > 0 ? 1 : 0;
        }
        return Dataset.FromArrays(features, [4], labels);
    }

    internal static EstimatorSpec Classifier(Tensor features, Labels? labels, Mode mode, ModelContext context)
    {
        var hidden = context.Param("hidden", 16);
        var model = context.Module("net", () =>
        {
            var random = context.Random("init");
            return new Sequential(new Linear(4, hidden, random), Lambda.Tanh(), new Dropout(context.Param("dropout", 0f), context.Random("dropout")), new Linear(hidden, 2, random));
        });
        var logits = model.Forward(features);
        var loss = labels?.Classes is { } classes ? Losses.CrossEntropy(logits, classes) : null;
        var op = mode == Mode.Train
            ? new TrainOp(context.Optimizer("adam", () => new Adam(model.NamedParameters(), context.Param("lr", 0.05f)))) { ClipNorm = 5f }
            : null;
        return new EstimatorSpec
        {
            Predictions = logits,
            Loss = loss,
            TrainOp = op,
            EvalMetrics = [Metrics.Accuracy, Metrics.F1, Metrics.Auc],
            Export = new ExportSignature(model),
        };
    }

    private RunConfig Config(long? checkpointEvery = 25, StringWriter? log = null) => new()
    {
        ModelDir = _dir,
        Seed = 7,
        CheckpointEverySteps = checkpointEvery,
        KeepCheckpoints = 3,
        Log = log ?? new StringWriter(),
        Threads = 1,
    };

    [Fact]
    public void Train_and_evaluate_learns_xor_and_reports_every_metric()
    {
        var estimator = new Estimator(Classifier, Config());
        var result = estimator.TrainAndEvaluate(
            new TrainSpec(XorData(800, 1).Batched(32).Shuffled(3)) { Epochs = 15 },
            new EvalSpec(XorData(400, 2).Batched(100)));

        Assert.Equal(15, result.Epoch);
        Assert.Equal(15 * 25, result.Step);
        var metrics = result.LastEvaluation!.Metrics;
        Assert.True(metrics["accuracy"] > 0.93, $"accuracy {metrics["accuracy"]}");
        Assert.True(metrics["auc"] > 0.97, $"auc {metrics["auc"]}");
        Assert.True(metrics["f1"] > 0.9, $"f1 {metrics["f1"]}");
        Assert.True(metrics["loss"] < 0.3, $"loss {metrics["loss"]}");
        Assert.Equal(400, result.LastEvaluation.Examples);
        // One evaluation per epoch, recorded in the model directory.
        Assert.Equal(15, File.ReadAllLines(Path.Combine(_dir, "eval-eval.jsonl")).Length);

        var predictions = estimator.Predict(XorData(10, 2).Batched(4)).ToList();
        Assert.Equal(10, predictions.Count);
        Assert.All(predictions, p => Assert.Equal(2, p.Length));
    }

    [Fact]
    public void A_run_interrupted_mid_epoch_and_resumed_ends_bit_identical_to_an_uninterrupted_one()
    {
        var parameters = new Dictionary<string, string> { ["dropout"] = "0.2" };
        var data = XorData(300, 1).Batched(32).Shuffled(5);

        var straight = new Estimator(Classifier, Config() with { ModelDir = _dir + "-straight" }, parameters);
        straight.Train(data, epochs: 4);

        // 30 steps: the last checkpoint is at step 30 (mid-epoch 4 of 10 batches), then a new process-like estimator resumes.
        var first = new Estimator(Classifier, Config(checkpointEvery: 10), parameters);
        first.Train(data, maxSteps: 23);
        var log = new StringWriter();
        var resumed = new Estimator(Classifier, Config(checkpointEvery: 10, log), parameters);
        var result = resumed.Train(data, epochs: 4);

        Assert.Contains("resuming from", log.ToString(), StringComparison.Ordinal);
        Assert.Contains("step 23", log.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("ckpt-0000000023.aimass", result.ResumedFrom, StringComparison.Ordinal);
        Assert.Equal(40, result.Step);
        var a = straight.Context.Modules["net"].StateDict();
        var b = resumed.Context.Modules["net"].StateDict();
        foreach (var (name, values) in a)
        {
            Assert.Equal(values, b[name]);
        }
        Directory.Delete(_dir + "-straight", recursive: true);
    }

    [Fact]
    public void A_damaged_newest_checkpoint_is_skipped_with_a_warning()
    {
        var data = XorData(200, 1).Batched(20);
        new Estimator(Classifier, Config(checkpointEvery: 5)).Train(data, maxSteps: 15);
        var newest = Directory.GetFiles(_dir, "ckpt-*.aimass").Order(StringComparer.Ordinal).Last();
        Assert.EndsWith("ckpt-0000000015.aimass", newest, StringComparison.Ordinal);
        var bytes = File.ReadAllBytes(newest);
        File.WriteAllBytes(newest, bytes.AsSpan(0, bytes.Length / 2).ToArray());

        var log = new StringWriter();
        var result = new Estimator(Classifier, Config(checkpointEvery: 5, log)).Train(data, maxSteps: 20);

        Assert.Contains("skipped checkpoint ckpt-0000000015.aimass", log.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("ckpt-0000000010.aimass", result.ResumedFrom, StringComparison.Ordinal);
        Assert.Equal(20, result.Step);
    }

    [Fact]
    public void A_nan_loss_stops_training_with_an_error_naming_the_step()
    {
        var features = new float[40 * 4];
        features[25 * 4] = float.NaN; // example 25: batch 3 of the first epoch with batches of 10
        var data = Dataset.FromArrays(features, [4], new int[40]).Batched(10);
        var error = Assert.Throws<TrainingException>(() => new Estimator(Classifier, Config()).Train(data, epochs: 1));
        Assert.Contains("at step 3 (epoch 1, batch 3)", error.Message, StringComparison.Ordinal);
        Assert.Contains("NaN", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluation_cadence_is_independent_of_checkpoints_and_early_stopping_ends_the_run()
    {
        var estimator = new Estimator(Classifier, Config(checkpointEvery: 5), new Dictionary<string, string> { ["lr"] = "0" });
        var result = estimator.TrainAndEvaluate(
            new TrainSpec(XorData(200, 1).Batched(20)) { Epochs = 50, Hooks = [Hooks.EarlyStopping("accuracy", patience: 2)] },
            new EvalSpec(XorData(100, 2).Batched(50)) { EverySteps = 7, EveryEpoch = false });

        // With a learning rate of 0 nothing improves: evaluations at steps 7, 14, 21 and the run stops after the third.
        Assert.Equal(21, result.Step);
        Assert.Contains("early stopping: accuracy has not improved", result.StopReason, StringComparison.Ordinal);
        var steps = File.ReadAllLines(Path.Combine(_dir, "eval-eval.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64());
        Assert.Equal([7, 14, 21], steps);
        // Checkpoints every 5 steps plus the final one; three kept.
        Assert.Equal(["ckpt-0000000015.aimass", "ckpt-0000000020.aimass", "ckpt-0000000021.aimass"],
            Directory.GetFiles(_dir, "ckpt-*.aimass").Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void An_interrupted_run_checkpoints_the_step_it_reached_skips_the_evaluations_due_and_resumes_there()
    {
        using var signal = new CancellationTokenSource();
        var estimator = new Estimator(Classifier, Config(checkpointEvery: 1000));
        var result = estimator.TrainAndEvaluate(
            new TrainSpec(XorData(200, 1).Batched(20)) { Epochs = 50, Hooks = [new CancelAt(14, signal), Hooks.InterruptWhen("interrupted by a signal", signal.Token)] },
            new EvalSpec(XorData(100, 2).Batched(50)) { EverySteps = 7, EveryEpoch = false });
        Assert.True(result.Interrupted);
        Assert.Equal(14, result.Step);
        Assert.Equal("interrupted by a signal", result.StopReason);
        // The evaluation at step 7 ran; the one due at step 14, the step interrupted, and the final one did not.
        var steps = File.ReadAllLines(Path.Combine(_dir, "eval-eval.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64());
        Assert.Equal([7], steps);
        Assert.Equal(["ckpt-0000000014.aimass"], Directory.GetFiles(_dir, "ckpt-*.aimass").Select(Path.GetFileName));

        var resumed = new Estimator(Classifier, Config(checkpointEvery: 1000)).Train(XorData(200, 1).Batched(20), maxSteps: 20);
        Assert.EndsWith("ckpt-0000000014.aimass", resumed.ResumedFrom, StringComparison.Ordinal);
        Assert.False(resumed.Interrupted);
        Assert.Equal(20, resumed.Step);
    }

    private sealed class CancelAt(long step, CancellationTokenSource signal) : TrainingHook
    {
        public override void AfterStep(TrainingRun run, StepInfo info)
        {
            if (info.Step == step)
            {
                signal.Cancel();
            }
        }
    }

    [Fact]
    public void The_best_exporter_keeps_the_best_k_and_export_writes_onnx()
    {
        var estimator = new Estimator(Classifier, Config());
        var exporter = new BestExporter("accuracy") { Keep = 2 };
        estimator.TrainAndEvaluate(
            new TrainSpec(XorData(400, 1).Batched(40).Shuffled(1)) { Epochs = 6 },
            new EvalSpec(XorData(200, 2).Batched(100)) { Exporters = [exporter] });

        var kept = exporter.List(_dir);
        Assert.Equal(2, kept.Count);
        Assert.True(kept[0].Value >= kept[1].Value);
        var evaluations = File.ReadAllLines(Path.Combine(_dir, "eval-eval.jsonl"))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("metrics").GetProperty("accuracy").GetDouble()).ToList();
        Assert.Equal(evaluations.Max(), kept[0].Value);
        Assert.All(kept, k => Assert.True(File.Exists(Path.Combine(k.Directory, "model.onnx"))));

        // A fresh estimator (another process) exports from the newest checkpoint.
        var path = new Estimator(Classifier, Config()).Export(Path.Combine(_dir, "final", "model.onnx"), [4]);
        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 100);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp"));
    }

    [Fact]
    public void Evaluating_without_any_checkpoint_or_training_is_an_error()
    {
        var error = Assert.Throws<TrainingException>(() => new Estimator(Classifier, Config()).Evaluate(XorData(10, 1)));
        Assert.Contains("no checkpoint", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_spec_without_a_train_op_in_train_mode_is_an_error()
    {
        EstimatorSpec NoOp(Tensor f, Labels? l, Mode m, ModelContext c)
        {
            var spec = Classifier(f, l, m, c);
            return spec with { TrainOp = null };
        }
        var error = Assert.Throws<TrainingException>(() => new Estimator(NoOp, Config()).Train(XorData(10, 1), maxSteps: 1));
        Assert.Contains("no train op", error.Message, StringComparison.Ordinal);
    }
}
