namespace AiMass.Simulation;

/// <summary>
/// The simulator's clock: a <see cref="TimeProvider"/> that reads the virtual time the event loop has reached. The
/// live scheduler reads its time from it, so it runs unchanged on simulated time.
/// </summary>
public sealed class VirtualClock : TimeProvider
{
    private DateTimeOffset _now;

    /// <summary>Creates the clock at <paramref name="start"/>.</summary>
    public VirtualClock(DateTimeOffset start)
    {
        _now = start;
    }

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => _now;

    /// <summary>Moves the clock forward (never back).</summary>
    public void AdvanceTo(DateTimeOffset time)
    {
        if (time < _now)
        {
            throw new InvalidOperationException($"the virtual clock cannot go back from {_now:O} to {time:O}");
        }
        _now = time;
    }
}

/// <summary>
/// The future-event list of a discrete-event simulation: events ordered by time, then by phase (at equal times, a lower
/// phase first: completions before arrivals), then by the order they were added — so a run is deterministic.
/// </summary>
/// <typeparam name="T">The event payload.</typeparam>
public sealed class EventCalendar<T>
{
    private readonly PriorityQueue<T, Key> _heap = new(KeyComparer.Instance);
    private long _sequence;

    /// <summary>Events waiting.</summary>
    public int Count => _heap.Count;

    /// <summary>Events taken out so far.</summary>
    public long Processed { get; private set; }

    /// <summary>Adds an event at <paramref name="time"/> (ticks of virtual time) in <paramref name="phase"/>.</summary>
    public void Add(long time, int phase, T item) => _heap.Enqueue(item, new Key(time, phase, _sequence++));

    /// <summary>The time of the next event, or <see cref="long.MaxValue"/> when there is none.</summary>
    public long NextTime => _heap.TryPeek(out _, out var key) ? key.Time : long.MaxValue;

    /// <summary>Takes the next event.</summary>
    public bool TryTake(out long time, out int phase, out T item)
    {
        if (!_heap.TryDequeue(out item!, out var key))
        {
            time = 0;
            phase = 0;
            return false;
        }
        Processed++;
        time = key.Time;
        phase = key.Phase;
        return true;
    }

    private readonly record struct Key(long Time, int Phase, long Sequence);

    private sealed class KeyComparer : IComparer<Key>
    {
        public static readonly KeyComparer Instance = new();

        public int Compare(Key x, Key y) =>
            x.Time != y.Time ? x.Time.CompareTo(y.Time)
            : x.Phase != y.Phase ? x.Phase.CompareTo(y.Phase)
            : x.Sequence.CompareTo(y.Sequence);
    }
}
