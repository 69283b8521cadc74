namespace AiMass.Specs.Tests;

/// <summary>A cluster written as a cluster file reads back as the same cluster.</summary>
public sealed class ClusterSpecWriterTests
{
    [Fact]
    public void WrittenClusters_ReadBackTheSame()
    {
        var original = ClusterSpecReader.Parse("""
            policy:
              ordering: fair_share
              backfill: conservative
              placement: spread
              preemption: false
              preemption_grace: 45s
              max_reservations: 7
              unknown_walltime: 2h30m
              owner_weights: {alice: 2, "bob smith": 0.5}
            queues:
              - name: research
                weight: 3
                ordering: shortest_first
              - name: "true"
            nodes:
              - name: a100
                count: 2
                pool: gpu
                resources: {cpu: 62.5, memory: 1000000001, gpu: 8, nic: 2}
                gpu_model: A100
                gpu_memory: 80Gi
                labels: {rack: "7", zone: "eu-1"}
            pools:
              - name: burst
                kind: dynamic
                min_nodes: 1
                max_nodes: 4
                idle_timeout: 15m
                provisioning_delay: 3m
                template:
                  resources: {cpu: 500m, memory: 2Gi}
            """);
        var text = ClusterSpecWriter.Write(original);
        var back = ClusterSpecReader.Parse(text, "written");
        Assert.Equal(original.Policy with { OwnerWeights = back.Policy.OwnerWeights }, back.Policy);
        Assert.Equal(original.Policy.OwnerWeights, back.Policy.OwnerWeights);
        Assert.Equal(original.Queues, back.Queues);
        Assert.Equal(original.Nodes.Count, back.Nodes.Count);
        foreach (var (a, b) in original.Nodes.Zip(back.Nodes))
        {
            Assert.Equal(a with { Labels = b.Labels }, b);
            Assert.Equal(a.Labels, b.Labels);
        }
        var pool = Assert.Single(back.Pools);
        Assert.Equal(original.Pools[0] with { Template = pool.Template }, pool);
        Assert.Equal(original.Pools[0].Template!.Capacity, pool.Template!.Capacity);
        Assert.Equal(original.ProvisioningDelays, back.ProvisioningDelays);
        Assert.Contains("memory: 1000000001", text, StringComparison.Ordinal); // exact, not rounded
    }
}
