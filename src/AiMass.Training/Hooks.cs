using System.Diagnostics;
using System.Globalization;

namespace AiMass.Training;

/// <summary>One training step as hooks see it.</summary>
/// <param name="Step">Steps taken, this one included.</param>
/// <param name="Epoch">0-based epoch of the step.</param>
/// <param name="Batch">0-based batch index in the epoch.</param>
/// <param name="Loss">The batch's loss.</param>
/// <param name="LearningRate">The rate the step used.</param>
/// <param name="Examples">Examples in the batch.</param>
/// <param name="BatchesPerEpoch">Batches per epoch when known.</param>
public sealed record StepInfo(long Step, int Epoch, long Batch, double Loss, double LearningRate, int Examples, long? BatchesPerEpoch);

/// <summary>The result of one evaluation.</summary>
/// <param name="Name">Evaluation name (<c>eval</c> by default).</param>
/// <param name="Step">Training step of the evaluated model.</param>
/// <param name="Examples">Examples evaluated.</param>
/// <param name="Metrics">Metric values by name, <c>loss</c> included when the model function reports one.</param>
public sealed record EvaluationResult(string Name, long Step, long Examples, IReadOnlyDictionary<string, double> Metrics)
{
    /// <summary>Metric values as <c>name=value</c> pairs.</summary>
    public override string ToString() =>
        string.Join(" ", Metrics.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Key}={m.Value:G6}")));
}

/// <summary>The state of a run that hooks can read and stop.</summary>
public sealed class TrainingRun
{
    internal TrainingRun(RunConfig config) => Config = config;

    /// <summary>The run's configuration.</summary>
    public RunConfig Config { get; }

    /// <summary>Steps taken.</summary>
    public long Step { get; internal set; }

    /// <summary>Current epoch (0-based).</summary>
    public int Epoch { get; internal set; }

    /// <summary>Why the run stops early, once a hook asked.</summary>
    public string? StopReason { get; private set; }

    /// <summary>Asks the run to stop after the current step (early stopping).</summary>
    public void RequestStop(string reason) => StopReason ??= reason;

    /// <summary>Whether the run was interrupted (<see cref="Interrupt"/>).</summary>
    public bool Interrupted { get; private set; }

    /// <summary>
    /// Interrupts the run after the current step (a SIGTERM before preemption, Ctrl-C): it writes a checkpoint of that
    /// step and stops without the final evaluation, so that starting it again resumes exactly there.
    /// </summary>
    public void Interrupt(string reason)
    {
        StopReason ??= reason;
        Interrupted = true;
    }
}

/// <summary>Extension points of a training run. Every method does nothing by default.</summary>
public abstract class TrainingHook
{
    /// <summary>Before the first step (after any checkpoint was restored).</summary>
    public virtual void Begin(TrainingRun run)
    {
    }

    /// <summary>After every step.</summary>
    public virtual void AfterStep(TrainingRun run, StepInfo info)
    {
    }

    /// <summary>After every evaluation during or after training.</summary>
    public virtual void AfterEvaluation(TrainingRun run, EvaluationResult result)
    {
    }

    /// <summary>After a checkpoint was written.</summary>
    public virtual void AfterCheckpoint(TrainingRun run, string path, long atStep)
    {
    }

    /// <summary>When the run ends, normally or by a stop request.</summary>
    public virtual void Finish(TrainingRun run)
    {
    }
}

/// <summary>Where a run reports metrics and checkpoints (the control plane when it runs as a job).</summary>
public interface IMetricReporter
{
    /// <summary>Reports metric values at a step.</summary>
    void ReportMetrics(long atStep, IReadOnlyDictionary<string, double> values);

    /// <summary>Reports a written checkpoint, so a restarted task resumes from it.</summary>
    void ReportCheckpoint(string path, long atStep);
}

/// <summary>Built-in hooks.</summary>
public static class Hooks
{
    /// <summary>Writes step, mean loss since the last line, learning rate and throughput every <paramref name="everySteps"/> steps, and every evaluation.</summary>
    public static TrainingHook Logging(TextWriter output, long everySteps = 100) => new LoggingHook(output, everySteps);

    /// <summary>Interrupts the run (<see cref="TrainingRun.Interrupt"/>, with <paramref name="reason"/>) after the step during which <paramref name="token"/> was cancelled.</summary>
    public static TrainingHook InterruptWhen(string reason, CancellationToken token) => new InterruptHook(reason, token);

    /// <summary>Stops training when <paramref name="metric"/> has not improved by <paramref name="minDelta"/> for <paramref name="patience"/> evaluations.</summary>
    public static TrainingHook EarlyStopping(string metric, int patience = 3, double minDelta = 0, bool? higherIsBetter = null) =>
        new EarlyStoppingHook(metric, patience, minDelta, higherIsBetter ?? Metrics.IsHigherBetter(metric));

    /// <summary>Reports the loss every <paramref name="everySteps"/> steps, every evaluation and every checkpoint.</summary>
    public static TrainingHook Reporter(IMetricReporter reporter, long everySteps = 100) => new ReporterHook(reporter, everySteps);

