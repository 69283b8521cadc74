using System.Globalization;
using AiMass.Jobs;
using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

/// <summary>
/// The simulator against the live control plane: a small workload runs for real (virtual nodes, real processes with
/// second-long durations), <c>aimass sim snapshot</c> saves the cluster and the jobs, and the simulator, replaying
/// them, starts the jobs in the same order the live scheduler did.
/// </summary>
public sealed class SimLiveTests
{
    [Fact]
    public async Task TheSimulator_StartsJobsInTheOrderTheLiveSchedulerDid_OnASnapshotOfIt()
    {
        using var directory = new TempDirectory();
        var cluster = directory.Combine("cluster.yaml");
        // Two nodes of 2 CPUs; FIFO with EASY backfilling.
        await File.WriteAllTextAsync(cluster, """
            policy: {ordering: fifo, backfill: easy, preemption: false}
            nodes:
              - name: n
                count: 2
                resources: {cpu: 2, memory: 2Gi}
            """);
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Jobs:ClusterFile"] = cluster,
            ["Jobs:Tick"] = "00:00:00.100",
        }, directory: directory);
        // j1 and j2 take a node each; j3 (a gang of two whole nodes) waits for both; j4 (one CPU, a walltime that ends
        // before j3's reservation, which rests on j1's walltime) backfills when j2 ends, before j3 starts.
        string[] specs =
        [
            "name: j1\ncommand: sleep 4\nresources: {cpu: 2, memory: 256Mi}\nwalltime: 12s\n",
            "name: j2\ncommand: sleep 2\nresources: {cpu: 2, memory: 256Mi}\nwalltime: 4s\n",
            "name: j3\ncommand: sleep 1\nreplicas: 2\nresources: {cpu: 2, memory: 256Mi}\nwalltime: 10s\n",
            "name: j4\ncommand: sleep 1\nresources: {cpu: 1, memory: 256Mi}\nwalltime: 5s\n",
        ];
        var ids = new List<long>();
        foreach (var spec in specs)
        {
            ids.Add((await server.Client.SubmitJobAsync(spec)).Id);
        }
        var done = new List<JobInfo>();
        await Poll.UntilAsync(async () =>
        {
            done = [.. await Task.WhenAll(ids.Select(id => server.Client.GetJobAsync(id)))];
            return done.All(j => j.State is JobState.Succeeded or JobState.Failed);
        }, TimeSpan.FromSeconds(60), "the four jobs to end");
        Assert.All(done, j => Assert.Equal(JobState.Succeeded, j.State));
        var live = done.OrderBy(j => j.StartedAt).Select(j => j.Name).ToList();
        Assert.Equal(["j1", "j2", "j4", "j3"], live);

        var snapshot = directory.Combine("snap", "snap.yaml");
        var snap = await CliRunner.RunAsync(server.Address, "sim", "snapshot", "--output", snapshot, "--since", "1h");
        Assert.True(snap.ExitCode == 0, snap.ToString());
        Assert.Contains("(4 jobs)", snap.Stdout, StringComparison.Ordinal);
        var clusterFile = await File.ReadAllTextAsync(directory.Combine("snap", "snap.cluster.yaml"));
        Assert.Contains("  - name: n-2\n    pool: main\n    resources: {cpu: 2, memory: 2Gi}\n", clusterFile, StringComparison.Ordinal);
        Assert.Contains("  ordering: fifo\n  backfill: easy\n", clusterFile, StringComparison.Ordinal);

        var output = directory.Combine("sim");
        var run = await CliRunner.RunAsync(server.Address, "sim", "run", "--scenario", snapshot, "--output", output);
        Assert.True(run.ExitCode == 0, run.ToString());
        var rows = (await File.ReadAllLinesAsync(Path.Combine(output, "jobs.csv"))).Skip(1).Select(l => l.Split(',')).ToList();
        var simulated = rows.OrderBy(r => double.Parse(r[5], CultureInfo.InvariantCulture)).Select(r => r[1]).ToList();
        Assert.Equal(live, simulated);

        // And a what-if: with a third node j3 still waits for two free nodes, but no longer for j1.
        var compare = await CliRunner.RunAsync(server.Address, "sim", "compare", "--scenario", snapshot, "--policies", "easy", "--what-if", "pool main +1 nodes");
        Assert.True(compare.ExitCode == 0, compare.ToString());
        Assert.Contains("│ easy + what-if │", compare.Stdout, StringComparison.Ordinal);
    }
}
