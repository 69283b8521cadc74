using System.Globalization;
using AiMass.Studies;
using AiMass.TestSupport;

namespace AiMass.Jobs.Tests;

/// <summary>Studies on the platform: trials as jobs, their output read, failures retried, restarts survived.</summary>
public sealed class StudyTests
{
    private static readonly Dictionary<string, string?> FastStudies = new() { ["Studies:Tick"] = "00:00:00.100" };

    private static Task<TestServer> StartAsync(TempDirectory? directory = null) => JobsHarness.StartAsync(directory: directory, settings: FastStudies);

    private static async Task<StudyInfo> WaitEndedAsync(TestServer server, string study, int seconds = 90)
    {
        StudyInfo? info = null;
        await Poll.UntilAsync(async () =>
        {
            info = await server.Client.GetStudyAsync(study);
            return info.State is StudyState.Completed or StudyState.Stopped;
        }, TimeSpan.FromSeconds(seconds), $"study {study} to end");
        return info!;
    }

    private static async Task<TrialInfo> WaitTrialAsync(TestServer server, string study, int number, Func<TrialInfo, bool> condition, string what)
    {
        TrialInfo? trial = null;
        await Poll.UntilAsync(async () =>
        {
            var trials = await server.Client.GetTrialsAsync(study);
            trial = trials.FirstOrDefault(t => t.Number == number);
            return trial is not null && condition(trial);
        }, TimeSpan.FromSeconds(60), what);
        return trial!;
    }

    [Fact]
    public async Task Study_CommandObjective_FillsPlaceholdersAndEnv_AndReadsTheObjective()
    {
        await using var server = await StartAsync();
        var study = await server.Client.CreateStudyAsync(new CreateStudyRequest("""
            name: fill
            direction: maximize
            space:
              opt: [adam, sgd]
              x: {type: float, low: 1, high: 2}
              momentum: {type: float, low: 0, high: 1, when: {opt: sgd}}
            sampler: random
            trials: 6
            parallel: 2
            objective:
              command: echo "opt=$AIMASS_PARAM_OPT momentum=${AIMASS_PARAM_MOMENTUM-unset} m={{momentum|none}} trial=$AIMASS_TRIAL"; echo "objective=$(awk 'BEGIN { printf "%.10f", {{x}} * 2 }')"
            job:
              resources: {cpu: 500m, memory: 64Mi}
            """));
        var ended = await WaitEndedAsync(server, study.Name);
        Assert.Equal(StudyState.Completed, ended.State);
        Assert.Equal(6, ended.Complete);
        var trials = await server.Client.GetTrialsAsync(study.Name);
        Assert.Equal([0, 1, 2, 3, 4, 5], trials.Select(t => t.Number));
        Assert.Equal(6, trials.Select(t => t.JobId).Distinct().Count());
        foreach (var t in trials)
        {
            var x = double.Parse(t.Params["x"], CultureInfo.InvariantCulture);
            Assert.Equal(2 * x, t.Value!.Value, 4);
            var log = await server.Client.LogsAsync(t.JobId!.Value);
            var sgd = t.Params["opt"] == "sgd";
            Assert.Equal(sgd, t.Params.ContainsKey("momentum"));
            Assert.Contains(sgd ? $"opt=sgd momentum={t.Params["momentum"]} m={t.Params["momentum"]}" : "opt=adam momentum=unset m=none", log, StringComparison.Ordinal);
            Assert.Contains($"trial={t.Number}", log, StringComparison.Ordinal);
        }
        Assert.Equal(trials.Max(t => t.Value), ended.Best!.Value);
        var best = await server.Client.GetBestTrialAsync(study.Name);
        Assert.Equal(ended.Best.Number, best.Number);
    }

