namespace AiMass.Scheduling.Tests;

public sealed class ReplicaAutoscalerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    private static AutoscalingPolicy Policy(int min = 1, int max = 5, double target = 4, double up = 0, double down = 30, double zero = 300) => new()
    {
        MinReplicas = min,
        MaxReplicas = max,
        TargetInFlight = target,
        UpscaleDelay = TimeSpan.FromSeconds(up),
        DownscaleDelay = TimeSpan.FromSeconds(down),
        ScaleToZeroAfter = TimeSpan.FromSeconds(zero),
    };

    [Fact]
    public void Load_AboveTarget_ScalesUpToCeilOfConcurrencyOverTarget_ClampedToMax()
    {
        var scaler = new ReplicaAutoscaler(Policy(), 1, T0);
        var decision = scaler.Observe(T0.AddSeconds(1), concurrency: 9, requestWaiting: false);
        Assert.NotNull(decision);
        Assert.Equal((1, 3), (decision.From, decision.To));
        Assert.Contains("9 requests in flight, target 4 per replica", decision.Reason, StringComparison.Ordinal);
        Assert.Equal(5, scaler.Observe(T0.AddSeconds(2), 100, false)!.To);
        Assert.Null(scaler.Observe(T0.AddSeconds(3), 100, false));
    }

    [Fact]
    public void UpscaleDelay_WaitsForSustainedLoad_AndABriefSpikeDoesNothing()
    {
        var scaler = new ReplicaAutoscaler(Policy(up: 10), 1, T0);
        Assert.Null(scaler.Observe(T0.AddSeconds(1), 8, false));
        Assert.Null(scaler.Observe(T0.AddSeconds(5), 1, false)); // the spike ended: the clock restarts
        Assert.Null(scaler.Observe(T0.AddSeconds(6), 8, false));
        Assert.Null(scaler.Observe(T0.AddSeconds(15), 8, false));
        Assert.Equal(2, scaler.Observe(T0.AddSeconds(16), 8, false)!.To);
    }

    [Fact]
    public void DownscaleDelay_RemovesReplicasOnlyAfterTheWindow_ToTheLargestNeedSeenInIt()
    {
        var scaler = new ReplicaAutoscaler(Policy(down: 30), 1, T0);
        Assert.Equal(5, scaler.Observe(T0, 20, false)!.To);
        Assert.Null(scaler.Observe(T0.AddSeconds(1), 4, false));   // needs 1
        Assert.Null(scaler.Observe(T0.AddSeconds(10), 11, false)); // needs 3
        Assert.Null(scaler.Observe(T0.AddSeconds(20), 2, false));
        var down = scaler.Observe(T0.AddSeconds(31), 2, false);
        Assert.NotNull(down);
        Assert.Equal((5, 3), (down.From, down.To));
        Assert.Null(scaler.Observe(T0.AddSeconds(40), 2, false)); // a new window starts
        Assert.Equal(1, scaler.Observe(T0.AddSeconds(71), 2, false)!.To);
    }

    [Fact]
    public void MinimumOne_NeverScalesToZero()
    {
        var scaler = new ReplicaAutoscaler(Policy(min: 1, down: 0, zero: 1), 1, T0);
        Assert.Null(scaler.Observe(T0.AddHours(1), 0, false));
        Assert.Equal(1, scaler.Desired);
    }

    [Fact]
    public void MinimumZero_StartsAtZero_WakesForAWaitingRequest_AndSleepsAfterTheIdleTime()
    {
        var scaler = new ReplicaAutoscaler(Policy(min: 0, max: 3, down: 5, zero: 60), 0, T0);
        Assert.Equal(0, scaler.Desired);
        Assert.Null(scaler.Observe(T0.AddSeconds(1), 0, false));
        var wake = scaler.Observe(T0.AddSeconds(2), 0, requestWaiting: true);
        Assert.NotNull(wake);
        Assert.Equal((0, 1), (wake.From, wake.To));
        Assert.Equal("scale from zero: a request is waiting", wake.Reason);
        Assert.Null(scaler.Observe(T0.AddSeconds(10), 0.5, false));
        Assert.Null(scaler.Observe(T0.AddSeconds(69), 0, false)); // idle 59 s
        var sleep = scaler.Observe(T0.AddSeconds(71), 0, false);
        Assert.NotNull(sleep);
        Assert.Equal(0, sleep.To);
        Assert.StartsWith("scale to zero: no request for 61", sleep.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void NewPolicy_ClampsAtOnce()
    {
        var scaler = new ReplicaAutoscaler(Policy(max: 5), 1, T0);
        scaler.Observe(T0, 20, false);
        var clamp = scaler.Update(Policy(min: 1, max: 2), T0.AddSeconds(1));
        Assert.NotNull(clamp);
        Assert.Equal((5, 2), (clamp.From, clamp.To));
        Assert.Equal(3, scaler.Update(Policy(min: 3, max: 4), T0.AddSeconds(2))!.To);
        Assert.Null(scaler.Update(Policy(min: 1, max: 4), T0.AddSeconds(3)));
    }
}
