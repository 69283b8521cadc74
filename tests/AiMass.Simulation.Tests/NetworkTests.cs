using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Simulation.Tests;

/// <summary>Max-min fair sharing on hand-checked flow sets, and jobs slowed by staging, training traffic and a full storage.</summary>
public sealed class NetworkTests
{
    private const double GB = 1e9;

    private static double[] Rates(double[] capacities, params Flow[] flows)
    {
        MaxMinFairness.Allocate(capacities, flows);
        return flows.Select(f => Math.Round(f.Rate, 9)).ToArray();
    }

    [Fact]
    public void MaxMin_EqualSharesOnTheSharedLink()
    {
        // Two links of 10; one flow crosses both, one each: every flow gets 5.
        Assert.Equal([5.0, 5, 5], Rates([10, 10], new Flow([0, 1], 1), new Flow([0], 1), new Flow([1], 1)));
    }

    [Fact]
    public void MaxMin_AFlowHeldBackElsewhere_LeavesTheRestToTheOthers()
    {
        // Link 0 (10) carries both flows; link 1 (4) only the first, which it limits to 4: the second gets 6.
        Assert.Equal([4.0, 6], Rates([10, 4], new Flow([0, 1], 1), new Flow([0], 1)));
        // Three flows on a link of 9, one also on a link of 1: 1, 4 and 4.
        Assert.Equal([1.0, 4, 4], Rates([9, 1], new Flow([0, 1], 1), new Flow([0], 1), new Flow([0], 1)));
    }

    [Fact]
    public void MaxMin_WeightsAndDemands()
    {
        Assert.Equal([4.0, 8], Rates([12], new Flow([0], 1), new Flow([0], 2)));
        Assert.Equal([2.0, 8], Rates([10], new Flow([0], 1, demand: 2), new Flow([0], 1)));
        // Weight 4 with a demand of 8 on a link of 10 next to a bulk flow of weight 1: 8 and 2.
        Assert.Equal([8.0, 2], Rates([10], new Flow([0], 4, demand: 8), new Flow([0], 1)));
        // No flow gets more than its demand even when the link has room.
        Assert.Equal([3.0, 3], Rates([100], new Flow([0], 1, demand: 3), new Flow([0], 5, demand: 3)));
    }

    [Fact]
    public void MaxMin_IsMaxMinFair_OnRandomFlowSets()
    {
        var random = new Random(4);
        for (var round = 0; round < 200; round++)
        {
            var capacities = Enumerable.Range(0, 5).Select(_ => 1 + (random.NextDouble() * 9)).ToArray();
            var flows = Enumerable.Range(0, 8).Select(_ => new Flow(
                Enumerable.Range(0, 5).Where(_ => random.NextDouble() < 0.4).DefaultIfEmpty(random.Next(5)).Distinct().ToArray(),
                1 + random.Next(3),
                random.NextDouble() < 0.3 ? random.NextDouble() * 3 : double.PositiveInfinity)).ToArray();
            MaxMinFairness.Allocate(capacities, flows);
            for (var l = 0; l < capacities.Length; l++)
            {
                Assert.True(flows.Where(f => f.Path.Contains(l)).Sum(f => f.Rate) <= capacities[l] * (1 + 1e-9), "a link is over its capacity");
            }
            // Every flow is at its demand or crosses a full link on which no flow has a larger rate per weight.
            foreach (var f in flows)
            {
                var atDemand = f.Rate >= f.Demand * (1 - 1e-9);
                var bottleneck = f.Path.Any(l =>
                    flows.Where(g => g.Path.Contains(l)).Sum(g => g.Rate) >= capacities[l] * (1 - 1e-9)
                    && flows.Where(g => g.Path.Contains(l)).All(g => g.Rate / g.Weight <= (f.Rate / f.Weight) * (1 + 1e-9)));
                Assert.True(atDemand || bottleneck, $"round {round}: flow with rate {f.Rate} could get more");
            }
        }
    }

    private static NodeSpec Node(string name) => new(name, "main", new ResourceVector(16_000, 64L << 30, 8));

    private static SimJob Job(long id, double duration, int tasks = 1) =>
        new(id, TimeSpan.Zero, TimeSpan.FromSeconds(duration), tasks, new ResourceVector(8000, 32L << 30, 8));

    private static Scenario With(NetworkModel network, int nodes, params SimJob[] jobs) => new()
    {
        Cluster = new ClusterSpec { Nodes = Enumerable.Range(1, nodes).Select(i => Node($"n{i}")).ToList() },
        Jobs = jobs,
        Network = network,
    };

