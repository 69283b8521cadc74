using AiMass.Scheduling;

namespace AiMass.Specs.Tests;

public sealed class ClusterSpecReaderTests
{
    [Fact]
    public void Parse_ClusterFile_BuildsPolicyQueuesNodesAndPools()
    {
        var spec = ClusterSpecReader.Parse("""
            policy:
              ordering: fair_share
              backfill: conservative
              placement: spread
              preemption_grace: 10s
              owner_weights: {alice: 2}
            queues:
              - name: gpu
                weight: 2
                ordering: fifo
            nodes:
              - name: cpu
                count: 2
                resources: {cpu: 4, memory: 8Gi}
                labels: {rack: a}
              - name: big
                pool: gpu
                resources: {cpu: 16, memory: 64Gi, gpu: 2}
                gpu_model: A100
                gpu_memory: 40Gi
            pools:
              - name: burst
                min_nodes: 0
                max_nodes: 3
                idle_timeout: 5m
                provisioning_delay: 2s
                template:
                  resources: {cpu: 8, memory: 16Gi}
            """);
        Assert.Equal(OrderingPolicy.FairShare, spec.Policy.Ordering);
        Assert.Equal(BackfillPolicy.Conservative, spec.Policy.Backfill);
        Assert.Equal(PlacementStrategy.Spread, spec.Policy.Placement);
        Assert.Equal(TimeSpan.FromSeconds(10), spec.Policy.PreemptionGrace);
        Assert.Equal(2, spec.Policy.OwnerWeights["alice"]);
        Assert.Equal(OrderingPolicy.Fifo, Assert.Single(spec.Queues).Ordering);
        Assert.Equal(["cpu-1", "cpu-2", "big"], spec.Nodes.Select(n => n.Name));
        Assert.Equal("A100", spec.Nodes[2].GpuModel);
        var pool = Assert.Single(spec.Pools);
        Assert.Equal(PoolKind.Dynamic, pool.Kind);
        Assert.Equal(TimeSpan.FromSeconds(2), spec.ProvisioningDelays["burst"]);

        var scheduler = new ClusterScheduler();
        spec.ApplyTo(scheduler);
        Assert.Equal(3, scheduler.Nodes.Count);
        Assert.Equal(["burst", "gpu", "main"], scheduler.Pools.Select(p => p.Name));
    }

    [Fact]
    public void Parse_Errors_NameFieldAndLine()
    {
        var ex = Assert.Throws<SpecException>(() => ClusterSpecReader.Parse("""
            policy:
              backfill: sometimes
            nodes:
              - name: a
            pools:
              - name: p
                max_nodes: 0
            """));
        Assert.Contains(ex.Errors, e => e.Field == "policy.backfill" && e.Line == 2 && e.Message.Contains("none, easy, conservative", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.Field == "nodes[0].resources" && e.Message.Contains("is required", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.Field == "pools[0].template");
    }
}
