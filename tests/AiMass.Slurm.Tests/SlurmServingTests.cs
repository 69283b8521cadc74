using System.Text.Json;
using AiMass.Deployments;
using AiMass.Jobs;
using AiMass.Registry;
using AiMass.TestSupport;

namespace AiMass.Slurm.Tests;

/// <summary>Serving replicas are ordinary jobs: on the Slurm backend they run as Slurm jobs, unchanged.</summary>
public sealed class SlurmServingTests
{
    [Fact]
    public async Task DeploymentReplicas_RunAsSlurmJobs_AndServe()
    {
        await using var server = await SlurmHarness.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Deployments:ReplicaCommand:0"] = "dotnet",
            ["Deployments:ReplicaCommand:1"] = Path.Combine(AppContext.BaseDirectory, "aimass.dll"),
            ["Deployments:Tick"] = "00:00:00.100",
        });
        using (var model = new MemoryStream(OnnxModels.Linear(seed: 1)))
        {
            await server.Client.RegisterVersionAsync("lin", model, new RegisterVersionRequest { Alias = "production" });
        }
        await server.Client.CreateDeploymentAsync(new DeploymentSpec
        {
            Name = "grid", Model = "lin@production", MinReplicas = 1, MaxReplicas = 1, Cpu = "500m", Memory = "256Mi", Queue = "serving",
        });
        DeploymentInfo deployment = null!;
        await Poll.UntilAsync(async () => (deployment = await server.Client.GetDeploymentAsync("grid")).State == "ready", TimeSpan.FromSeconds(90), "the deployment to be ready");
        var replica = Assert.Single(deployment.Tracks.Single().Replicas);
        var job = await server.Client.GetJobAsync(replica.JobId);
        var slurmId = Assert.Single(job.Tasks).ExternalId!;
        Assert.Equal(["RUNNING", "serving"], SlurmHarness.Job(slurmId)[..2]);

        var (status, body) = await server.Client.InferAsync("grid", """{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""");
        Assert.Equal(200, status);
        using var answer = JsonDocument.Parse(body);
        Assert.Equal(2, answer.RootElement.GetProperty("outputs")[0].GetProperty("data").GetArrayLength());

        await server.Client.DeleteDeploymentAsync("grid");
        await server.Client.WaitForAsync(replica.JobId, j => j.State is JobState.Cancelled or JobState.Succeeded or JobState.Failed, "the replica to stop", seconds: 60);
        await Poll.UntilAsync(() => Task.FromResult(SlurmHarness.Job(slurmId)[0] is "COMPLETED" or "CANCELLED" or "FAILED"), TimeSpan.FromSeconds(30), "Slurm to end the replica's job");
    }
}
