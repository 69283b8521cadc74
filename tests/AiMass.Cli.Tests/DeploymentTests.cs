using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using AiMass.Client;
using AiMass.Deployments;
using AiMass.Registry;
using AiMass.TestSupport;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AiMass.Cli.Tests;

/// <summary>
/// Deployments end to end: a real control plane whose replicas are real <c>aimass serve</c> processes started as jobs by
/// the local executor, requests through the router.
/// </summary>
public sealed class DeploymentTests : IAsyncLifetime
{
    private const string Body = """{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""";
    private static readonly float[] Input = [1, 2, 3, 4];

    private TestServer _server = null!;
    private TempDirectory _work = null!;
    private HttpClient _http = null!;

    private static Dictionary<string, string?> Settings(int port = 0) => new()
    {
        ["Server:Port"] = port.ToString(CultureInfo.InvariantCulture),
        ["Deployments:ReplicaCommand:0"] = "dotnet",
        ["Deployments:ReplicaCommand:1"] = CliRunner.Dll,
        ["Deployments:Tick"] = "00:00:00.100",
        ["Deployments:HealthTimeout"] = "00:00:01",
        ["Deployments:RequestTimeout"] = "00:00:01.500",
    };

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync(Settings());
        _work = new TempDirectory();
        _http = new HttpClient { BaseAddress = _server.Address };
        for (var seed = 1; seed <= 3; seed++)
        {
            using var model = new MemoryStream(OnnxModels.Linear(seed: seed));
            await _server.Client.RegisterVersionAsync("lin", model, new RegisterVersionRequest { Alias = seed == 1 ? "production" : null });
        }
    }

    public async Task DisposeAsync()
    {
        // Replicas are jobs and outlive a control plane that stops: delete every deployment and wait for its replicas to stop.
        var jobs = new List<long>();
        foreach (var d in (await _server.Client.ListDeploymentsAsync()).Items)
        {
            jobs.AddRange(d.Tracks.SelectMany(t => t.Replicas).Select(r => r.JobId));
            await _server.Client.DeleteDeploymentAsync(d.Name);
        }
        try
        {
            await Poll.UntilAsync(async () => (await _server.Client.ListDeploymentsAsync()).Items.Count == 0, TimeSpan.FromSeconds(30), "deployments to be deleted");
            await Poll.UntilAsync(async () =>
            {
                foreach (var id in jobs)
                {
                    if ((await _server.Client.GetJobAsync(id)).State is Jobs.JobState.Running or Jobs.JobState.Queued or Jobs.JobState.Stopping)
                    {
                        return false;
                    }
                }
                return true;
            }, TimeSpan.FromSeconds(30), "replica jobs to end");
        }
        finally
        {
            _http.Dispose();
            await _server.DisposeAsync();
            _work.Dispose();
        }
    }

    private Task<CliResult> Run(params string[] args) => CliRunner.RunAsync(_server.Address, args);

    private static float[] Expected(int seed)
    {
        using var session = new InferenceSession(OnnxModels.Linear(seed: seed));
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("X", new DenseTensor<float>(Input, [1, 4]))]);
        return results[0].AsTensor<float>().ToArray();
    }

    private static float[] Outputs(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()).ToArray();
    }

    private async Task<(HttpStatusCode Status, string Route, string Body)> InferAsync(string deployment, string path = "infer")
    {
        using var content = new StringContent(Body, Encoding.UTF8, "application/json");
        using var response = await _http.PostAsync(new Uri($"v2/models/{deployment}/{path}", UriKind.Relative), content);
        var route = response.Headers.TryGetValues("AiMass-Route", out var values) ? values.First() : "";
        return (response.StatusCode, route, await response.Content.ReadAsStringAsync());
    }

    private async Task<DeploymentInfo> WaitAsync(string name, Func<DeploymentInfo, bool> condition, string what, int seconds = 60)
    {
        DeploymentInfo d = null!;
        await Poll.UntilAsync(async () => condition(d = await _server.Client.GetDeploymentAsync(name)), TimeSpan.FromSeconds(seconds), $"{name}: {what}");
        return d;
    }

    private static string[] Small => ["--cpu", "100m", "--memory", "128Mi"];

    [Fact]
    public async Task Deploy_ServesThroughTheRouter_OnBothProtocols_AndTheCliShowsIt()
    {
        var deploy = await Run(["--json", "deploy", "lin@production", "--name", "grid", "--replicas", "1", "--wait", .. Small]);
        Assert.True(deploy.ExitCode == 0, deploy.ToString());
        var info = JsonDocument.Parse(deploy.Stdout).RootElement;
        Assert.Equal("ready", info.GetProperty("state").GetString());
        Assert.Equal(1, info.GetProperty("ready_replicas").GetInt32());

        var (status, route, body) = await InferAsync("grid");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("primary; version=1", route, StringComparison.Ordinal);
        Assert.Equal(Expected(1), Outputs(body));
        // The replica's timing reaches the client, with the control plane's own time after it.
        using (var content = new StringContent(Body, Encoding.UTF8, "application/json"))
        using (var timed = await _http.PostAsync(new Uri("v2/models/grid/infer", UriKind.Relative), content))
        {
            Assert.Matches(@"^queue;dur=\d+\.\d{3}, compute;dur=\d+\.\d{3}, total;dur=\d+\.\d{3}, app;dur=[\d.]+$", string.Join(", ", timed.Headers.GetValues("Server-Timing")));
        }

        var input = _work.Combine("in.json");
        await File.WriteAllTextAsync(input, Body);
        var predict = await Run("predict", "grid", "--input", input);
        Assert.True(predict.ExitCode == 0, predict.ToString());
        Assert.Equal(Expected(1), Outputs(predict.Stdout));
        await File.WriteAllTextAsync(input, """{"instances": [[1, 2, 3, 4]]}""");
        var tf = await Run("predict", "grid", "--input", input, "--protocol", "v1");
        Assert.True(tf.ExitCode == 0, tf.ToString());
        var predictions = JsonDocument.Parse(tf.Stdout).RootElement.GetProperty("predictions")[0].EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal(Expected(1), predictions);

        using (var metadata = await _http.GetAsync(new Uri("v2/models/grid", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
            Assert.Contains("\"name\":\"grid\"", await metadata.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var (missingStatus, _, missing) = await InferAsync("nothing");
        Assert.Equal(HttpStatusCode.NotFound, missingStatus);
        Assert.Contains("deployment 'nothing' does not exist", missing, StringComparison.Ordinal);
        var (wrongVersion, _, wrong) = await InferAsync("grid", "versions/7/infer");
        Assert.Equal(HttpStatusCode.NotFound, wrongVersion);
        Assert.Contains("does not serve version 7", wrong, StringComparison.Ordinal);
        using (var bad = new StringContent("""{"inputs":[{"name":"nope","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""", Encoding.UTF8, "application/json"))
        using (var answer = await _http.PostAsync(new Uri("v2/models/grid/infer", UriKind.Relative), bad))
        {
            Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
            Assert.Contains("nope", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var list = await Run("deployments", "list");
        Assert.Contains("grid", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("lin@production (v1)", list.Stdout, StringComparison.Ordinal);
        var show = await Run("deployments", "show", "grid");
        Assert.Contains("replica.ready", show.Stdout, StringComparison.Ordinal);
        Assert.Contains("primary", show.Stdout, StringComparison.Ordinal);
        var metrics = await _http.GetStringAsync(new Uri("metrics", UriKind.Relative));
        Assert.Contains("aimass_deployment_replicas{deployment=\"grid\",role=\"primary\",state=\"ready\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("aimass_deployment_routing_weight{deployment=\"grid\",role=\"primary\"} 100", metrics, StringComparison.Ordinal);
        Assert.Contains("aimass_deployment_requests{deployment=\"grid\",outcome=\"2xx\",role=\"primary\"}", metrics, StringComparison.Ordinal);

        // Bad requests name what is wrong.
        var duplicate = await Run(["deploy", "lin@1", "--name", "grid", .. Small]);
        Assert.Equal(1, duplicate.ExitCode);
        Assert.Contains("already exists", duplicate.Stderr, StringComparison.Ordinal);
        var unknown = await Run("deploy", "nothing@1");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("nothing", unknown.Stderr, StringComparison.Ordinal);
        var range = await Run("deploy", "lin@1", "--replicas", "3..1");
        Assert.Equal(1, range.ExitCode);
        Assert.Contains("--replicas '3..1'", range.Stderr, StringComparison.Ordinal);
        var weight = await Run("deploy", "lin@1", "--canary", "lin@2", "--weight", "120");
        Assert.Equal(1, weight.ExitCode);
        Assert.Contains("canary_weight 120", weight.Stderr, StringComparison.Ordinal);
        var memory = await Run("deploy", "lin@1", "--memory", "lots");
        Assert.Equal(1, memory.ExitCode);
        Assert.Contains("memory", memory.Stderr, StringComparison.Ordinal);
        var huge = await Run("deploy", "lin@1", "--name", "huge", "--cpu", "512");
        Assert.Equal(1, huge.ExitCode);
        Assert.Contains("cpu", huge.Stderr, StringComparison.Ordinal);
        var nowhere = await Run("deploy", "lin@1", "--name", "nowhere", "--node-selector", "gpu-model=h100", "--cpu", "100m", "--memory", "128Mi");
        Assert.Equal(1, nowhere.ExitCode);
        Assert.Contains("gpu-model", nowhere.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Canary_GetsItsWeightWithin3Percent_AndTheShadowNeverChangesAnAnswer()
    {
        await _server.Client.CreateDeploymentAsync(new DeploymentSpec
        {
            Name = "split", Model = "lin@1", Canary = "lin@2", CanaryWeight = 10, Shadow = "lin@3", Cpu = "100m", Memory = "128Mi",
        });
        await WaitAsync("split", d => d.State == "ready" && d.Tracks.All(t => t.Replicas.Any(r => r.State == "ready")), "primary, canary and shadow ready");
        var expected = new Dictionary<string, float[]> { ["primary"] = Expected(1), ["canary"] = Expected(2) };
        var counts = new Dictionary<string, int>(StringComparer.Ordinal) { ["primary"] = 0, ["canary"] = 0 };
        var failures = new List<string>();
        await Parallel.ForAsync(0, 2000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (_, _) =>
        {
            var (status, route, body) = await InferAsync("split");
            var role = route.Split(';')[0];
            lock (counts)
            {
                if (status != HttpStatusCode.OK || !expected.TryGetValue(role, out var want) || !want.SequenceEqual(Outputs(body)))
                {
                    failures.Add($"{status} {route} {body}");
                    return;
                }
                counts[role]++;
            }
        });
        Assert.Empty(failures);
        var share = counts["canary"] / 2000.0;
        Assert.InRange(share, 0.07, 0.13);

        // The shadow (a different model) saw copies and disagreed, yet every answer above was the primary's or the canary's.
        string metrics = "";
        await Poll.UntilAsync(async () => (metrics = await _http.GetStringAsync(new Uri("metrics", UriKind.Relative)))
            .Contains("aimass_deployment_shadow_requests{deployment=\"split\",result=\"disagree\"}", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "shadow disagreements counted");
        Assert.DoesNotContain("result=\"agree\"", metrics.Split('\n').Where(l => l.Contains("deployment=\"split\"", StringComparison.Ordinal)).Aggregate("", (a, b) => a + b), StringComparison.Ordinal);
        var shown = await _server.Client.GetDeploymentAsync("split");
        Assert.Equal(90, shown.Tracks.Single(t => t.Role == "primary").Weight);
        Assert.Equal(10, shown.Tracks.Single(t => t.Role == "canary").Weight);
        Assert.True(shown.Tracks.Single(t => t.Role == "shadow").Replicas.Single().Requests > 0);

        // Promotion: the canary becomes the primary, rolled over without a failed request.
        var promote = await Run("deployments", "rollout", "split", "--promote", "--no-shadow", "--wait");
        Assert.True(promote.ExitCode == 0, promote.ToString());
        var (status, route, body) = await InferAsync("split");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("primary; version=2", route, StringComparison.Ordinal);
        Assert.Equal(Expected(2), Outputs(body));
    }

    [Fact]
    public async Task ReplicaKilledUnderLoad_AndARollingUpdate_FailNoRequest()
    {
        var deploy = await Run(["deploy", "lin@1", "--name", "steady", "--replicas", "2", "--wait", .. Small]);
        Assert.True(deploy.ExitCode == 0, deploy.ToString());
        using var stop = new CancellationTokenSource();
        var failures = new List<string>();
        var versions = new HashSet<string>();
        var served = 0;
        var load = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (status, route, body) = await InferAsync("steady");
                lock (failures)
                {
                    served++;
                    if (status != HttpStatusCode.OK)
                    {
                        failures.Add($"{status} {body}");
                    }
                    else
                    {
                        versions.Add(route.Split(';')[1].Trim());
                    }
                }
            }
        })).ToList();

        // SIGKILL one replica's server process while requests flow: the router retries elsewhere, the executor restarts it.
        var victim = (await _server.Client.GetDeploymentAsync("steady")).Tracks[0].Replicas[0].JobId;
        var wrapper = (await _server.Client.GetJobAsync(victim)).Tasks.Single().Pid!.Value;
        var server = int.Parse(File.ReadAllText($"/proc/{wrapper}/task/{wrapper}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Single(), CultureInfo.InvariantCulture);
        System.Diagnostics.Process.GetProcessById(server).Kill();
        await Poll.UntilAsync(async () => (await _server.Client.GetJobAsync(victim)).Restarts >= 1, TimeSpan.FromSeconds(30), "the killed replica to be restarted");
        await WaitAsync("steady", d => d.State == "ready" && d.ReadyReplicas == 2, "both replicas ready again");

        // Rolling update to version 2 under the same load.
        var rollout = await Run("deployments", "rollout", "steady", "lin@2", "--wait");
        Assert.True(rollout.ExitCode == 0, rollout.ToString());
        Assert.Contains("progressing", rollout.Stderr, StringComparison.Ordinal); // it waited for the rollover, not for the state before it
        var after = served;
        await Poll.UntilAsync(() => Task.FromResult(Volatile.Read(ref served) > after + 50), TimeSpan.FromSeconds(30), "requests after the rollout");
        await stop.CancelAsync();
        await Task.WhenAll(load);

        lock (failures)
        {
            Assert.Empty(failures);
            Assert.Contains("version=1", versions);
            Assert.Contains("version=2", versions);
        }
        var (_, route, body) = await InferAsync("steady");
        Assert.StartsWith("primary; version=2", route, StringComparison.Ordinal);
        Assert.Equal(Expected(2), Outputs(body));
        var events = (await _server.Client.GetDeploymentEventsAsync("steady")).Select(e => e.Kind).ToList();
        Assert.Contains("replica.draining", events);
        Assert.Contains("replica.stopped", events);
        var final = await _server.Client.GetDeploymentAsync("steady");
        Assert.All(final.Tracks[0].Replicas, r => Assert.Equal(2, r.Version));
    }

    [Fact]
    public async Task AHungReplica_IsEjectedByHealthChecks_ItsRequestsRetriedElsewhere_AndReadmittedWhenItAnswers()
    {
        var deploy = await Run(["deploy", "lin@1", "--name", "frozen", "--replicas", "2", "--wait", .. Small]);
        Assert.True(deploy.ExitCode == 0, deploy.ToString());
        var victim = (await _server.Client.GetDeploymentAsync("frozen")).Tracks[0].Replicas[0].JobId;
        var wrapper = (await _server.Client.GetJobAsync(victim)).Tasks.Single().Pid!.Value;
        var process = int.Parse(File.ReadAllText($"/proc/{wrapper}/task/{wrapper}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Single(), CultureInfo.InvariantCulture);
        Assert.Equal(0, Kill(process, 19)); // SIGSTOP: the process lives, accepts connections, answers nothing
        try
        {
            var ejected = await WaitAsync("frozen", d => d.Tracks[0].Replicas.Any(r => r.JobId == victim && r.State == "unhealthy"), "the hung replica to be ejected", 30);
            Assert.Equal("degraded", ejected.State);
            for (var i = 0; i < 20; i++)
            {
                var (status, route, body) = await InferAsync("frozen");
                Assert.True(status == HttpStatusCode.OK, body);
                Assert.DoesNotContain($"job={victim}", route, StringComparison.Ordinal);
            }
        }
        finally
        {
            Assert.Equal(0, Kill(process, 18)); // SIGCONT
        }
        await WaitAsync("frozen", d => d.State == "ready" && d.Tracks[0].Replicas.All(r => r.State == "ready"), "the replica to answer again");
        var events = await _server.Client.GetDeploymentEventsAsync("frozen");
        Assert.Contains(events, e => e.Kind == "replica.ejected" && e.JobId == victim);
        Assert.Equal(0, (await _server.Client.GetJobAsync(victim)).Restarts); // ejected, not restarted: it recovered by itself
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
#pragma warning disable CA5392, SYSLIB1054 // a test helper: signals to a child process
    private static extern int Kill(int pid, int signal);
#pragma warning restore CA5392, SYSLIB1054

    [Fact]
    public async Task AControlPlaneRestart_FindsItsReplicasAgain_WithoutStartingNewOnes()
    {
        var port = FreePort();
        var first = await TestServer.StartAsync(Settings(port));
        var directory = first.Directory;
        try
        {
            using (var model = new MemoryStream(OnnxModels.Linear(seed: 1)))
            {
                await first.Client.RegisterVersionAsync("lin", model);
            }
            await first.Client.CreateDeploymentAsync(new DeploymentSpec { Name = "durable", Model = "lin@1", MinReplicas = 2, MaxReplicas = 2, Cpu = "100m", Memory = "128Mi" });
            DeploymentInfo before = null!;
            await Poll.UntilAsync(async () => (before = await first.Client.GetDeploymentAsync("durable")).State == "ready", TimeSpan.FromSeconds(60), "durable ready");
            await first.ShutdownAsync(); // replicas are jobs: they keep running

            await using var second = await TestServer.StartAsync(Settings(port), directory: directory);
            DeploymentInfo after = null!;
            await Poll.UntilAsync(async () => (after = await second.Client.GetDeploymentAsync("durable")).State == "ready", TimeSpan.FromSeconds(30), "durable ready after the restart");
            Assert.Equal(before.Tracks[0].Replicas.Select(r => r.JobId).Order(), after.Tracks[0].Replicas.Select(r => r.JobId).Order());
            using var http = new HttpClient { BaseAddress = second.Address };
            using var content = new StringContent(Body, Encoding.UTF8, "application/json");
            using var answer = await http.PostAsync(new Uri("v2/models/durable/infer", UriKind.Relative), content);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Equal(Expected(1), Outputs(await answer.Content.ReadAsStringAsync()));
            Assert.Equal(2, (await second.Client.ListJobsAsync()).Items.Count(j => j.Name == "durable-primary"));
            await second.Client.DeleteDeploymentAsync("durable");
            await Poll.UntilAsync(async () => (await second.Client.ListDeploymentsAsync()).Items.Count == 0, TimeSpan.FromSeconds(30), "durable deleted");
            foreach (var job in after.Tracks[0].Replicas.Select(r => r.JobId))
            {
                await Poll.UntilAsync(async () => (await second.Client.GetJobAsync(job)).State == Jobs.JobState.Cancelled, TimeSpan.FromSeconds(30), $"replica job {job} cancelled");
            }
        }
        finally
        {
            await first.ShutdownAsync();
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task ScaleToZero_TheFirstRequestWaitsForTheColdStart_AndLoadAddsReplicas()
    {
        await _server.Client.CreateDeploymentAsync(new DeploymentSpec
        {
            Name = "elastic", Model = "lin@1", MinReplicas = 0, MaxReplicas = 2, Cpu = "100m", Memory = "128Mi",
            ScaleToZeroAfterSeconds = 2, DownscaleDelaySeconds = 1, TargetInFlight = 1,
            // Each request waits 40 ms in the replica's batcher: four clients keep about four requests in flight.
            MaxBatchSize = 64, MaxQueueDelayUs = 40_000,
        });
        var zero = await WaitAsync("elastic", d => d.State == "scaled_to_zero", "scaled to zero at creation");
        Assert.Empty(zero.Tracks[0].Replicas);

        var (status, _, body) = await InferAsync("elastic");
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Equal(Expected(1), Outputs(body));
        var events = await _server.Client.GetDeploymentEventsAsync("elastic");
        Assert.Contains(events, e => e.Kind == "deployment.scaled" && e.Message.Contains("scale from zero", StringComparison.Ordinal));

        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (s, _, b) = await InferAsync("elastic");
                Assert.True(s == HttpStatusCode.OK, b);
            }
        })).ToList();
        await WaitAsync("elastic", d => d.ReadyReplicas == 2, "the autoscaler to add a replica under load");
        await stop.CancelAsync();
        await Task.WhenAll(load);
        await WaitAsync("elastic", d => d.State == "scaled_to_zero", "scaled to zero when idle");
        // Events are stored at the end of the reconciliation step that the state already shows.
        await Poll.UntilAsync(async () => (events = await _server.Client.GetDeploymentEventsAsync("elastic"))
            .Any(e => e.Kind == "deployment.scaled" && e.Message.Contains("scale to zero", StringComparison.Ordinal)), TimeSpan.FromSeconds(10), "the scale-to-zero event");
        Assert.Contains(events, e => e.Kind == "deployment.scaled" && e.Message.StartsWith("1 -> 2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Delete_StopsRoutingAndEveryReplica()
    {
        var deploy = await Run(["deploy", "lin@1", "--name", "brief", "--wait", .. Small]);
        Assert.True(deploy.ExitCode == 0, deploy.ToString());
        var job = (await _server.Client.GetDeploymentAsync("brief")).Tracks[0].Replicas.Single().JobId;
        var delete = await Run("deployments", "delete", "brief", "--wait");
        Assert.True(delete.ExitCode == 0, delete.ToString());
        Assert.Equal(HttpStatusCode.NotFound, (await InferAsync("brief")).Status);
        await Poll.UntilAsync(async () => (await _server.Client.GetJobAsync(job)).State == Jobs.JobState.Cancelled, TimeSpan.FromSeconds(30), "the replica job to be cancelled");
        var error = await Assert.ThrowsAsync<AiMassApiException>(() => _server.Client.GetDeploymentAsync("brief"));
        Assert.Equal(HttpStatusCode.NotFound, error.Status);
        var events = await _server.Client.GetDeploymentEventsAsync("brief");
        Assert.Equal("deployment.deleted", events[^1].Kind);
        Assert.Equal(1, (await Run("deployments", "show", "brief")).ExitCode);
    }
}