    /// <summary>A one-line progress bar on <paramref name="output"/> (a terminal), redrawn at most ten times a second.</summary>
    public static TrainingHook ProgressBar(TextWriter output) => new ProgressBarHook(output);

    private sealed class InterruptHook(string reason, CancellationToken token) : TrainingHook
    {
        public override void AfterStep(TrainingRun run, StepInfo info)
        {
            if (token.IsCancellationRequested)
            {
                run.Interrupt(reason);
            }
        }
    }

    private sealed class LoggingHook(TextWriter output, long every) : TrainingHook
    {
        private double _lossSum;
        private long _steps;
        private long _examples;
        private readonly Stopwatch _watch = new();

        public override void Begin(TrainingRun run)
        {
            output.WriteLine($"training from step {run.Step} (epoch {run.Epoch + 1}) in {run.Config.ModelDir}");
            _watch.Restart();
        }

        public override void AfterStep(TrainingRun run, StepInfo info)
        {
            var step = info;
            _lossSum += step.Loss;
            _steps++;
            _examples += step.Examples;
            if (step.Step % Math.Max(1, every) != 0)
            {
                return;
            }
            var rate = _examples / Math.Max(1e-9, _watch.Elapsed.TotalSeconds);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"step {step.Step} epoch {step.Epoch + 1} loss {_lossSum / _steps:F4} lr {step.LearningRate:G4} {rate:F0} examples/s"));
            (_lossSum, _steps, _examples) = (0, 0, 0);
            _watch.Restart();
        }

        public override void AfterEvaluation(TrainingRun run, EvaluationResult result) =>
            output.WriteLine($"step {result.Step} {result.Name}: {result}");

        public override void Finish(TrainingRun run) =>
            output.WriteLine(run.StopReason is { } reason ? $"stopped at step {run.Step}: {reason}" : $"finished at step {run.Step}");
    }

    private sealed class EarlyStoppingHook(string metric, int patience, double minDelta, bool higher) : TrainingHook
    {
        private double? _best;
        private int _bad;

        public override void AfterEvaluation(TrainingRun run, EvaluationResult result)
        {
            if (!result.Metrics.TryGetValue(metric, out var value))
            {
                throw new TrainingException($"early stopping watches '{metric}', but the evaluation reports only {string.Join(", ", result.Metrics.Keys)}");
            }
            if (_best is not { } best || (higher ? value > best + minDelta : value < best - minDelta))
            {
                (_best, _bad) = (value, 0);
                return;
            }
            if (++_bad >= patience)
            {
                run.RequestStop(string.Create(CultureInfo.InvariantCulture, $"early stopping: {metric} has not improved on {_best:G6} for {patience} evaluations"));
            }
        }
    }

    private sealed class ReporterHook(IMetricReporter reporter, long every) : TrainingHook
    {
        private double _lossSum;
        private long _steps;

        public override void AfterStep(TrainingRun run, StepInfo info)
        {
            var step = info;
            _lossSum += step.Loss;
            _steps++;
            if (step.Step % Math.Max(1, every) == 0)
            {
                reporter.ReportMetrics(step.Step, new Dictionary<string, double> { ["loss"] = _lossSum / _steps, ["learning_rate"] = step.LearningRate, ["epoch"] = step.Epoch + 1 });
                (_lossSum, _steps) = (0, 0);
            }
        }

        public override void AfterEvaluation(TrainingRun run, EvaluationResult result) =>
            reporter.ReportMetrics(result.Step, result.Metrics.ToDictionary(m => $"{result.Name}_{m.Key}", m => m.Value));

        public override void AfterCheckpoint(TrainingRun run, string path, long atStep) => reporter.ReportCheckpoint(path, atStep);
    }

    private sealed class ProgressBarHook(TextWriter output) : TrainingHook
    {
        private readonly Stopwatch _drawn = Stopwatch.StartNew();
        private double _loss = double.NaN;
        private bool _open;

        public override void AfterStep(TrainingRun run, StepInfo info)
        {
            var step = info;
            _loss = double.IsNaN(_loss) ? step.Loss : 0.98 * _loss + 0.02 * step.Loss;
            if (_drawn.ElapsedMilliseconds < 100 && step.Batch + 1 != step.BatchesPerEpoch)
            {
                return;
            }
            _drawn.Restart();
            const int Width = 30;
            var total = step.BatchesPerEpoch ?? 0;
            var done = total > 0 ? (int)(Width * (step.Batch + 1) / total) : 0;
            var bar = total > 0 ? new string('#', done) + new string('-', Width - done) : "";
            var counter = total > 0 ? $"{step.Batch + 1}/{total}" : $"{step.Batch + 1}";
            output.Write(string.Create(CultureInfo.InvariantCulture, $"\repoch {step.Epoch + 1} [{bar}] {counter} loss {_loss:F4} step {step.Step}   "));
            _open = true;
        }

        public override void AfterEvaluation(TrainingRun run, EvaluationResult result) => Close();

        public override void Finish(TrainingRun run) => Close();

        private void Close()
        {
            if (_open)
            {
                output.WriteLine();
                _open = false;
            }
        }
    }
}
