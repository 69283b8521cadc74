using System.Globalization;
using AiMass.Client;
using AiMass.Studies;
using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

public sealed partial class UpAndCrashTests
{
    [Fact]
    public async Task SigkillOfTheControlPlane_MidStudy_ResumesWithNoLostOrDuplicatedTrial()
    {
        using var data = new TempDirectory();
        var spec = Path.Combine(data.Path, "study.yaml");
        await File.WriteAllTextAsync(spec, """
            name: crashed
            space:
              x: {type: float, low: 0, high: 1}
              kind: [a, b]
            sampler: tpe
            trials: 12
            parallel: 2
            objective: {command: 'sleep 0.4; echo objective={{x}}'}
            job: {resources: {cpu: 250m, memory: 64Mi}}
            """);
        var env = new Dictionary<string, string> { ["AIMASS__Studies__Tick"] = "00:00:00.200", ["AIMASS__Jobs__Tick"] = "00:00:00.100" };
        await using (var server = await UpProcess.StartAsync(data.Path, env))
        {
            var tune = await CliRunner.RunAsync(server.Address, "tune", spec, "--detach");
            Assert.True(tune.ExitCode == 0, tune.ToString());
            using var client = new AiMassClient(server.Address);
            await Poll.UntilAsync(async () => (await client.GetStudyAsync("crashed")).Complete >= 4, TimeSpan.FromSeconds(60), "four trials to complete");
            await server.KillAsync(); // SIGKILL, with trials running
        }

        await using var restarted = await UpProcess.StartAsync(data.Path, env);
        using var again = new AiMassClient(restarted.Address);
        StudyInfo study = null!;
        await Poll.UntilAsync(async () => (study = await again.GetStudyAsync("crashed")).State == StudyState.Completed, TimeSpan.FromSeconds(90), "the study to complete after the crash");
        var trials = await again.GetTrialsAsync("crashed");
        Assert.Equal(Enumerable.Range(0, 12), trials.Select(t => t.Number)); // none lost, none twice
        Assert.All(trials, t => Assert.Equal("complete", t.State));
        Assert.Equal(12, trials.Select(t => t.JobId).Distinct().Count());
        Assert.Equal(12, trials.Select(t => t.Params["x"]).Distinct().Count());
        var jobs = await again.ListJobsAsync(pageSize: 1000);
        Assert.Equal(12, jobs.Items.Count(j => j.Name.StartsWith("crashed-trial-", StringComparison.Ordinal)));
        Assert.All(trials, t => Assert.Equal(double.Parse(t.Params["x"], CultureInfo.InvariantCulture), t.Value!.Value, 9));
        Assert.Equal(12, study.Complete);
    }
}
