namespace AiMass.Simulation.Tests;

/// <summary>The future-event list and the virtual clock.</summary>
public sealed class EngineTests
{
    [Fact]
    public void Events_ComeOutByTime_ThenPhase_ThenTheOrderTheyWereAdded()
    {
        var calendar = new EventCalendar<string>();
        calendar.Add(10, 1, "arrival a");
        calendar.Add(5, 1, "early");
        calendar.Add(10, 0, "completion");
        calendar.Add(10, 1, "arrival b");
        Assert.Equal(5, calendar.NextTime);
        var order = new List<string>();
        while (calendar.TryTake(out _, out _, out var item))
        {
            order.Add(item);
        }
        Assert.Equal(["early", "completion", "arrival a", "arrival b"], order);
        Assert.Equal(4, calendar.Processed);
        Assert.Equal(long.MaxValue, calendar.NextTime);
    }

    [Fact]
    public void TheClock_OnlyMovesForward()
    {
        var clock = new VirtualClock(DateTimeOffset.UnixEpoch);
        clock.AdvanceTo(DateTimeOffset.UnixEpoch.AddSeconds(5));
        Assert.Equal(DateTimeOffset.UnixEpoch.AddSeconds(5), clock.GetUtcNow());
        Assert.Throws<InvalidOperationException>(() => clock.AdvanceTo(DateTimeOffset.UnixEpoch));
    }
}
