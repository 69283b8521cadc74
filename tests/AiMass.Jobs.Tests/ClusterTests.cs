using AiMass.TestSupport;

namespace AiMass.Jobs.Tests;

public sealed class ClusterTests
{
    [Fact]
    public async Task DynamicPool_GrowsForAJobThatFitsNoNode_AndShrinksWhenIdle()
    {
        await using var server = await JobsHarness.StartAsync("""
            nodes:
              - name: small
                resources: {cpu: 1, memory: 1Gi}
            pools:
              - name: burst
                kind: dynamic
                max_nodes: 1
                idle_timeout: 1s
                provisioning_delay: 500ms
                template:
                  resources: {cpu: 4, memory: 4Gi}
            """);
        var job = await server.Client.SubmitJobAsync("name: wide\nresources: {cpu: 4}\ncommand: echo on $AIMASS_NODE\n");
        var done = await server.Client.WaitForStateAsync(job.Id, JobState.Succeeded);
        Assert.Equal("burst-1", Assert.Single(done.Tasks).Node);
        Assert.Contains("on burst-1", await server.Client.LogsAsync(job.Id), StringComparison.Ordinal);

        await Poll.UntilAsync(async () => (await server.Client.ListNodesAsync()).All(n => n.Name != "burst-1"), TimeSpan.FromSeconds(30), "the idle node to be released");
        var events = await server.Client.GetEventsAsync();
        var up = Assert.Single(events, e => e.Kind == "scale_up");
        Assert.Contains($"job {job.Id} needs 1 task(s) of cpu=4", up.Message, StringComparison.Ordinal);
        Assert.Contains(events, e => e.Kind == "scale_down" && e.Node == "burst-1");
        Assert.True(events.IndexOf(up) < events.FindIndex(e => e.Kind == "started"));
    }

    [Fact]
    public async Task Drain_KeepsWorkOffTheNode_AndSurvivesARestart()
    {
        var directory = new TempDirectory();
        var first = await JobsHarness.StartAsync(directory: directory);
        var drained = await first.Client.SetNodeStateAsync("n-1", "draining", "maintenance");
        Assert.Equal("draining", drained.State);
        var job = await first.Client.SubmitJobAsync("name: elsewhere\ncommand: echo ok\n");
        Assert.Equal("n-2", Assert.Single((await first.Client.WaitForStateAsync(job.Id, JobState.Succeeded)).Tasks).Node);
        await first.ShutdownAsync();

        await using var second = await JobsHarness.StartAsync(directory: directory);
        var node = (await second.Client.ListNodesAsync()).Single(n => n.Name == "n-1");
        Assert.Equal("draining", node.State);
        Assert.Equal("maintenance", node.Reason);
        await second.Client.SetNodeStateAsync("n-1", "up");
        Assert.Equal("up", (await second.Client.ListNodesAsync()).Single(n => n.Name == "n-1").State);
    }

    [Fact]
    public async Task Restart_KeepsTasksOnDynamicNodes()
    {
        var directory = new TempDirectory();
        var go = directory.Combine("go");
        const string Cluster = """
            pools:
              - name: burst
                kind: dynamic
                max_nodes: 2
                template:
                  resources: {cpu: 2, memory: 2Gi}
            """;
        var first = await JobsHarness.StartAsync(Cluster, directory);
        var job = await first.Client.SubmitJobAsync($"name: on-burst\ncommand: {JobWaits.WaitFor(go)}\n");
        var running = await first.Client.WaitForRunningAsync(job.Id);
        var pid = Assert.Single(running.Tasks).Pid;
        await first.ShutdownAsync();

        await using var second = await JobsHarness.StartAsync(Cluster, directory);
        var after = await second.Client.GetJobAsync(job.Id);
        Assert.Equal(JobState.Running, after.State);
        Assert.Equal(pid, Assert.Single(after.Tasks).Pid);
        Assert.Contains(await second.Client.ListNodesAsync(), n => n.Name == "burst-1" && n.Tasks == 1);
        await File.WriteAllTextAsync(go, "");
        Assert.Equal(1, (await second.Client.WaitForStateAsync(job.Id, JobState.Succeeded)).Attempt);
    }
}
