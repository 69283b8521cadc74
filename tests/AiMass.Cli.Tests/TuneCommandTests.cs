using System.Globalization;
using System.Text.Json;
using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

/// <summary><c>aimass tune</c> and <c>aimass studies ...</c> against a real control plane whose trials are real jobs.</summary>
public sealed class TuneCommandTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private TempDirectory _work = null!;

    public async Task InitializeAsync()
    {
        _work = new TempDirectory();
        _server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Studies:Tick"] = "00:00:00.100",
            ["Jobs:Tick"] = "00:00:00.100",
            // A training objective's trials run this same aimass.
            ["Studies:TrialCommand:0"] = "dotnet",
            ["Studies:TrialCommand:1"] = CliRunner.Dll,
        });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _work.Dispose();
    }

    private Task<CliResult> Run(params string[] args) => CliRunner.RunAsync(_server.Address, args);

    private static JsonElement Json(CliResult r)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    [Fact]
    public async Task Tune_CommandObjective_FollowsToTheEnd_RegistersTheBest_AndTheStudiesCommandsShowIt()
    {
        var model = _work.Combine("model.onnx");
        await File.WriteAllBytesAsync(model, OnnxModels.Linear());
        var spec = _work.Combine("quadratic.yaml");
        // (x - 0.3)^2 on a grid of x (no trials: the default of 100 is capped at the grid's 11 points); each trial copies
        // a model into its directory, to be registered if it is best.
        await File.WriteAllTextAsync(spec, $$$"""
            name: quadratic
            space:
              x: {type: float, low: 0, high: 1, step: 0.1}
            sampler: grid
            parallel: 3
            objective:
              command: cp {{{model}}} "$AIMASS_TRIAL_DIR/model.onnx"; echo "objective=$(awk 'BEGIN { printf "%.6f", ({{x}} - 0.3) ^ 2 }')"
            job:
              resources: {cpu: 250m, memory: 64Mi}
            register: {model: quadratic-best, alias: staging, artifact: model.onnx}
            """);

        var tuned = await Run("tune", spec);
        Assert.True(tuned.ExitCode == 0, tuned.ToString());
        Assert.Contains("study quadratic completed: 11 complete, 0 pruned, 0 failed of 11 trials", tuned.Stdout, StringComparison.Ordinal);
        Assert.Contains("best: trial", tuned.Stdout, StringComparison.Ordinal);
        Assert.Contains("x=0.3", tuned.Stdout, StringComparison.Ordinal);
        Assert.Contains("registered quadratic-best@1 (staging)", tuned.Stdout, StringComparison.Ordinal);
        Assert.Equal(11, tuned.Stdout.Split('\n').Count(l => l.StartsWith("trial ", StringComparison.Ordinal)));

        var list = Json(await Run("--json", "studies", "list"));
        var study = Assert.Single(list.GetProperty("items").EnumerateArray());
        Assert.Equal("completed", study.GetProperty("state").GetString());
        Assert.Equal("grid", study.GetProperty("sampler").GetString());

        var best = Json(await Run("--json", "studies", "best", "quadratic"));
        Assert.Equal("0.3", best.GetProperty("params").GetProperty("x").GetString());
        Assert.Equal(0, best.GetProperty("value").GetDouble(), 6);

        var show = await Run("studies", "show", "quadratic");
        Assert.True(show.ExitCode == 0, show.ToString());
        Assert.Contains("complete *", show.Stdout, StringComparison.Ordinal);

        var version = Json(await Run("--json", "models", "show", "quadratic-best@staging"));
        Assert.Equal("study:quadratic/trial:" + best.GetProperty("number").GetInt32().ToString(CultureInfo.InvariantCulture) + "/job:" + best.GetProperty("job_id").GetInt64().ToString(CultureInfo.InvariantCulture),
            version.GetProperty("lineage").GetProperty("source").GetString());
        Assert.Equal(0.3, version.GetProperty("params").GetProperty("x").GetDouble(), 9);

        var reportDir = _work.Combine("report");
        var report = await Run("studies", "report", "quadratic", "--output", reportDir);
        Assert.True(report.ExitCode == 0, report.ToString());
        Assert.Contains("importance: x 100", report.Stdout, StringComparison.Ordinal);
        foreach (var file in new[] { "history.png", "history.svg", "parallel-coordinates.png", "parallel-coordinates.svg", "importance.png", "importance.svg", "report.json" })
        {
            Assert.True(File.Exists(Path.Combine(reportDir, file)), file);
        }

        var ended = await Run("studies", "stop", "quadratic");
        Assert.Equal(1, ended.ExitCode);
        Assert.Contains("has already ended (completed)", ended.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tune_TrainingSpecWithPlaceholders_RunsAimassTrainPerTrial_WithAsha()
    {
        const string Data = "/usr/share/datasets/fashion-mnist";
        await File.WriteAllTextAsync(_work.Combine("mlp.yaml"), $$$"""
            name: tiny-mlp
            model: {type: mlp, width: {{width}}, depth: 1}
            data:
              format: idx
              train: {images: {{{Data}}}/train-images-idx3-ubyte.gz, labels: {{{Data}}}/train-labels-idx1-ubyte.gz}
              eval: {images: {{{Data}}}/t10k-images-idx3-ubyte.gz, labels: {{{Data}}}/t10k-labels-idx1-ubyte.gz}
              limit: 2000
              eval_limit: 500
              scale: 0.00392156862745098
            training:
              epochs: 2
              batch_size: 50
              optimizer:
                type: {{optimizer}}
                learning_rate: {{lr}}
                momentum: {{momentum|0}}
              eval_every_steps: 20
              metrics: [accuracy]
            """);
        var spec = _work.Combine("study.yaml");
        await File.WriteAllTextAsync(spec, """
            name: tiny
            direction: maximize
            metric: accuracy
            space:
              lr: {type: float, low: 1e-3, high: 0.1, log: true}
              width: {type: int, low: 8, high: 32}
              optimizer: [adam, sgd]
              momentum: {type: float, low: 0.5, high: 0.9, when: {optimizer: sgd}}
            sampler: tpe
            pruner: {type: asha, min_resource: 20, reduction_factor: 2, max_resource: 80}
            trials: 4
            parallel: 2
            objective: {training: mlp.yaml}
            job:
              resources: {cpu: 500m, memory: 512Mi}
              env: {OPENBLAS_NUM_THREADS: "1"}
            """);
        var tuned = await Run("tune", spec);
        Assert.True(tuned.ExitCode == 0, tuned.ToString());
        Assert.Contains("study tiny completed", tuned.Stdout, StringComparison.Ordinal);
        var trials = Json(await Run("--json", "studies", "show", "tiny")).GetProperty("trials").EnumerateArray().ToList();
        Assert.Equal(4, trials.Count);
        Assert.All(trials, t => Assert.True(t.GetProperty("intermediate_count").GetInt32() > 0, $"trial {t.GetProperty("number")} reported no evaluation"));
        var complete = trials.Where(t => t.GetProperty("state").GetString() == "complete").ToList();
        Assert.NotEmpty(complete);
        Assert.All(complete, t =>
        {
            Assert.InRange(t.GetProperty("value").GetDouble(), 0.1, 1);
            Assert.EndsWith(Path.Combine("model", "export", "model.onnx"), t.GetProperty("artifact").GetString(), StringComparison.Ordinal);
        });
        // The filled-in training spec of each trial is kept in its trial directory.
        var first = Directory.GetFiles(_server.DataDirectory, "train.yaml", SearchOption.AllDirectories);
        Assert.Equal(4, first.Length);
        Assert.DoesNotContain("{{", await File.ReadAllTextAsync(first[0]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tune_BadSpec_IsRefusedBeforeAnythingRuns_WithFieldAndLine()
    {
        var spec = _work.Combine("bad.yaml");
        await File.WriteAllTextAsync(spec, """
            name: bad
            space: {lr: {type: float, low: 0, high: 1, log: true}}
            objective: {training: missing.yaml}
            """);
        var missing = await Run("tune", spec);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("missing.yaml' does not exist", missing.Stderr, StringComparison.Ordinal);

        await File.WriteAllTextAsync(spec, """
            name: bad
            space: {lr: {type: float, low: 0, high: 1, log: true}}
            objective: {command: 'echo objective={{lr}}'}
            """);
        var bad = await Run("tune", spec);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("line 2", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("log", bad.Stderr, StringComparison.Ordinal);
        var none = Json(await Run("--json", "studies", "list"));
        Assert.Empty(none.GetProperty("items").EnumerateArray());
    }
}
