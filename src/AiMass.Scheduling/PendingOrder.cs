using AiMass.Resources;

namespace AiMass.Scheduling;

/// <summary>
/// The order of one pass over the pending jobs: jobs holding a preemption claim first, then queues merged by the
/// cluster ordering, each queue ordered by its own. Fair-share keys are read live, so a job that starts raises its
/// owner's and queue's share before the next job is chosen (progressive filling, as DRF prescribes).
/// </summary>
internal sealed class PendingOrder
{
    private readonly List<JobRecord> _first;
    private readonly List<QueueCursor> _queues;
    private readonly OrderingPolicy _ordering;
    private readonly Comparison<JobRecord> _byLength;
    private int _firstIndex;

    public PendingOrder(
        IEnumerable<JobRecord> pending,
        IReadOnlyDictionary<string, QueueRecord> queues,
        OrderingPolicy ordering,
        Func<string, double> ownerShare,
        TimeSpan unknownWalltime)
    {
        _ordering = ordering;
        _byLength = (a, b) => ByLength(a, b, unknownWalltime);
        _first = [];
        var byQueue = new Dictionary<string, List<JobRecord>>(StringComparer.Ordinal);
        foreach (var job in pending)
        {
            if (job.Claim is not null)
            {
                _first.Add(job);
            }
            else
            {
                if (!byQueue.TryGetValue(job.Request.Queue, out var list))
                {
                    byQueue[job.Request.Queue] = list = [];
                }
                list.Add(job);
            }
        }
        _first.Sort(ByPriority);
        _queues = [];
        foreach (var (name, jobs) in byQueue.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var queue = queues[name];
            _queues.Add(new QueueCursor(queue, queue.Spec.Ordering ?? ordering, jobs, ownerShare, _byLength));
        }
    }

    /// <summary>Jobs ordered by priority (highest first), then submission time, then id.</summary>
    public static int ByPriority(JobRecord a, JobRecord b)
    {
        var c = b.Request.Priority.CompareTo(a.Request.Priority);
        return c != 0 ? c : BySubmission(a, b);
    }

    /// <summary>Jobs ordered by walltime (unknown: <paramref name="unknownWalltime"/>), then priority, then submission.</summary>
    public static int ByLength(JobRecord a, JobRecord b, TimeSpan unknownWalltime)
    {
        var c = (a.Request.Walltime ?? unknownWalltime).CompareTo(b.Request.Walltime ?? unknownWalltime);
        return c != 0 ? c : ByPriority(a, b);
    }

    /// <summary>Jobs ordered by submission time, then id.</summary>
    public static int BySubmission(JobRecord a, JobRecord b)
    {
        var c = a.Request.SubmitTime.CompareTo(b.Request.SubmitTime);
        return c != 0 ? c : a.Request.Id.CompareTo(b.Request.Id);
    }

    /// <summary>The next job to consider, or null when every pending job has been considered.</summary>
    public JobRecord? Next()
    {
        if (_firstIndex < _first.Count)
        {
            return _first[_firstIndex++];
        }
        QueueCursor? best = null;
        JobRecord? bestHead = null;
        foreach (var q in _queues)
        {
            var head = q.Peek();
            if (head is null)
            {
                continue;
            }
            if (best is null || Before(q, head, best, bestHead!))
            {
                (best, bestHead) = (q, head);
            }
        }
        best?.Advance();
        return bestHead;
    }

    private bool Before(QueueCursor q, JobRecord head, QueueCursor other, JobRecord otherHead) => _ordering switch
    {
        OrderingPolicy.Fifo => BySubmission(head, otherHead) < 0,
        OrderingPolicy.Priority => ByPriority(head, otherHead) < 0,
        OrderingPolicy.ShortestFirst => _byLength(head, otherHead) < 0,
        _ => q.Queue.WeightedShare < other.Queue.WeightedShare
            || (q.Queue.WeightedShare == other.Queue.WeightedShare && string.CompareOrdinal(q.Queue.Spec.Name, other.Queue.Spec.Name) < 0),
    };

    private sealed class QueueCursor
    {
        private readonly List<JobRecord>? _sorted;
        private int _position;
        private readonly PriorityQueue<OwnerCursor, (double Share, string Owner)>? _owners;
        private readonly Func<string, double> _ownerShare;

        public QueueCursor(QueueRecord queue, OrderingPolicy ordering, List<JobRecord> jobs, Func<string, double> ownerShare, Comparison<JobRecord> byLength)
        {
            Queue = queue;
            _ownerShare = ownerShare;
            if (ordering != OrderingPolicy.FairShare)
            {
                jobs.Sort(ordering switch
                {
                    OrderingPolicy.Fifo => BySubmission,
                    OrderingPolicy.ShortestFirst => byLength,
                    _ => ByPriority,
                });
                _sorted = jobs;
                return;
            }
            _owners = new PriorityQueue<OwnerCursor, (double, string)>(Comparer<(double Share, string Owner)>.Create(
                (a, b) => a.Share != b.Share ? a.Share.CompareTo(b.Share) : string.CompareOrdinal(a.Owner, b.Owner)));
            foreach (var group in jobs.GroupBy(j => j.Request.Owner, StringComparer.Ordinal))
            {
                var list = group.ToList();
                list.Sort(ByPriority);
                _owners.Enqueue(new OwnerCursor(group.Key, list), (ownerShare(group.Key), group.Key));
            }
        }

        public QueueRecord Queue { get; }

        public JobRecord? Peek()
        {
            if (_sorted is not null)
            {
                return _position < _sorted.Count ? _sorted[_position] : null;
            }
            // Shares only grow during a pass, so a stale key is too small: refresh it and look again.
            while (_owners!.TryPeek(out var owner, out var key))
            {
                var share = _ownerShare(owner.Owner);
                if (share == key.Share)
                {
                    return owner.Jobs[owner.Position];
                }
                _owners.DequeueEnqueue(owner, (share, owner.Owner));
            }
            return null;
        }

        public void Advance()
        {
            if (_sorted is not null)
            {
                _position++;
                return;
            }
            var owner = _owners!.Dequeue();
            owner.Position++;
            if (owner.Position < owner.Jobs.Count)
            {
                _owners.Enqueue(owner, (_ownerShare(owner.Owner), owner.Owner));
            }
        }
    }

    private sealed class OwnerCursor(string owner, List<JobRecord> jobs)
    {
        public string Owner { get; } = owner;

        public List<JobRecord> Jobs { get; } = jobs;

        public int Position { get; set; }
    }
}

/// <summary>A queue and its live allocation.</summary>
internal sealed class QueueRecord(QueueSpec spec, ResourceVectorTotal total)
{
    public QueueSpec Spec { get; set; } = spec;

    public ResourceVector Allocated { get; set; }

    /// <summary>Dominant share of the cluster's capacity divided by the queue's weight.</summary>
    public double WeightedShare => Allocated.DominantShare(total.Value) / Spec.Weight;
}

/// <summary>The total capacity of the nodes that are up, shared by everything that computes shares.</summary>
internal sealed class ResourceVectorTotal
{
    public ResourceVector Value { get; set; }
}
