using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using AiMass.Client;
using AiMass.Jobs;
using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

public sealed partial class UpAndCrashTests
{
    private const string FashionMnist = "/usr/share/datasets/fashion-mnist";

    private static string TrainSpec(string name, int limit, int epochs, int checkpointEvery, string extra = "") => $"""
        name: {name}
        model: {"{"}type: mlp, hidden: [32]{"}"}
        data:
          format: idx
          train: {"{"}images: {FashionMnist}/train-images-idx3-ubyte.gz, labels: {FashionMnist}/train-labels-idx1-ubyte.gz{"}"}
          eval: {"{"}images: {FashionMnist}/t10k-images-idx3-ubyte.gz, labels: {FashionMnist}/t10k-labels-idx1-ubyte.gz{"}"}
          limit: {limit}
          eval_limit: 1000
          scale: 0.00392156862745098
          mean: 0.286
          std: 0.353
        training:
          epochs: {epochs}
          batch_size: 32
          checkpoint_every_steps: {checkpointEvery}
          log_every_steps: 10
        {extra}
        """;

    [GeneratedRegex(@"^step (\d+) epoch \d+ loss ([0-9.]+)", RegexOptions.Multiline)]
    private static partial Regex StepLine();

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);

    /// <summary>
    /// Runs <c>aimass train SPEC --model-dir DIR</c> as a child process until it logs step <paramref name="step"/>, then
    /// sends it <paramref name="signal"/> and waits for it to end; returns its output and exit code.
    /// </summary>
    private static async Task<(string Stdout, string Stderr, int ExitCode)> TrainUntilStepAsync(string spec, string modelDir, string workingDirectory, int step, int signal)
    {
        var stdout = new System.Text.StringBuilder();
        var stderr = new System.Text.StringBuilder();
        using var process = Process.Start(CliRunner.StartInfo(["train", spec, "--model-dir", modelDir], workingDirectory: workingDirectory))!;
        process.StandardInput.Close();
        var reachedStep = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (stdout)
            {
                stdout.AppendLine(e.Data);
            }
            if (StepLine().Match(e.Data) is { Success: true } m && int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) >= step)
            {
                reachedStep.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var done = await Task.WhenAny(reachedStep.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromMinutes(2)));
        Assert.True(done == reachedStep.Task, $"the run did not reach step {step}:\n{stdout}\n{stderr}");
        Assert.Equal(0, SendSignal(process.Id, signal));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(deadline.Token);
        process.WaitForExit(); // flush the redirected output
        lock (stdout)
        {
            return (stdout.ToString(), stderr.ToString(), process.ExitCode);
        }
    }

    /// <summary>Runs the same training again to its end; returns its result and the step it resumed from.</summary>
    private static async Task<(CliResult Result, int ResumedAt)> ResumeAsync(string spec, string modelDir, string workingDirectory)
    {
        var result = await CliRunner.RunWithEnvAsync(new Dictionary<string, string>(), workingDirectory, "train", spec, "--model-dir", modelDir);
        Assert.True(result.ExitCode == 0, result.ToString());
        var resumed = Regex.Match(result.Stdout, @"resuming from .*ckpt-(\d+)\.aimass \(step (\d+)");
        Assert.True(resumed.Success, result.ToString());
        return (result, int.Parse(resumed.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task TrainLocal_Sigterm_CheckpointsTheStepItReached_AndTheNextRunResumesExactlyThere()
    {
        using var dir = new TempDirectory();
        var spec = Path.Combine(dir.Path, "train.yaml");
        // No periodic checkpoint before the signal: the one the next run resumes from is the interruption's.
        await File.WriteAllTextAsync(spec, TrainSpec("interruptible", limit: 4000, epochs: 12, checkpointEvery: 100_000));
        var modelDir = Path.Combine(dir.Path, "model");
        var (stdout, stderr, exitCode) = await TrainUntilStepAsync(spec, modelDir, dir.Path, step: 200, signal: 15); // SIGTERM, as a job's cancel or preemption sends it
        var interrupted = Regex.Match(stderr, @"interrupted at step (\d+) \(epoch \d+\): checkpoint written in (.+); run the same command to resume from it");
        Assert.True(interrupted.Success, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.Equal(130, exitCode);
        var step = int.Parse(interrupted.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(step >= 200, stderr);
        Assert.True(File.Exists(Path.Combine(modelDir, $"ckpt-{step:D10}.aimass")), string.Join(", ", Directory.GetFiles(modelDir)));
        Assert.False(File.Exists(Path.Combine(modelDir, "export", "model.onnx"))); // nothing exported from half a run

        var (second, resumedAt) = await ResumeAsync(spec, modelDir, dir.Path);
        Assert.Equal(step, resumedAt); // not one step lost
        Assert.Contains("trained interruptible: 1500 steps, 12 epochs", second.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TrainLocal_KilledWithSigkill_ResumesWithinOneCheckpointInterval_AndContinuesTheLossCurve()
    {
        using var dir = new TempDirectory();
        var spec = Path.Combine(dir.Path, "train.yaml");
        await File.WriteAllTextAsync(spec, TrainSpec("resumable", limit: 4000, epochs: 12, checkpointEvery: 50));
        var modelDir = Path.Combine(dir.Path, "model");

        // First run: kill it (SIGKILL) once it has logged step 400.
        var (output, _, _) = await TrainUntilStepAsync(spec, modelDir, dir.Path, step: 400, signal: 9);
        var before = StepLine().Matches(output).Select(m => (Step: int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Loss: double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))).ToList();
        var killedAfter = before[^1].Step;
        var initialLoss = before[0].Loss;

        var (second, resumedAt) = await ResumeAsync(spec, modelDir, dir.Path);
        Assert.InRange(resumedAt, killedAfter - 50, killedAfter + 50);
        var after = StepLine().Matches(second.Stdout).Select(m => (Step: int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Loss: double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))).ToList();
        Assert.True(after[0].Step > resumedAt && after[0].Step <= resumedAt + 10, second.ToString());
        // The curve continues: the first loss after resuming is near the last before the kill, far below the initial one.
        Assert.True(after[0].Loss < initialLoss * 0.6, $"loss {after[0].Loss} after resuming vs {initialLoss} at the start\n{second}");
        Assert.True(Math.Abs(after[0].Loss - before[^1].Loss) < 0.35, $"loss {after[0].Loss} after resuming vs {before[^1].Loss} before the kill");
        Assert.Contains("trained resumable: 1500 steps, 12 epochs", second.Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(modelDir, "export", "model.onnx")));
    }

    [Fact]
    public async Task TrainSubmit_TaskKilled_RestartResumesFromTheReportedCheckpoint_AndRegistersTheModelWithLineage()
    {
        using var data = new TempDirectory();
        using var work = new TempDirectory();
        var spec = Path.Combine(work.Path, "train.yaml");
        await File.WriteAllTextAsync(spec, TrainSpec("job-trained", limit: 3000, epochs: 20, checkpointEvery: 100, """
            export: {best_metric: accuracy}
            register: {model: fmnist-small, alias: staging}
            job: {cpu: "1", memory: 1Gi, max_restarts: 2}
            """));
        await using var server = await UpProcess.StartAsync(data.Path);
        var submit = await CliRunner.RunAsync(server.Address, "train", spec, "--submit", "--json");
        Assert.True(submit.ExitCode == 0, submit.ToString());
        var id = JsonDocument.Parse(submit.Stdout).RootElement.GetProperty("id").GetInt64();
        using var client = new AiMassClient(server.Address);

        // Once a checkpoint past step 200 is reported, kill the training process: the job restarts and resumes from it.
        await Poll.UntilAsync(async () => (await client.GetJobCheckpointsAsync(id)).Any(c => c.Step >= 200), TimeSpan.FromMinutes(2), "a reported checkpoint");
        var job = await client.GetJobAsync(id);
        var pid = job.Tasks.Single().Pid!.Value;
        Process.GetProcessById(pid).Kill(entireProcessTree: true);

        JobInfo final = null!;
        await Poll.UntilAsync(async () => (final = await client.GetJobAsync(id)).State is JobState.Succeeded or JobState.Failed, TimeSpan.FromMinutes(3), "the job to end");
        Assert.True(final.State == JobState.Succeeded, $"{final.State}: {final.Reason}\n{server.Output}");
        Assert.Equal(2, final.Attempt);
        var logs = new MemoryStream();
        await client.CopyJobLogsAsync(id, logs, attempt: 2);
        var text = System.Text.Encoding.UTF8.GetString(logs.ToArray());
        Assert.Matches(@"resuming from .*/ckpt-\d+\.aimass \(step [1-9]\d\d+", text);
        Assert.Contains("registered fmnist-small@1", text, StringComparison.Ordinal);

        var version = await client.GetVersionAsync(Registry.VersionRef.Parse("fmnist-small@staging"));
        Assert.Equal(1, version.Version);
        Assert.Equal($"job:{id}", version.Lineage?.Source);
        Assert.StartsWith("sha256:", version.Lineage?.DatasetDigest, StringComparison.Ordinal);
        Assert.True(version.Metrics!["accuracy"] > 0.7, $"accuracy {version.Metrics["accuracy"]}");
        Assert.Equal("mlp", version.Params!["model.type"].GetString());
        Assert.Equal([-1, 28, 28], version.Signature!.Inputs[0].Shape);
        var metrics = await client.GetJobMetricsAsync(id, "loss");
        Assert.Contains(metrics, m => m.Attempt == 1);
        Assert.Contains(metrics, m => m.Attempt == 2);
        Assert.Contains(await client.GetJobMetricsAsync(id, "eval_accuracy"), m => m.Value > 0.5);
    }

    [Fact]
    public async Task TrainWithABadSpec_ExitsOneNamingEveryFieldAndLine()
    {
        using var dir = new TempDirectory();
        var spec = Path.Combine(dir.Path, "bad.yaml");
        await File.WriteAllTextAsync(spec, "name: bad\nmodel: {type: transformer}\ndata:\n  format: idx\n  train: {images: a.gz}\ntraining:\n  epochs: 0\n  optimiser: adam\n");
        var result = await CliRunner.RunWithEnvAsync(new Dictionary<string, string>(), dir.Path, "train", spec);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("model.type", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("'transformer' is not one of mlp, cnn, class", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("data.train.labels", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("training.epochs", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("did you mean 'optimizer'", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("line 8", result.Stderr, StringComparison.Ordinal);

        var missing = await CliRunner.RunWithEnvAsync(new Dictionary<string, string>(), dir.Path, "train", Path.Combine(dir.Path, "nope.yaml"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("does not exist", missing.Stderr, StringComparison.Ordinal);
    }
}
