using AiMass.Scheduling;
using AiMass.Simulation;

namespace AiMass.Specs.Tests;

/// <summary>Simulation scenarios: every section read, files found next to the scenario, every mistake named with its line.</summary>
public sealed class ScenarioReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aimass-scenario-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AFullScenario_IsRead()
    {
        File.WriteAllText(Path.Combine(_dir, "trace.csv"), "job_id,submit_time,duration,num_gpus,user\n1,0,3600,8,alice\n2,60,600,1,bob\n");
        File.WriteAllText(Path.Combine(_dir, "small.swf"), "; MaxProcs: 8\n1 0 -1 100 4 -1 -1 4 200 -1 1 3 1 -1 1 -1 -1 -1\n2 5 -1 50 -1 -1 -1 -1 -1 -1 1 3 1 -1 1 -1 -1 -1\n");
        var scenario = ScenarioReader.Parse("""
            name: q3
            seed: 7
            horizon: 30d
            cluster:
              policy: {ordering: fair_share, backfill: conservative}
              nodes:
                - name: a100
                  count: 2
                  pool: gpu
                  resources: {cpu: 64, memory: 512Gi, gpu: 8}
                  gpu_model: A100
              pools:
                - name: burst
                  max_nodes: 3
                  provisioning_delay: 5m
                  template: {resources: {cpu: 32, memory: 128Gi, gpu: 4}}
            workload:
              defaults: {cpu_per_gpu: 8, memory_per_gpu: 32Gi, stage_in: 50Gi, stage_out: 1Gi}
              traces:
                - file: trace.csv
                - file: small.swf
                  id_offset: 1000
                  start: 1h
              synthetic:
                - jobs: 50
                  mean_interarrival: 2m
                  duration: {distribution: lognormal, median: 20m, sigma: 1}
                  gpus: {1: 3, 8: 1}
                  users: 3
                  estimate_factor: 2
                  comm_bandwidth: 10GB/s
            failures:
              pools:
                - pool: gpu
                  mtbf: {distribution: weibull, mean: 30d, shape: 0.8}
                  mttr: 4h
              trace:
                - {node: a100-1, at: 2h, down: 30m}
            network: {node_bandwidth: 100Gbps, spine_bandwidth: 1.6Tbps, classes: {training: 4}}
            storage: {bandwidth: 20GB/s, capacity: 500Ti, output_retention: 7d}
            checkpoints: {interval: 30m, on_preemption: false, restore_time: 1m}
            las: {thresholds: [1h, 10h], starvation_factor: 3}
            """, _dir, "q3.yaml");
        Assert.Equal(("q3", 7, TimeSpan.FromDays(30)), (scenario.Name, scenario.Seed, scenario.Horizon!.Value));
        Assert.Equal(OrderingPolicy.FairShare, scenario.Cluster.Policy.Ordering);
        Assert.Equal(["a100-1", "a100-2"], scenario.Cluster.Nodes.Select(n => n.Name));
        Assert.Equal(TimeSpan.FromMinutes(5), scenario.Cluster.ProvisioningDelays["burst"]);
        Assert.Equal(2 + 1 + 50, scenario.Jobs.Count); // the SWF job without processors is counted, not read
        Assert.Equal(1, scenario.SkippedJobs["processors unknown"]);
        Assert.Equal((64_000L, 256L << 30), (scenario.Jobs[0].PerTask.CpuMillis, scenario.Jobs[0].PerTask.MemoryBytes));
        var swf = scenario.Jobs.Single(j => j.Id == 1001);
        Assert.Equal((TimeSpan.FromHours(1), 4000L, TimeSpan.FromSeconds(200), "user3"), (swf.Submit, swf.CpuMillis, swf.Estimate!.Value, swf.User));
        Assert.Equal(1002, scenario.Jobs.Where(j => j.Id > 1001).Min(j => j.Id)); // generated jobs follow the traces' numbers
        var failure = Assert.Single(scenario.Failures.Pools);
        Assert.Equal((DistributionKind.Weibull, TimeSpan.FromDays(30), 0.8), (failure.TimeToFailure.Kind, failure.TimeToFailure.Scale, failure.TimeToFailure.Shape));
        Assert.Equal(DistributionKind.Exponential, failure.TimeToRepair.Kind);
        Assert.Equal(new NodeFailure("a100-1", TimeSpan.FromHours(2), TimeSpan.FromMinutes(30)), Assert.Single(scenario.Failures.Trace));
        Assert.Equal(new CheckpointModel { Interval = TimeSpan.FromMinutes(30), OnPreemption = false, RestoreTime = TimeSpan.FromMinutes(1) }, scenario.Checkpoints);
        Assert.Equal([3600.0, 36_000], scenario.Las.Thresholds);
        Assert.Equal(new NetworkModel
        {
            NodeBandwidth = 12.5e9, SpineBandwidth = 200e9, StorageBandwidth = 20e9, StorageCapacity = 500L << 40, OutputRetention = TimeSpan.FromDays(7),
            ClassWeights = scenario.Network.ClassWeights,
        }, scenario.Network);
        Assert.Equal(4, scenario.Network.Weight("training"));
        Assert.Equal((50L << 30, 1L << 30, 0.0), (scenario.Jobs[0].StageInBytes, scenario.Jobs[0].StageOutBytes, scenario.Jobs[0].CommBandwidth));
        Assert.All(scenario.Jobs.Where(j => j.Id > 1001), j => Assert.Equal(10e9, j.CommBandwidth));
        Assert.Equal(3, scenario.Las.StarvationFactor);

        // The same scenario, read again, generates the same jobs (the seed decides).
        var once = ScenarioReader.Parse(TheSameSynthetic, _dir).Jobs.Select(j => (j.Submit, j.Duration)).ToList();
        Assert.Equal(once, ScenarioReader.Parse(TheSameSynthetic, _dir).Jobs.Select(j => (j.Submit, j.Duration)));
        Assert.NotEqual(once, ScenarioReader.Parse("seed: 2\n" + TheSameSynthetic, _dir).Jobs.Select(j => (j.Submit, j.Duration)));
    }

    private const string TheSameSynthetic = """
        cluster: {nodes: [{name: n, resources: {cpu: 8, memory: 64Gi, gpu: 8}}]}
        workload: {synthetic: [{jobs: 20}]}
        """;

    [Fact]
    public void TheClusterMayBeAFile_NextToTheScenario()
    {
        File.WriteAllText(Path.Combine(_dir, "cluster.yaml"), "nodes:\n  - name: n\n    count: 3\n    resources: {cpu: 4, memory: 8Gi}\n");
        var path = Path.Combine(_dir, "s.yaml");
        File.WriteAllText(path, "cluster_file: cluster.yaml\nworkload: {synthetic: [{jobs: 5, gpus: {0: 1}}]}\n");
        var scenario = ScenarioReader.ReadFile(path);
        Assert.Equal(3, scenario.Cluster.Nodes.Count);
        Assert.Equal("s", scenario.Name);
        Assert.All(scenario.Jobs, j => Assert.Equal(0, j.Gpus));

        File.WriteAllText(Path.Combine(_dir, "cluster.yaml"), "nodes:\n  - name: n\n    resource: {cpu: 4}\n");
        var e = Assert.Throws<SpecException>(() => ScenarioReader.ReadFile(path));
        Assert.Contains("cluster_file: cluster.yaml: line 3, column 5: nodes[0].resource: unknown field; did you mean 'resources'?", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mistakes_AreNamedWithTheirFieldAndLine()
    {
        var e = Assert.Throws<SpecException>(() => ScenarioReader.Parse("""
            cluster:
              nodes:
                - name: n
                  resources: {cpu: 4, memroy: 8Gi}
            workload:
              traces:
                - file: missing.csv
              synthetic:
                - jobs: 0
                  duration: {distribution: gamma, mean: 1h}
            failures:
              pools:
                - pool: main
                  mttr: 4h
            checkpoints: {interval: 0s}
            las: {thresholds: [10h, 1h]}
            network: {classes: {bulk: 2}, node_bandwidth: 10GB}
            sed: 3
            """, _dir, "bad.yaml"));
        var messages = e.Errors.Select(x => x.ToString()).ToList();
        Assert.Contains(messages, m => m.StartsWith("line 4, column 35: cluster.nodes[0].resources.memroy: unknown resource; did you mean 'memory'?", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("workload.traces[0].file: the file", StringComparison.Ordinal) && m.Contains("missing.csv does not exist", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("line 9, column 13: workload.synthetic[0].jobs: must be between 1 and", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("workload.synthetic[0].duration.distribution: 'gamma' is not one of constant, exponential, weibull, log_normal", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("failures.pools[0].mtbf: is required", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("checkpoints.interval: must be positive", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("las.thresholds: must be in ascending order", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("sed: unknown field; did you mean 'seed'?", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("network.classes: unknown traffic class 'bulk'", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("network.node_bandwidth: '10GB' is not a bandwidth", StringComparison.Ordinal));

        var noCluster = Assert.Throws<SpecException>(() => ScenarioReader.Parse("workload: {synthetic: [{jobs: 5}]}\n", _dir));
        Assert.Contains("cluster: give the cluster either inline (cluster:) or as a file (cluster_file:), once", noCluster.Message, StringComparison.Ordinal);
        var noWork = Assert.Throws<SpecException>(() => ScenarioReader.Parse("cluster: {nodes: [{name: n, resources: {cpu: 1}}]}\n", _dir));
        Assert.Contains("workload: is required", noWork.Message, StringComparison.Ordinal);
    }
}