    [Fact]
    public async Task Trial_KilledWithSigkill_IsMarkedFailed_AndItsConfigurationRetried()
    {
        using var directory = new TempDirectory();
        await using var server = await StartAsync(directory);
        var go = directory.Combine("go");
        var study = await server.Client.CreateStudyAsync(new CreateStudyRequest($$$"""
            name: killed
            space:
              x: {type: int, low: 1, high: 100}
            sampler: random
            trials: 1
            max_retries: 1
            objective:
              command: echo $$ > "$AIMASS_TRIAL_DIR/pid"; {{{JobWaits.WaitFor(go)}}}; echo objective={{x}}
            """));
        var running = await WaitTrialAsync(server, study.Name, 0, _ => File.Exists(Path.Combine(server.DataDirectory, "studies", study.Id.ToString(CultureInfo.InvariantCulture), "trials", "0", "pid")),
            "trial 0 to write its pid");
        var pidFile = Path.Combine(server.DataDirectory, "studies", study.Id.ToString(CultureInfo.InvariantCulture), "trials", "0", "pid");
        var pid = int.Parse((await File.ReadAllTextAsync(pidFile)).Trim(), CultureInfo.InvariantCulture);
        Assert.Equal("running", running.State);
        System.Diagnostics.Process.GetProcessById(pid).Kill(); // SIGKILL

        var failed = await WaitTrialAsync(server, study.Name, 0, t => t.State == "failed", "the killed trial to be marked failed");
        Assert.Contains("signal 9", failed.Reason, StringComparison.Ordinal);
        var retry = await WaitTrialAsync(server, study.Name, 1, t => t.State == "running", "its retry to start");
        Assert.Equal(0, retry.RetryOf);
        Assert.Equal(failed.Params, retry.Params);

        await File.WriteAllTextAsync(go, "");
        var ended = await WaitEndedAsync(server, study.Name);
        Assert.Equal(StudyState.Completed, ended.State);
        Assert.Equal((2, 1, 1), (ended.Started, ended.Complete, ended.Failed));
        Assert.Equal(double.Parse(failed.Params["x"], CultureInfo.InvariantCulture), ended.Best!.Value);
    }

    [Fact]
    public async Task Trial_SilentLongerThanItsHeartbeatTimeout_IsStoppedAndFailed()
    {
        await using var server = await StartAsync();
        var study = await server.Client.CreateStudyAsync(new CreateStudyRequest("""
            name: hung
            space: {x: [a]}
            trials: 1
            max_retries: 0
            heartbeat_timeout: 1s
            objective: {command: echo started; sleep 60; echo objective=1}
            """));
        var ended = await WaitEndedAsync(server, study.Name, 60);
        var trial = Assert.Single(await server.Client.GetTrialsAsync(study.Name));
        Assert.Equal("failed", trial.State);
        Assert.StartsWith("no heartbeat for 1s", trial.Reason, StringComparison.Ordinal);
        Assert.Equal("no trial completed", ended.Message);
        var job = await server.Client.WaitForStateAsync(trial.JobId!.Value, JobState.Cancelled);
        Assert.NotNull(job);
    }

    [Fact]
    public async Task Study_ControlPlaneRestartedMidway_ResumesWithNoLostOrDuplicatedTrial()
    {
        var directory = new TempDirectory();
        var first = await StartAsync(directory);
        var study = await first.Client.CreateStudyAsync(new CreateStudyRequest("""
            name: resumed
            space:
              x: {type: float, low: 0, high: 1}
            sampler: tpe
            trials: 10
            parallel: 2
            objective: {command: 'sleep 0.3; echo objective={{x}}'}
            """));
        await Poll.UntilAsync(async () => (await first.Client.GetStudyAsync(study.Name)).Complete >= 3, TimeSpan.FromSeconds(60), "three trials to complete");
        await first.ShutdownAsync(); // running trials' jobs go on without it

        await using var second = await StartAsync(directory);
        var ended = await WaitEndedAsync(second, study.Name);
        Assert.Equal(StudyState.Completed, ended.State);
        var trials = await second.Client.GetTrialsAsync(study.Name);
        Assert.Equal(Enumerable.Range(0, 10), trials.Select(t => t.Number));
        Assert.All(trials, t => Assert.Equal("complete", t.State));
        Assert.Equal(10, trials.Select(t => t.JobId).Distinct().Count());
        Assert.Equal(10, trials.Select(t => t.Params["x"]).Distinct().Count()); // the resumed sampler did not ask the first ones again
        var jobs = await second.Client.ListJobsAsync(pageSize: 1000);
        Assert.Equal(10, jobs.Items.Count(j => j.Name.StartsWith("resumed-trial-", StringComparison.Ordinal)));
        foreach (var t in trials)
        {
            Assert.Equal(double.Parse(t.Params["x"], CultureInfo.InvariantCulture), t.Value!.Value, 9);
        }
    }