    [Fact]
    public void StagingJobs_ShareTheStorageBandwidth()
    {
        var storage = new NetworkModel { StorageBandwidth = 1 * GB };
        var alone = ScenarioSimulator.Run(With(storage, 2, Job(1, 100) with { StageInBytes = (long)(10 * GB) }));
        Assert.Equal(110, alone.Jobs[0].End); // 10 GB at 1 GB/s, then 100 s
        var both = ScenarioSimulator.Run(With(storage, 2, Job(1, 100) with { StageInBytes = (long)(10 * GB) }, Job(2, 100) with { StageInBytes = (long)(10 * GB), StageOutBytes = (long)(5 * GB) }));
        Assert.Equal(120, both.Jobs[0].End); // half the bandwidth each: 20 s
        Assert.Equal(125, both.Jobs[1].End); // and 5 GB out alone
        Assert.Equal((20 + 20 + 5) / 3600.0, both.Summary.StagingHours, 9);
    }

    [Fact]
    public void TrafficClassWeights_DecideWhoseTrafficGoesFirst_OnASharedUplink()
    {
        // Node uplinks of 10 GB/s. A 2-task gang needs 8 GB/s per task to compute at full speed; a job on n1 stages
        // 100 GB in through the same uplink.
        SimJob Gang() => new(1, TimeSpan.Zero, TimeSpan.FromSeconds(100), 2, new ResourceVector(8000, 32L << 30, 8)) { CommBandwidth = 8 * GB };
        SimJob Stager() => new(2, TimeSpan.Zero, TimeSpan.FromSeconds(10), 1, new ResourceVector(8000, 32L << 30, 0)) { StageInBytes = (long)(100 * GB) };
        var scenario = new Scenario
        {
            Cluster = new ClusterSpec { Nodes = [Node("n1"), Node("n2")], Policy = new SchedulerPolicy { Placement = PlacementStrategy.BinPack } },
            Jobs = [Gang(), Stager()],
        };

        // Training weighted 4:1 gets its 8 GB/s; staging takes the 2 left: 50 s, then 10 s of compute.
        var favoured = ScenarioSimulator.Run(scenario with { Network = new NetworkModel { NodeBandwidth = 10 * GB, StorageBandwidth = 100 * GB, ClassWeights = new Dictionary<string, double> { ["training"] = 4 } } });
        Assert.Equal([100.0, 60], favoured.Jobs.Select(j => j.End!.Value));
        Assert.Equal(0, favoured.Summary.NetworkSlowdownHours, 9);

        // Equal weights: 5 GB/s each for 20 s, during which the gang computes at 5/8 speed (12.5 s of work).
        var equal = ScenarioSimulator.Run(scenario with { Network = new NetworkModel { NodeBandwidth = 10 * GB, StorageBandwidth = 100 * GB } });
        Assert.Equal([107.5, 30], equal.Jobs.Select(j => j.End!.Value));
        Assert.Equal(7.5 / 3600, equal.Summary.NetworkSlowdownHours, 9);
    }

    [Fact]
    public void AFullStorage_MakesAWriterWait_UntilAnOutputsRetentionEnds()
    {
        var network = new NetworkModel { StorageCapacity = (long)(10 * GB), OutputRetention = TimeSpan.FromSeconds(100) };
        var result = ScenarioSimulator.Run(With(network, 2,
            Job(1, 10) with { StageOutBytes = (long)(8 * GB) },
            Job(2, 20) with { StageOutBytes = (long)(8 * GB) },
            Job(3, 5) with { StageOutBytes = (long)(11 * GB) }));
        Assert.Equal([10.0, 110], result.Jobs.Select(j => j.End!.Value));
        Assert.Equal(90 / 3600.0, result.Summary.StorageStallHours, 9);
        Assert.Equal((long)(8 * GB), result.Summary.PeakStorageBytes);
        Assert.Equal(1, result.Skipped["its output is larger than the storage"]);
    }

    [Fact]
    public void AFailureDuringStaging_LosesTheTransfer_WhichIsRedone()
    {
        var scenario = With(new NetworkModel { StorageBandwidth = 1 * GB }, 1, Job(1, 100) with { StageInBytes = (long)(10 * GB) }) with
        {
            Failures = new FailureModel { Trace = [new NodeFailure("n1", TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10))] },
        };
        var job = ScenarioSimulator.Run(scenario).Jobs[0];
        Assert.Equal(15 + 10 + 100, job.End); // back at 15, staged again by 25
        Assert.Equal(0, job.LostSeconds); // no work was computed, so none was lost
    }

    [Theory]
    [InlineData("10GB/s", 10e9)]
    [InlineData("1.5GiB/s", 1.5 * 1024 * 1024 * 1024)]
    [InlineData("100Gbps", 12.5e9)]
    [InlineData("400Mb/s", 50e6)]
    public void Bandwidths_AreParsed(string text, double expected)
    {
        Assert.True(NetworkModel.TryParseBandwidth(text, out var value, out var error), error);
        Assert.Equal(expected, value, 6);
    }

    [Theory]
    [InlineData("10GB", "is not a bandwidth")]
    [InlineData("0GB/s", "is not a positive bandwidth")]
    [InlineData("5XB/s", "unknown unit prefix 'X'")]
    public void BadBandwidths_SayWhy(string text, string expected)
    {
        Assert.False(NetworkModel.TryParseBandwidth(text, out _, out var error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }
}
