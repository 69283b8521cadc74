using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using AiMass.Client;
using AiMass.Registry;
using AiMass.Specs;
using AiMass.Training;
using AiMass.Training.Specs;

namespace AiMass.Cli;

/// <summary><c>aimass train SPEC.yaml [--local | --submit]</c>: trains a model here or as a job, and registers it.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("SPEC") { Description = "The training spec (YAML); see docs/training.md and examples/fashion-mnist/" };
        var local = new Option<bool>("--local") { Description = "Train in this process (the default)" };
        var submit = new Option<bool>("--submit") { Description = "Submit the training as a job to the control plane's scheduler" };
        var modelDir = new Option<string?>("--model-dir") { Description = "Checkpoints, evaluations and exports (default: runs/NAME here; in a job: the job's checkpoint directory)" };
        var noRegister = new Option<bool>("--no-register") { Description = "Do not register the exported model even if the spec has a register section" };
        var wait = new Option<bool>("--wait") { Description = "With --submit: wait until the job ends; exit 0 only if it succeeded" };
        var follow = new Option<bool>("--follow", "-f") { Description = "With --submit: print the job's logs until it ends (implies --wait)" };
        var baseDir = new Option<string?>("--base-dir") { Description = "Directory the spec's relative paths are resolved from (default: the spec's own directory)" };
        var objective = new Option<string?>("--objective") { Description = "As a study's trial: print 'intermediate STEP=VALUE' at each evaluation of this metric, then 'objective=VALUE' and 'artifact=MODEL'" };
        var command = new Command("train", "Train a model from a spec: locally (resuming from the newest checkpoint) or as a job; register the exported ONNX model")
        {
            file, local, submit, modelDir, noRegister, wait, follow, baseDir, objective,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            if (parse.GetValue(local) && parse.GetValue(submit))
            {
                throw new CliException("choose --local or --submit, not both");
            }
            var path = parse.GetValue(file)!;
            var spec = parse.GetValue(baseDir) is { } dir
                ? TrainingSpecReader.Parse(File.Exists(path) ? File.ReadAllText(path) : throw new CliException($"training spec '{path}' does not exist"), path, Path.GetFullPath(dir))
                : TrainingSpecReader.ReadFile(path);
            if (parse.GetValue(submit))
            {
                await SubmitAsync(parse, spec, Path.GetFullPath(path), parse.GetValue(noRegister), parse.GetValue(wait), parse.GetValue(follow), ct);
            }
            else
            {
                await TrainLocallyAsync(parse, spec, parse.GetValue(modelDir), parse.GetValue(noRegister), parse.GetValue(objective), ct);
            }
        }));
        return command;
    }

    private static async Task TrainLocallyAsync(ParseResult parse, TrainingSpec spec, string? modelDirOption, bool noRegister, string? objective, CancellationToken ct)
    {
        var jobId = long.TryParse(Environment.GetEnvironmentVariable("AIMASS_JOB_ID"), NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : (long?)null;
        var modelDir = Path.GetFullPath(modelDirOption
            ?? (jobId is not null ? Environment.GetEnvironmentVariable("AIMASS_CHECKPOINT_DIR") : null)
            ?? Path.Combine("runs", spec.Name));
        var register = noRegister ? null : spec.Register;
        using var client = register is not null || jobId is not null ? Cli.CreateClient(parse) : null;
        if (register is not null)
        {
            // Fail before hours of training, not after, when the registry cannot be reached.
            await client!.GetStatusAsync(ct);
        }
        var log = Console.Out;
        var hooks = new List<TrainingHook>();
        var terminal = !Console.IsErrorRedirected && !Cli.WantsJson(parse);
        if (terminal)
        {
            // First, so that it ends its line before the log writes an evaluation.
            hooks.Add(Hooks.ProgressBar(Console.Error));
        }
        hooks.Add(Hooks.Logging(Cli.WantsJson(parse) ? Console.Error : log, terminal ? long.MaxValue : spec.Training.LogEverySteps));
        if (jobId is { } job && client is not null)
        {
            hooks.Add(Hooks.Reporter(new JobReporter(client, job, Console.Error), spec.Training.LogEverySteps));
        }
        if (objective is not null)
        {
            hooks.Add(new TrialPrinter(objective, log));
        }
        // SIGTERM (a job cancelled or preempted: the executor sends it, then SIGKILL after the grace period) or Ctrl-C:
        // finish the step, checkpoint it and stop, so the next start resumes exactly there.
        hooks.Add(Hooks.InterruptWhen("interrupted by a signal", ct));
        var trainer = new SpecTrainer(spec);
        var outcome = await Task.Run(() => trainer.Run(modelDir, hooks, Cli.WantsJson(parse) ? Console.Error : log, Environment.GetEnvironmentVariable("AIMASS_RESUME_FROM")), CancellationToken.None);
        if (outcome.Train.Interrupted)
        {
            await Console.Error.WriteLineAsync($"interrupted at step {outcome.Train.Step} (epoch {outcome.Train.Epoch}): checkpoint written in {modelDir}; run the same command to resume from it");
            throw new InterruptedRun();
        }
        ModelVersionInfo? version = null;
        if (register is not null)
        {
            await using var stream = File.OpenRead(outcome.ModelPath);
            var source = jobId is { } j ? $"job:{j}" : $"local:{Environment.MachineName}:{modelDir}";
            version = await client!.RegisterVersionAsync(register.Model, stream, new RegisterVersionRequest
            {
                Description = register.Description ?? $"{spec.Name}: trained with aimass train",
                Tags = register.Tags,
                Params = outcome.Params.ToDictionary(p => p.Key, p => JsonSerializer.SerializeToElement(p.Value), StringComparer.Ordinal),
                Metrics = outcome.Metrics.Where(m => double.IsFinite(m.Value)).ToDictionary(m => m.Key, m => m.Value, StringComparer.Ordinal),
                Lineage = new Lineage(source, outcome.DatasetDigest),
                Alias = register.Alias,
            }, cancellationToken: ct);
        }
        if (objective is not null)
        {
            if (!outcome.Metrics.TryGetValue(objective, out var value) || !double.IsFinite(value))
            {
                throw new CliException($"the training produced no '{objective}' metric to optimise (it has: {string.Join(", ", outcome.Metrics.Keys)}); list it in training.metrics and give the spec data.eval");
            }
            log.WriteLine($"artifact={outcome.ModelPath}");
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"objective={value:R}"));
        }
        var summary = new TrainSummary(spec.Name, outcome.Train.Step, outcome.Train.Epoch, outcome.Train.StopReason, outcome.Train.ResumedFrom, modelDir,
            outcome.ModelPath, outcome.Metrics, outcome.DatasetDigest, version is null ? null : $"{version.Name}@{version.Version}");
        var metrics = string.Join(" ", outcome.Metrics.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Key}={m.Value:G6}")));
        Cli.Print(parse, summary, $"trained {spec.Name}: {outcome.Train.Step} steps, {outcome.Train.Epoch} epochs{(metrics.Length > 0 ? "; " + metrics : "")}\n"
            + $"model: {outcome.ModelPath}"
            + (version is null ? "" : $"\nregistered {version.Name}@{version.Version} ({version.Digest})" + (register!.Alias is { } a ? $"; {a} -> {version.Version}" : "")));
    }

    private static async Task SubmitAsync(ParseResult parse, TrainingSpec spec, string specPath, bool noRegister, bool wait, bool follow, CancellationToken ct)
    {
        var program = Environment.ProcessPath ?? "dotnet";
        var command = new List<string> { program };
        if (Path.GetFileNameWithoutExtension(program) == "dotnet")
        {
            command.Add(typeof(TrainCommand).Assembly.Location);
        }
        command.AddRange(["train", specPath, "--local"]);
        if (noRegister)
        {
            command.Add("--no-register");
        }
        var job = new Dictionary<string, object?>
        {
            ["name"] = spec.Name,
            ["command"] = command,
            ["resources"] = new Dictionary<string, object> { ["cpu"] = spec.Job.Cpu, ["memory"] = spec.Job.Memory, ["gpu"] = spec.Job.Gpus },
            ["priority"] = spec.Job.Priority,
            ["max_restarts"] = spec.Job.MaxRestarts,
            ["working_dir"] = spec.BaseDirectory,
        };
        if (spec.Job.Queue is { } queue)
        {
            job["queue"] = queue;
        }
        if (spec.Job.Walltime is { } walltime)
        {
            job["walltime"] = walltime;
        }
        using var client = Cli.CreateClient(parse);
        var submitted = await client.SubmitJobAsync(JsonSerializer.Serialize(job), specPath, ct);
        if (!wait && !follow)
        {
            Cli.Print(parse, submitted, $"job {submitted.Id} submitted: training {spec.Name} ({submitted.Resources}); follow it with 'aimass jobs logs {submitted.Id} -f'");
            return;
        }
        await JobsCommands.FollowAsync(parse, client, submitted, follow, ct);
    }

    /// <summary>Reports a job's metrics and checkpoints to the control plane; a failed report is a warning, never the end of training.</summary>
    private sealed class JobReporter(AiMassClient client, long job, TextWriter warnings) : IMetricReporter
    {
        private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

        public void ReportMetrics(long atStep, IReadOnlyDictionary<string, double> values) =>
            Report(() => client.ReportJobMetricsAsync(job, values.Where(v => double.IsFinite(v.Value)).ToDictionary(v => v.Key, v => v.Value, StringComparer.Ordinal), atStep));

        public void ReportCheckpoint(string path, long atStep) => Report(() => client.ReportJobCheckpointAsync(job, path, atStep));

        private void Report(Func<Task> send)
        {
            try
            {
                send().WaitAsync(Timeout).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutException or AiMassApiException or TaskCanceledException)
            {
                warnings.WriteLine($"warning: could not report to the control plane: {e.Message}");
            }
        }
    }

    /// <summary>A study's trial protocol: each evaluation's value of the metric as an <c>intermediate STEP=VALUE</c> line.</summary>
    private sealed class TrialPrinter(string metric, TextWriter output) : TrainingHook
    {
        public override void AfterEvaluation(TrainingRun run, EvaluationResult result)
        {
            if (result.Metrics.TryGetValue(metric, out var value) && double.IsFinite(value))
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"intermediate {result.Step}={value:R}"));
                output.Flush();
            }
        }
    }

    private sealed record TrainSummary(string Name, long Steps, int Epochs, string? StopReason, string? ResumedFrom, string ModelDir, string ModelPath,
        IReadOnlyDictionary<string, double> Metrics, string DatasetDigest, string? Registered);
}