    [Fact]
    public async Task Trial_WorseThanTheMedian_IsPruned_AndItsJobStopped_WhileReportsThroughTheApiCount()
    {
        using var directory = new TempDirectory();
        await using var server = await StartAsync(directory);
        // Constant learning curves at the value x: after the first trial, one worse than the median at step 1 is pruned.
        var study = await server.Client.CreateStudyAsync(new CreateStudyRequest("""
            name: pruned
            space:
              x: {type: float, low: 0, high: 10}
            sampler: random
            seed: 3
            pruner: {type: median, startup_trials: 1}
            trials: 8
            objective:
              command: for s in 1 2 3; do echo "intermediate $s={{x}}"; sleep 0.2; done; echo objective={{x}}
            """));
        var ended = await WaitEndedAsync(server, study.Name);
        var trials = await server.Client.GetTrialsAsync(study.Name, values: true);
        var pruned = trials.Where(t => t.State == "pruned").ToList();
        Assert.NotEmpty(pruned);
        Assert.Equal(8, ended.Complete + ended.Pruned);
        foreach (var t in pruned)
        {
            Assert.StartsWith("pruned by median at step", t.Reason, StringComparison.Ordinal);
            var earlier = trials.Where(c => c.State == "complete" && c.Number < t.Number).Select(c => c.Value!.Value).Order().ToList();
            Assert.True(t.Value > earlier[(earlier.Count - 1) / 2] - 1e-9, $"trial {t.Number} ({t.Value}) was not worse than the median of {string.Join(", ", earlier)}");
            Assert.Equal(JobState.Cancelled, (await server.Client.GetJobAsync(t.JobId!.Value)).State);
        }

        // A trial that reports its value through the API instead of printing it.
        var go = directory.Combine("go");
        var api = await server.Client.CreateStudyAsync(new CreateStudyRequest($$"""
            name: api
            space: {x: [a]}
            trials: 1
            objective:
              command: {{JobWaits.WaitFor(go)}}
            """));
        await WaitTrialAsync(server, api.Name, 0, t => t.JobId is not null, "the trial's job");
        var intermediate = await server.Client.ReportTrialAsync(api.Name, 0, 2.5, step: 1);
        Assert.False(intermediate.ShouldPrune);
        await server.Client.ReportTrialAsync(api.Name, 0, 1.25);
        await File.WriteAllTextAsync(go, "");
        var done = await WaitEndedAsync(server, api.Name);
        Assert.Equal(1.25, done.Best!.Value);
        Assert.Equal([new IntermediateValue(1, 2.5)], (await server.Client.GetTrialAsync(api.Name, 0)).Intermediate);
    }

    [Theory]
    [InlineData("objective=0.25", "objective 0.25")]
    [InlineData("  objective= -1.5e-3 ", "objective -0.0015")]
    [InlineData("intermediate 12=0.5", "intermediate 12 0.5")]
    [InlineData("intermediate  7 = 3", "intermediate 7 3")]
    [InlineData("artifact=out/model.onnx", "artifact out/model.onnx")]
    [InlineData("objective=nan", null)]
    [InlineData("objective=", null)]
    [InlineData("intermediate -1=3", null)]
    [InlineData("intermediate x=3", null)]
    [InlineData("the objective=3 is printed later", null)]
    [InlineData("epoch 3 done", null)]
    public void TrialOutput_ReadsOnlyTheProtocolLines(string line, string? meaning)
    {
        var said = Studies.TrialOutput.Parse(line) switch
        {
            Studies.TrialOutput.Objective o => $"objective {o.Value.ToString(CultureInfo.InvariantCulture)}",
            Studies.TrialOutput.Intermediate i => $"intermediate {i.Step} {i.Value.ToString(CultureInfo.InvariantCulture)}",
            Studies.TrialOutput.Artifact a => $"artifact {a.Path}",
            _ => null,
        };
        Assert.Equal(meaning, said);
    }

    [Fact]
    public async Task CreateStudy_BadSpecsAndDuplicates_AreRefusedWithTheField()
    {
        await using var server = await StartAsync();
        var bad = await Assert.ThrowsAsync<Client.AiMassApiException>(() => server.Client.CreateStudyAsync(new CreateStudyRequest("""
            name: bad
            space: {lr: {type: float, low: 0.1, high: 1}}
            objective: {command: 'echo objective={{lrr}}'}
            """)));
        Assert.Equal(400, (int)bad.Status);
        Assert.Contains("placeholder {{lrr}} names no parameter of the space; did you mean 'lr'?", bad.Message, StringComparison.Ordinal);

        var tooBig = await Assert.ThrowsAsync<Client.AiMassApiException>(() => server.Client.CreateStudyAsync(new CreateStudyRequest("""
            name: big
            space: {x: [a]}
            objective: {command: 'echo objective=1'}
            job: {resources: {cpu: 64}}
            """)));
        Assert.Equal(400, (int)tooBig.Status);

        var spec = "name: once\nspace: {x: [a]}\ntrials: 1\nobjective: {command: 'echo objective=1'}\n";
        await server.Client.CreateStudyAsync(new CreateStudyRequest(spec));
        var again = await Assert.ThrowsAsync<Client.AiMassApiException>(() => server.Client.CreateStudyAsync(new CreateStudyRequest(spec)));
        Assert.Equal(409, (int)again.Status);
        var missing = await Assert.ThrowsAsync<Client.AiMassApiException>(() => server.Client.GetStudyAsync("nope"));
        Assert.Equal(404, (int)missing.Status);
    }
}
