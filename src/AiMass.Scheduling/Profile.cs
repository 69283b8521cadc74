using AiMass.Resources;

namespace AiMass.Scheduling;

/// <summary>
/// The availability profile of one scheduling pass: what each node has free now, and how that changes in the future
/// as running jobs end (releases) and reservations begin and end. Backfilling asks it two questions: does a job fit
/// on a node over <c>[start, start + walltime)</c>, and when is the earliest start for a gang.
/// </summary>
internal sealed class Profile
{
    private readonly long _now;
    private readonly ResourceVector[] _freeNow;
    private readonly List<Change>?[] _changes;
    // True for nodes with a future decrease (a reservation): only those need the whole window walked.
    private readonly bool[] _hasDip;

    public Profile(int nodes, long now)
    {
        _now = now;
        _freeNow = new ResourceVector[nodes];
        _changes = new List<Change>?[nodes];
        _hasDip = new bool[nodes];
    }

    public long Now => _now;

    public void SetFree(int node, ResourceVector free) => _freeNow[node] = free;

    public ResourceVector FreeNow(int node) => _freeNow[node];

    /// <summary>Resources <paramref name="amount"/> become free on <paramref name="node"/> at <paramref name="time"/> (after now).</summary>
    public void AddRelease(int node, long time, ResourceVector amount)
    {
        if (time == long.MaxValue)
        {
            return;
        }
        Insert(node, new Change(Math.Max(time, _now + 1), amount));
    }

    /// <summary>A job starts now on <paramref name="node"/> and holds <paramref name="use"/> until <paramref name="end"/>.</summary>
    public void Allocate(int node, ResourceVector use, long end)
    {
        _freeNow[node] -= use;
        AddRelease(node, end, use);
    }

    /// <summary>A reservation holds <paramref name="use"/> on <paramref name="node"/> over <c>[start, end)</c>.</summary>
    public void Reserve(int node, ResourceVector use, long start, long end)
    {
        if (start <= _now)
        {
            Allocate(node, use, end);
            return;
        }
        Insert(node, new Change(start, ResourceVector.Zero - use));
        AddRelease(node, end, use);
        _hasDip[node] = true;
    }

    /// <summary>The least a node has free at any moment of <c>[start, end)</c>.</summary>
    public ResourceVector MinFree(int node, long start, long end)
    {
        var free = _freeNow[node];
        var list = _changes[node];
        if (list is null)
        {
            return free;
        }
        var i = 0;
        while (i < list.Count && list[i].Time <= start)
        {
            free += list[i].Delta;
            i++;
        }
        if (!_hasDip[node])
        {
            return free; // only releases ahead: free never drops below its value at start
        }
        var min = free;
        while (i < list.Count && list[i].Time < end)
        {
            var t = list[i].Time;
            while (i < list.Count && list[i].Time == t)
            {
                free += list[i].Delta;
                i++;
            }
            min = ResourceVector.Min(min, free);
        }
        return min;
    }

    /// <summary>How many tasks of <paramref name="need"/> fit on a node over the whole window (at most <paramref name="cap"/>).</summary>
    public int Fitting(int node, in ResourceVector need, long start, long end, int cap)
    {
        if (start <= _now)
        {
            // Every change lies after now, so free at the start is free now: a cheap answer for most nodes.
            var k = _freeNow[node].CountFitting(need);
            if (k == 0 || !_hasDip[node])
            {
                return (int)Math.Min(cap, k);
            }
        }
        return (int)Math.Min(cap, MinFree(node, start, end).CountFitting(need));
    }

    /// <summary>
    /// The earliest time at or after now when <paramref name="tasks"/> tasks of <paramref name="need"/> fit on
    /// <paramref name="nodes"/> for <paramref name="duration"/> ticks, or null when they never do.
    /// </summary>
    public long? EarliestStart(IReadOnlyList<int> nodes, in ResourceVector need, int tasks, long duration)
    {
        // Candidate start times are now and every moment some node gains resources. Nodes without a reservation
        // only gain over time, so they fit a window iff they fit at its start: a sweep keeps their counts current.
        // Nodes with reservations are re-evaluated over the whole window at every candidate time.
        var sweep = new List<(long Time, int Slot, ResourceVector Delta)>();
        var dips = new List<int>();
        var current = new ResourceVector[nodes.Count];
        var counts = new int[nodes.Count];
        var times = new SortedSet<long> { _now };
        long monotoneTotal = 0;
        for (var slot = 0; slot < nodes.Count; slot++)
        {
            var n = nodes[slot];
            var list = _changes[n];
            if (_hasDip[n])
            {
                dips.Add(n);
            }
            else
            {
                current[slot] = _freeNow[n];
                counts[slot] = (int)Math.Min(tasks, current[slot].CountFitting(need));
                monotoneTotal += counts[slot];
            }
            if (list is null)
            {
                continue;
            }
            foreach (var c in list)
            {
                if (!c.Delta.AnyNegative)
                {
                    times.Add(c.Time);
                    if (!_hasDip[n])
                    {
                        sweep.Add((c.Time, slot, c.Delta));
                    }
                }
            }
        }
        sweep.Sort((a, b) => a.Time.CompareTo(b.Time));
        var next = 0;
        foreach (var t in times)
        {
            while (next < sweep.Count && sweep[next].Time <= t)
            {
                var (_, slot, delta) = sweep[next++];
                current[slot] += delta;
                var k = (int)Math.Min(tasks, current[slot].CountFitting(need));
                monotoneTotal += k - counts[slot];
                counts[slot] = k;
            }
            var total = monotoneTotal;
            if (total >= tasks)
            {
                return t;
            }
            var end = duration == long.MaxValue || t > long.MaxValue - duration ? long.MaxValue : t + duration;
            foreach (var n in dips)
            {
                total += Fitting(n, need, t, end, (int)(tasks - total));
                if (total >= tasks)
                {
                    return t;
                }
            }
        }
        return null;
    }

    private void Insert(int node, Change change)
    {
        var list = _changes[node] ??= new List<Change>(4);
        var i = list.Count;
        while (i > 0 && list[i - 1].Time > change.Time)
        {
            i--;
        }
        list.Insert(i, change);
    }

    private readonly record struct Change(long Time, ResourceVector Delta);
}
