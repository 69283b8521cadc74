using System.Globalization;
using AiMass.Resources;

namespace AiMass.Scheduling;

/// <summary>
/// The cluster's scheduler: nodes, pools, queues and jobs, and the passes that decide which pending jobs start where,
/// which running jobs are preempted, and how dynamic pools grow and shrink. Pure logic: no I/O, no threads, time
/// from the injected <see cref="TimeProvider"/>, deterministic for the same calls. Not thread-safe: the live control
/// plane and the simulator each drive it from one loop.
/// </summary>
/// <remarks>
/// The caller carries decisions out: it launches the tasks of <see cref="SchedulingPass.Started"/> jobs, sends
/// termination notices for <see cref="SchedulingPass.Preemptions"/>, provisions <see cref="SchedulingPass.ScaleUps"/>
/// (then calls <see cref="SetNodeState"/> with <see cref="NodeState.Up"/>), and reports back with
/// <see cref="Release"/> when a job ends and <see cref="Requeue"/> when one must run again.
/// </remarks>
public sealed class ClusterScheduler
{
    private readonly TimeProvider _time;
    private readonly Dictionary<string, PoolRecord> _pools = new(StringComparer.Ordinal);
    private readonly Dictionary<string, QueueRecord> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeRecord> _nodes = new(StringComparer.Ordinal);
    private readonly List<NodeRecord> _nodeOrder = [];
    private readonly Dictionary<long, JobRecord> _jobs = [];
    private readonly Dictionary<string, ResourceVector> _ownerAllocated = new(StringComparer.Ordinal);
    private readonly ResourceVectorTotal _total = new();
    private readonly List<SchedulerEvent> _events = [];
    private SchedulerPolicy _policy;

    /// <summary>Creates a scheduler with one queue, <c>default</c>, and no nodes.</summary>
    public ClusterScheduler(SchedulerPolicy? policy = null, TimeProvider? time = null)
    {
        _policy = Validate(policy ?? new SchedulerPolicy());
        _time = time ?? TimeProvider.System;
        _queues[AiMass.Jobs.JobDefaults.Queue] = new QueueRecord(new QueueSpec(AiMass.Jobs.JobDefaults.Queue), _total);
    }

    /// <summary>The policy of the next pass (may be changed between passes).</summary>
    public SchedulerPolicy Policy
    {
        get => _policy;
        set => _policy = Validate(value);
    }

    /// <summary>The clock the scheduler reads.</summary>
    public TimeProvider Time => _time;

    /// <summary>Nodes in the order they were added.</summary>
    public IReadOnlyList<NodeView> Nodes => _nodeOrder.Select(n => n.ToView()).ToArray();

    /// <summary>Pools by name.</summary>
    public IReadOnlyList<PoolSpec> Pools => _pools.Values.Select(p => p.Spec).OrderBy(p => p.Name, StringComparer.Ordinal).ToArray();

    /// <summary>Every job the scheduler holds (pending, running, terminating), by id.</summary>
    public IReadOnlyList<JobView> Jobs => _jobs.Values.OrderBy(j => j.Request.Id).Select(j => j.ToView()).ToArray();

    /// <summary>Number of pending jobs.</summary>
    public int PendingCount => _jobs.Values.Count(j => j.Phase == JobPhase.Pending);

    /// <summary>Queues with their lengths and allocations.</summary>
    public IReadOnlyList<QueueView> Queues => _queues.Values.OrderBy(q => q.Spec.Name, StringComparer.Ordinal).Select(q => new QueueView(
        q.Spec,
        q.Spec.Ordering ?? _policy.Ordering,
        _jobs.Values.Count(j => j.Phase == JobPhase.Pending && j.Request.Queue == q.Spec.Name),
        _jobs.Values.Count(j => j.Phase != JobPhase.Pending && j.Request.Queue == q.Spec.Name),
        q.Allocated,
        q.Allocated.DominantShare(_total.Value))).ToArray();

    /// <summary>The total capacity of the nodes that are up.</summary>
    public ResourceVector UpCapacity => _total.Value;

    /// <summary>What every owner with running work holds now.</summary>
    public IReadOnlyDictionary<string, ResourceVector> OwnerAllocations => new Dictionary<string, ResourceVector>(_ownerAllocated, StringComparer.Ordinal);

    /// <summary>Refuses a job that could never run here (unknown queue, no node large enough), without queueing it.</summary>
    public void Check(JobRequest job)
    {
        ArgumentNullException.ThrowIfNull(job);
        _ = Validate(job with { Id = long.MinValue });
    }

    /// <summary>What an owner holds now.</summary>
    public ResourceVector OwnerAllocation(string owner) => _ownerAllocated.GetValueOrDefault(owner);

    /// <summary>An owner's dominant share of the capacity that is up, divided by its weight.</summary>
    public double OwnerShare(string owner) =>
        _ownerAllocated.GetValueOrDefault(owner).DominantShare(_total.Value) / _policy.OwnerWeights.GetValueOrDefault(owner, 1.0);

    /// <summary>One job's state, or null when the scheduler does not hold it.</summary>
    public JobView? GetJob(long id) => _jobs.TryGetValue(id, out var job) ? job.ToView() : null;

    /// <summary>One node's state, or null when there is no such node.</summary>
    public NodeView? GetNode(string name) => _nodes.TryGetValue(name, out var node) ? node.ToView() : null;

    /// <summary>Adds or replaces a pool.</summary>
    public void AddPool(PoolSpec pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        RequireName(pool.Name, "pool");
        if (pool.Kind == PoolKind.Dynamic)
        {
            if (pool.Template is null)
            {
                throw new SchedulingException($"dynamic pool '{pool.Name}' needs a node template") { Field = "template" };
            }
            if (pool.MinNodes < 0 || pool.MaxNodes < 1 || pool.MinNodes > pool.MaxNodes)
            {
                throw new SchedulingException($"dynamic pool '{pool.Name}': need 0 <= min_nodes <= max_nodes and max_nodes >= 1 (got {pool.MinNodes}..{pool.MaxNodes})") { Field = "max_nodes" };
            }
            RequireCapacity(pool.Template.Capacity, $"pool '{pool.Name}' template");
        }
        if (pool.IdleTimeout < TimeSpan.Zero)
        {
            throw new SchedulingException($"pool '{pool.Name}': idle_timeout must not be negative") { Field = "idle_timeout" };
        }
        if (_pools.TryGetValue(pool.Name, out var existing))
        {
            existing.Spec = pool;
        }
        else
        {
            _pools[pool.Name] = new PoolRecord(pool);
        }
    }

    /// <summary>Adds or replaces a queue.</summary>
    public void AddQueue(QueueSpec queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        RequireName(queue.Name, "queue");
        if (!(queue.Weight > 0) || double.IsInfinity(queue.Weight))
        {
            throw new SchedulingException($"queue '{queue.Name}': weight must be a positive number (got {queue.Weight})") { Field = "weight" };
        }
        if (_queues.TryGetValue(queue.Name, out var existing))
        {
            existing.Spec = queue;
        }
        else
        {
            _queues[queue.Name] = new QueueRecord(queue, _total);
        }
    }

    /// <summary>Adds a node (its pool is created as a static pool when unknown).</summary>
    public NodeView AddNode(NodeSpec node, NodeState state = NodeState.Up)
    {
        ArgumentNullException.ThrowIfNull(node);
        RequireName(node.Name, "node");
        RequireName(node.Pool, "pool");
        RequireCapacity(node.Capacity, $"node '{node.Name}'");
        if (_nodes.ContainsKey(node.Name))
        {
            throw new SchedulingException($"node '{node.Name}' already exists") { Field = "name" };
        }
        if (!_pools.ContainsKey(node.Pool))
        {
            _pools[node.Pool] = new PoolRecord(new PoolSpec(node.Pool, PoolKind.Static));
        }
        var record = new NodeRecord(node, state, _time.GetUtcNow());
        _nodes[node.Name] = record;
        _nodeOrder.Add(record);
        RecomputeTotal();
        return record.ToView();
    }

    /// <summary>
    /// Changes a node's state. Taking a node down makes every job with a task on it terminating (kill now, then
    /// <see cref="Requeue"/>); their ids are returned.
    /// </summary>
    public IReadOnlyList<long> SetNodeState(string name, NodeState state, string? reason = null)
    {
        var node = RequireNode(name);
        var now = _time.GetUtcNow();
        var previous = node.State;
        node.State = state;
        node.Reason = reason;
        if (state == NodeState.Up && node.Tasks == 0)
        {
            node.IdleSince = now;
        }
        RecomputeTotal();
        if (previous != state)
        {
            Emit("node_state", null, name, $"node {name}: {Word(previous)} -> {Word(state)}" + (reason is null ? "" : $" ({reason})"));
        }
        if (state != NodeState.Down)
        {
            return [];
        }
        var affected = _jobs.Values
            .Where(j => j.Phase != JobPhase.Pending && Array.IndexOf(j.Placement, node) >= 0)
            .OrderBy(j => j.Request.Id)
            .ToList();
        foreach (var job in affected)
        {
            job.Phase = JobPhase.Terminating;
            job.KillDeadline = now;
            Emit("node_lost", job.Request.Id, name, $"job {job.Request.Id} lost a task: node {name} is down; its other tasks are stopped and it is requeued");
        }
        return affected.Select(j => j.Request.Id).ToArray();
    }

    /// <summary>Removes a node that runs nothing.</summary>
    public void RemoveNode(string name)
    {
        var node = RequireNode(name);
        if (node.Tasks > 0)
        {
            throw new SchedulingException($"node '{name}' still runs {node.Tasks} task(s); drain it first");
        }
        _nodes.Remove(name);
        _nodeOrder.Remove(node);
        RecomputeTotal();
    }

    /// <summary>Queues a job, or refuses it with a message that says why it could never run.</summary>
    public void Submit(JobRequest job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var record = Validate(job);
        _jobs[job.Id] = record;
    }

    /// <summary>
    /// Puts back a job that was running before a restart of the control plane, on the nodes its tasks run on.
    /// Refused when a node is unknown or the allocation no longer fits (the caller then requeues the job).
    /// </summary>
    public void Restore(JobRequest job, IReadOnlyList<string> taskNodes, DateTimeOffset startedAt)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(taskNodes);
        if (taskNodes.Count != job.Tasks)
        {
            throw new SchedulingException($"job {job.Id} has {job.Tasks} task(s) but {taskNodes.Count} node(s) were given");
        }
        var record = Validate(job);
        var nodes = taskNodes.Select(RequireNode).ToArray();
        foreach (var group in nodes.GroupBy(n => n))
        {
            var use = job.PerTask * group.Count();
            if (group.Key.State is NodeState.Down or NodeState.Provisioning || !(group.Key.Allocated + use).FitsIn(group.Key.Spec.Capacity))
            {
                throw new SchedulingException($"job {job.Id} cannot be restored on node {group.Key.Spec.Name}: the node is {Word(group.Key.State)} or lacks {use}");
            }
        }
        _jobs[job.Id] = record;
        Allocate(record, nodes, startedAt);
    }

    /// <summary>Forgets a job (it ended, failed for good, or was cancelled) and frees what it held.</summary>
    public bool Release(long jobId)
    {
        if (!_jobs.Remove(jobId, out var job))
        {
            return false;
        }
        Free(job);
        if (job.Claim is { } claim)
        {
            job.Claim = null;
            foreach (var victim in claim.Victims)
            {
                victim.PreemptedFor = null;
            }
        }
        return true;
    }

    /// <summary>
    /// Returns a running or terminating job to the queue, keeping its submission time and priority; with
    /// <paramref name="notBefore"/> it is not placed before that time (a restart back-off).
    /// </summary>
    public bool Requeue(long jobId, string? reason = null, DateTimeOffset? notBefore = null)
    {
        if (!_jobs.TryGetValue(jobId, out var job))
        {
            return false;
        }
        job.NotBefore = notBefore;
        if (job.Phase == JobPhase.Pending)
        {
            return true;
        }
        Free(job);
        job.Phase = JobPhase.Pending;
        job.PendingReason = reason ?? "requeued";
        job.ExpectedStart = null;
        job.PreemptedFor = null;
        Emit("requeued", jobId, null, $"job {jobId} requeued" + (reason is null ? "" : $": {reason}"));
        return true;
    }

    /// <summary>
    /// Changes a held job's priority (pending or running: it counts from the next pass, for ordering and for which
    /// jobs may preempt which). False when the scheduler does not hold the job.
    /// </summary>
    public bool SetPriority(long jobId, int priority)
    {
        if (!_jobs.TryGetValue(jobId, out var job))
        {
            return false;
        }
        job.Request = job.Request with { Priority = priority };
        return true;
    }

    /// <summary>Events recorded since the last pass by calls other than <see cref="Schedule"/> (node changes, requeues); clears them.</summary>
    public IReadOnlyList<SchedulerEvent> DrainEvents()
    {
        var events = _events.ToArray();
        _events.Clear();
        return events;
    }

    /// <summary>Runs one scheduling pass.</summary>
    public SchedulingPass Schedule() => new Pass(this).Run();

    private JobRecord Validate(JobRequest job)
    {
        if (_jobs.ContainsKey(job.Id))
        {
            throw new SchedulingException($"job {job.Id} is already known to the scheduler");
        }
        if (job.Tasks < 1 || job.Tasks > AiMass.Jobs.JobDefaults.MaxReplicas)
        {
            throw new SchedulingException($"replicas must be between 1 and {AiMass.Jobs.JobDefaults.MaxReplicas} (got {job.Tasks})") { Field = "replicas" };
        }
        if (job.PerTask.AnyNegative)
        {
            throw new SchedulingException($"resources must not be negative (got {job.PerTask})") { Field = "resources" };
        }
        if (job.Walltime is { } w && w <= TimeSpan.Zero)
        {
            throw new SchedulingException($"walltime must be positive (got {w})") { Field = "walltime" };
        }
        if (!_queues.ContainsKey(job.Queue))
        {
            throw new SchedulingException($"queue '{job.Queue}' does not exist; queues: {string.Join(", ", _queues.Keys.Order(StringComparer.Ordinal))}") { Field = "queue" };
        }
        var whyNever = WhyItCanNeverRun(job);
        if (whyNever is not null)
        {
            throw new SchedulingException(whyNever) { Field = "resources" };
        }
        return new JobRecord(job, SelectorKey(job.NodeSelector));
    }

    /// <summary>Null when the job fits the cluster when empty (dynamic pools at their maximum), else why not.</summary>
    private string? WhyItCanNeverRun(JobRequest job)
    {
        var need = job.PerTask;
        long slots = 0;
        var matching = 0;
        var largest = ResourceVector.Zero;
        void Count(NodeRecord? record, NodeSpec spec, long copies)
        {
            var labels = record ?? new NodeRecord(spec, NodeState.Up, default);
            if (!labels.Matches(job.NodeSelector))
            {
                return;
            }
            matching++;
            largest = ResourceVector.Max(largest, spec.Capacity);
            var k = spec.Capacity.CountFitting(need);
            slots += copies * Math.Min(job.Tasks, k);
        }
        foreach (var node in _nodeOrder)
        {
            Count(node, node.Spec, 1);
        }
        foreach (var pool in _pools.Values.Where(p => p.Spec.Kind == PoolKind.Dynamic))
        {
            var existing = _nodeOrder.Count(n => n.Spec.Pool == pool.Spec.Name);
            var template = pool.Spec.Template! with { Name = pool.Spec.Name + "-template", Pool = pool.Spec.Name };
            Count(null, template, Math.Max(0, pool.Spec.MaxNodes - existing));
        }
        if (matching == 0)
        {
            return job.NodeSelector.Count == 0
                ? "the cluster has no nodes and no dynamic pool to run the job on"
                : $"no node or dynamic pool matches node_selector {SelectorKey(job.NodeSelector)}";
        }
        if (slots >= job.Tasks)
        {
            return null;
        }
        if (slots == 0)
        {
            return $"no node can ever hold one task: each needs {need}, the largest matching node offers {largest}";
        }
        return $"the job needs {job.Tasks} tasks of {need} at once, but the matching nodes can hold at most {slots}";
    }

    private void Allocate(JobRecord job, NodeRecord[] nodes, DateTimeOffset startedAt)
    {
        job.Phase = JobPhase.Running;
        job.Placement = nodes;
        job.StartedAt = startedAt;
        job.KillDeadline = null;
        job.PendingReason = null;
        job.ExpectedStart = null;
        foreach (var node in nodes)
        {
            node.Allocated += job.Request.PerTask;
            node.Tasks++;
            node.IdleSince = null;
        }
        var total = job.Total;
        _ownerAllocated[job.Request.Owner] = _ownerAllocated.GetValueOrDefault(job.Request.Owner) + total;
        _queues[job.Request.Queue].Allocated += total;
    }

    private void Free(JobRecord job)
    {
        if (job.Phase == JobPhase.Pending)
        {
            return;
        }
        var now = _time.GetUtcNow();
        foreach (var node in job.Placement)
        {
            node.Allocated -= job.Request.PerTask;
            node.Tasks--;
            if (node.Tasks == 0)
            {
                node.IdleSince = now;
            }
        }
        var total = job.Total;
        _ownerAllocated[job.Request.Owner] -= total;
        if (_ownerAllocated[job.Request.Owner].IsZero)
        {
            _ownerAllocated.Remove(job.Request.Owner);
        }
        if (_queues.TryGetValue(job.Request.Queue, out var queue))
        {
            queue.Allocated -= total;
        }
        job.Placement = [];
        job.StartedAt = null;
        job.KillDeadline = null;
    }

    private void RecomputeTotal()
    {
        var total = ResourceVector.Zero;
        foreach (var node in _nodeOrder)
        {
            if (node.State == NodeState.Up)
            {
                total += node.Spec.Capacity;
            }
        }
        _total.Value = total;
    }

    private void Emit(string kind, long? job, string? node, string message) =>
        _events.Add(new SchedulerEvent(_time.GetUtcNow(), kind, job, node, message));

    private NodeRecord RequireNode(string name) =>
        _nodes.TryGetValue(name, out var node) ? node : throw new SchedulingException($"node '{name}' does not exist");

    private static void RequireName(string? name, string what)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 128 || name.Any(char.IsWhiteSpace))
        {
            throw new SchedulingException($"'{name}' is not a valid {what} name (1-128 characters, no spaces)") { Field = "name" };
        }
    }

    private static void RequireCapacity(ResourceVector capacity, string what)
    {
        if (capacity.AnyNegative)
        {
            throw new SchedulingException($"{what}: capacity must not be negative (got {capacity})") { Field = "capacity" };
        }
    }

    private static SchedulerPolicy Validate(SchedulerPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.PreemptionGrace < TimeSpan.Zero)
        {
            throw new SchedulingException("preemption_grace must not be negative") { Field = "preemption_grace" };
        }
        if (policy.MaxReservations < 1)
        {
            throw new SchedulingException("max_reservations must be at least 1") { Field = "max_reservations" };
        }
        if (policy.UnknownWalltime <= TimeSpan.Zero)
        {
            throw new SchedulingException("unknown_walltime must be positive") { Field = "unknown_walltime" };
        }
        foreach (var (owner, weight) in policy.OwnerWeights)
        {
            if (!(weight > 0) || double.IsInfinity(weight))
            {
                throw new SchedulingException($"owner weight of '{owner}' must be a positive number (got {weight})") { Field = "owner_weights" };
            }
        }
        return policy;
    }

    internal static string SelectorKey(IReadOnlyDictionary<string, string> selector) =>
        selector.Count == 0 ? "" : string.Join(",", selector.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value));

    internal static string Word(NodeState state) => state.ToString().ToLowerInvariant();

    internal static string Clock(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>One scheduling pass: its profile, caches and decisions.</summary>
    private sealed class Pass
    {
        private readonly ClusterScheduler _s;
        private readonly SchedulerPolicy _policy;
        private readonly DateTimeOffset _now;
        private readonly long _nowTicks;
        private readonly NodeRecord[] _nodes;
        private readonly Profile _profile;
        private readonly Dictionary<string, NodeRecord[]> _matching = new(StringComparer.Ordinal);
        private readonly Dictionary<(string Selector, ResourceVector Need), int[]> _candidates = [];
        // For a (shape, selector) that did not fit now: the shortest walltime that failed. The profile only tightens
        // during a pass, and a longer window is harder to fit, so any job of that shape with a walltime at least as
        // long fails too.
        private readonly Dictionary<(ResourceVector Need, int Tasks, string Selector), long> _failed = [];
        private readonly HashSet<int> _reservedNodes = [];
        // Scratch space of Place, one slot per candidate node.
        private readonly int[] _counts;
        private readonly ResourceVector[] _free;
        private readonly List<JobStart> _started = [];
        private readonly List<Preemption> _preemptions = [];
        private readonly List<ScaleUp> _scaleUps = [];
        private readonly List<ScaleDown> _scaleDowns = [];

        public Pass(ClusterScheduler scheduler)
        {
            _s = scheduler;
            _policy = scheduler._policy;
            _now = scheduler._time.GetUtcNow();
            _nowTicks = _now.UtcTicks;
            _nodes = scheduler._nodeOrder.ToArray();
            for (var i = 0; i < _nodes.Length; i++)
            {
                _nodes[i].Index = i;
            }
            _profile = new Profile(_nodes.Length, _nowTicks);
            _counts = new int[_nodes.Length];
            _free = new ResourceVector[_nodes.Length];
            foreach (var node in _nodes)
            {
                _profile.SetFree(node.Index, node.State == NodeState.Up ? node.Spec.Capacity - node.Allocated : ResourceVector.Zero);
            }
            foreach (var job in scheduler._jobs.Values)
            {
                if (job.Phase == JobPhase.Pending)
                {
                    continue;
                }
                var end = job.PlannedEnd(_policy.UnknownWalltime);
                foreach (var node in job.Placement)
                {
                    if (node.State == NodeState.Up)
                    {
                        _profile.AddRelease(node.Index, end, job.Request.PerTask);
                    }
                }
            }
        }

        public SchedulingPass Run()
        {
            ExpireClaims();
            var pending = new List<JobRecord>();
            foreach (var j in _s._jobs.Values.Where(j => j.Phase == JobPhase.Pending))
            {
                if (j.NotBefore is { } notBefore && notBefore > _now)
                {
                    j.PendingReason = $"restart back-off until {notBefore.UtcDateTime:HH:mm:ss}Z";
                    j.ExpectedStart = notBefore;
                    continue;
                }
                pending.Add(j);
            }
            var order = new PendingOrder(pending, _s._queues, _policy.Ordering, _s.OwnerShare, _policy.UnknownWalltime);
            var depth = _policy.Backfill switch
            {
                BackfillPolicy.None => 0,
                BackfillPolicy.Easy => 1,
                _ => _policy.MaxReservations,
            };
            var reservations = 0;
            JobRecord? blocker = null;
            string? behind = null; // one reason string per pass for every job behind the blocker, not one per job
            var unplaced = new List<JobRecord>();
            while (order.Next() is { } job)
            {
                if (blocker is not null)
                {
                    job.PendingReason = behind ??= $"waiting behind job {blocker.Request.Id} (strict order: backfill is off)";
                    job.ExpectedStart = null;
                    unplaced.Add(job);
                    continue;
                }
                var candidates = Candidates(job);
                if (candidates.Length == 0)
                {
                    job.PendingReason = job.Request.NodeSelector.Count == 0
                        ? $"no node that is up can hold one task ({job.Request.PerTask})"
                        : $"no node that is up matches node_selector {job.SelectorKey} and can hold one task ({job.Request.PerTask})";
                    job.ExpectedStart = null;
                    unplaced.Add(job);
                    continue;
                }
                var duration = Duration(job);
                if (TryStartNow(job, candidates, duration))
                {
                    continue;
                }
                unplaced.Add(job);
                var claimant = job.Claim is not null;
                if (depth == 0 && !claimant)
                {
                    blocker = job;
                    job.PendingReason = "waiting for resources";
                    job.ExpectedStart = null;
                    continue;
                }
                if (claimant || reservations < depth)
                {
                    if (Reserve(job, candidates, duration) && !claimant)
                    {
                        reservations++;
                    }
                    continue;
                }
                job.PendingReason = reservations > 0
                    ? "waiting for resources (starting now would delay a reserved job)"
                    : "waiting for resources";
                job.ExpectedStart = null;
            }
            if (_policy.Preemption)
            {
                Preempt(unplaced);
            }
            Autoscale(unplaced);
            var events = _s._events.ToArray();
            _s._events.Clear();
            return new SchedulingPass(_now, _started, _preemptions, _scaleUps, _scaleDowns, events) { PendingConsidered = pending.Count };
        }

        private long Duration(JobRecord job)
        {
            var ticks = (job.Request.Walltime ?? _policy.UnknownWalltime).Ticks;
            return ticks;
        }

        private static long End(long start, long duration) => long.MaxValue - start < duration ? long.MaxValue : start + duration;

        /// <summary>Up nodes that match the job's selector and can hold one task when empty.</summary>
        private int[] Candidates(JobRecord job)
        {
            var key = (job.SelectorKey, job.Request.PerTask);
            if (!_candidates.TryGetValue(key, out var list))
            {
                if (!_matching.TryGetValue(job.SelectorKey, out var matching))
                {
                    matching = _nodes.Where(n => n.State == NodeState.Up && n.Matches(job.Request.NodeSelector)).ToArray();
                    _matching[job.SelectorKey] = matching;
                }
                var need = job.Request.PerTask;
                var result = new List<int>(matching.Length);
                foreach (var node in matching)
                {
                    if (node.Spec.Capacity.CountFitting(need) >= 1)
                    {
                        result.Add(node.Index);
                    }
                }
                list = result.ToArray();
                _candidates[key] = list;
            }
            return list;
        }

        private bool TryStartNow(JobRecord job, int[] candidates, long duration)
        {
            var shape = (job.Request.PerTask, job.Request.Tasks, job.SelectorKey);
            if (_failed.TryGetValue(shape, out var failedAt) && duration >= failedAt)
            {
                job.PendingReason = "waiting for resources";
                return false;
            }
            var end = End(_nowTicks, duration);
            var placement = Place(job, candidates, _nowTicks, end);
            if (placement is null)
            {
                // When it does not fit even at this instant, no walltime would help: remember it for every duration.
                long now = 0;
                foreach (var n in candidates)
                {
                    now += Math.Min(job.Request.Tasks, _profile.FreeNow(n).CountFitting(job.Request.PerTask));
                }
                _failed[shape] = now < job.Request.Tasks ? 0 : _failed.TryGetValue(shape, out var before) ? Math.Min(before, duration) : duration;
                return false;
            }
            var need = job.Request.PerTask;
            foreach (var n in placement)
            {
                _profile.Allocate(n, need, end);
            }
            var nodes = placement.Select(i => _nodes[i]).ToArray();
            var hadClaim = job.Claim is not null;
            job.Claim = null;
            _s.Allocate(job, nodes, _now);
            var tasks = nodes.Select((n, i) => new TaskPlacement(i, n.Spec.Name)).ToArray();
            _started.Add(new JobStart(job.Request.Id, tasks));
            var where = string.Join(", ", nodes.Select(n => n.Spec.Name).Distinct());
            _s.Emit("started", job.Request.Id, null,
                $"job {job.Request.Id} started: {job.Request.Tasks} task(s) of {need} on {where}" + (hadClaim ? " (resources freed by preemption)" : ""));
            return true;
        }

        /// <summary>Places the gang over <c>[start, end)</c>; null when it does not fit. Returns a node index per task.</summary>
        private int[]? Place(JobRecord job, int[] candidates, long start, long end)
        {
            var need = job.Request.PerTask;
            var tasks = job.Request.Tasks;
            var counts = _counts;
            var total = 0;
            for (var c = 0; c < candidates.Length; c++)
            {
                counts[c] = _profile.Fitting(candidates[c], need, start, end, tasks);
                total += counts[c];
            }
            if (total < tasks)
            {
                return null;
            }
            // Placement strategies score what each node would have left; at a future start, what it has then.
            var free = _free;
            for (var c = 0; c < candidates.Length; c++)
            {
                if (counts[c] > 0)
                {
                    free[c] = start <= _nowTicks ? _profile.FreeNow(candidates[c]) : _profile.MinFree(candidates[c], start, end);
                }
            }
            var result = new int[tasks];
            for (var t = 0; t < tasks; t++)
            {
                var best = -1;
                var bestTier = 0;
                var bestScore = 0.0;
                for (var c = 0; c < candidates.Length; c++)
                {
                    if (counts[c] == 0)
                    {
                        continue;
                    }
                    var node = _nodes[candidates[c]];
                    var score = (free[c] - need).FreeFraction(node.Spec.Capacity, need);
                    // Jobs without GPUs keep off GPU nodes when they can, so GPUs are not stranded.
                    var tier = need.Gpus == 0 && node.Spec.Capacity.Gpus > 0 ? 1 : 0;
                    var better = best < 0 || tier < bestTier || (tier == bestTier && (_policy.Placement == PlacementStrategy.BinPack ? score < bestScore : score > bestScore));
                    if (better)
                    {
                        (best, bestTier, bestScore) = (c, tier, score);
                    }
                }
                counts[best]--;
                free[best] -= need;
                result[t] = candidates[best];
            }
            return result;
        }

        private bool Reserve(JobRecord job, int[] candidates, long duration)
        {
            var need = job.Request.PerTask;
            var start = _profile.EarliestStart(candidates, need, job.Request.Tasks, duration);
            if (start is null)
            {
                job.PendingReason = "waiting for resources (it does not fit on the nodes up now even when they are empty; it may wait for nodes to come up)";
                job.ExpectedStart = null;
                return false;
            }
            var end = End(start.Value, duration);
            var placement = Place(job, candidates, start.Value, end)
                ?? throw new InvalidOperationException("the earliest start found does not place the job");
            foreach (var n in placement)
            {
                _profile.Reserve(n, need, start.Value, end);
                _reservedNodes.Add(n);
            }
            var at = new DateTimeOffset(start.Value, TimeSpan.Zero);
            if (job.ExpectedStart is null)
            {
                _s.Emit("reserved", job.Request.Id, null,
                    $"job {job.Request.Id} reserved to start by {Clock(at)} on {string.Join(", ", placement.Select(i => _nodes[i].Spec.Name).Distinct())}; later jobs may start first only if they do not delay it");
            }
            job.ExpectedStart = at;
            job.PendingReason = $"waiting for resources; reserved to start by {Clock(at)}";
            return true;
        }

        private void ExpireClaims()
        {
            foreach (var job in _s._jobs.Values)
            {
                if (job.Claim is { } claim && claim.Expires <= _now)
                {
                    job.Claim = null;
                    _s.Emit("claim_expired", job.Request.Id, null,
                        $"job {job.Request.Id}: the resources of the jobs preempted for it were not freed by {Clock(claim.Expires)}; it waits in order again");
                }
            }
        }

        private void Preempt(List<JobRecord> unplaced)
        {
            // Possible victims, the cheapest to stop first: lowest priority, then the youngest (least work lost).
            var preemptible = _s._jobs.Values
                .Where(v => v.Phase == JobPhase.Running && v.Request.Preemptible)
                .OrderBy(v => v.Request.Priority)
                .ThenByDescending(v => v.StartedAt)
                .ThenByDescending(v => v.Request.Id)
                .ToList();
            var attempts = 0;
            foreach (var job in unplaced)
            {
                if (attempts >= _policy.MaxPreemptorsPerPass || preemptible.Count == 0)
                {
                    break;
                }
                if (job.Claim is not null || preemptible[0].Request.Priority >= job.Request.Priority)
                {
                    continue;
                }
                var candidates = Candidates(job);
                if (candidates.Length == 0)
                {
                    continue;
                }
                var victims = preemptible.Where(v => v.Phase == JobPhase.Running && v.Request.Priority < job.Request.Priority).ToList();
                if (victims.Count == 0)
                {
                    continue;
                }
                attempts++;
                var candidateSet = new HashSet<int>(candidates);
                var avail = new Dictionary<int, ResourceVector>();
                foreach (var n in candidates)
                {
                    avail[n] = _nodes[n].Spec.Capacity - _nodes[n].Allocated;
                }
                if (Fits(job, avail))
                {
                    continue; // it fits the free resources but waits for a reservation; killing work would not help
                }
                var selected = new List<JobRecord>();
                var fits = false;
                foreach (var victim in victims)
                {
                    if (!victim.Placement.Any(n => candidateSet.Contains(n.Index)))
                    {
                        continue;
                    }
                    Give(avail, victim, +1, candidateSet);
                    selected.Add(victim);
                    if (Fits(job, avail))
                    {
                        fits = true;
                        break;
                    }
                }
                if (!fits)
                {
                    continue;
                }
                // Keep only victims whose resources are needed: try to spare each, the most valuable first.
                for (var i = selected.Count - 1; i >= 0; i--)
                {
                    Give(avail, selected[i], -1, candidateSet);
                    if (Fits(job, avail))
                    {
                        selected.RemoveAt(i);
                    }
                    else
                    {
                        Give(avail, selected[i], +1, candidateSet);
                    }
                }
                var deadline = _now + _policy.PreemptionGrace;
                var slack = _policy.PreemptionGrace > TimeSpan.FromMinutes(1) ? _policy.PreemptionGrace : TimeSpan.FromMinutes(1);
                var claim = new PreemptionClaim(job, selected, deadline + slack);
                job.Claim = claim;
                foreach (var victim in selected)
                {
                    victim.Phase = JobPhase.Terminating;
                    victim.KillDeadline = deadline;
                    victim.PreemptedFor = claim;
                    var reason = $"preempted by job {job.Request.Id} (priority {job.Request.Priority} > {victim.Request.Priority})";
                    _preemptions.Add(new Preemption(victim.Request.Id, job.Request.Id, deadline, reason));
                    _s.Emit("preempted", victim.Request.Id, null, $"job {victim.Request.Id} {reason}; it is killed at {Clock(deadline)} if still running, then requeued");
                }
                job.PendingReason = $"waiting for {selected.Count} preempted job(s) to stop: {string.Join(", ", selected.Select(v => v.Request.Id))}";
                _s.Emit("preempting", job.Request.Id, null, $"job {job.Request.Id} preempts job(s) {string.Join(", ", selected.Select(v => v.Request.Id))} to free {job.Request.Tasks} task(s) of {job.Request.PerTask}");
            }
        }

        private static void Give(Dictionary<int, ResourceVector> avail, JobRecord victim, int sign, HashSet<int> candidates)
        {
            foreach (var node in victim.Placement)
            {
                if (candidates.Contains(node.Index))
                {
                    avail[node.Index] = sign > 0 ? avail[node.Index] + victim.Request.PerTask : avail[node.Index] - victim.Request.PerTask;
                }
            }
        }

        private static bool Fits(JobRecord job, Dictionary<int, ResourceVector> avail)
        {
            long total = 0;
            foreach (var free in avail.Values)
            {
                total += Math.Min(job.Request.Tasks, free.CountFitting(job.Request.PerTask));
                if (total >= job.Request.Tasks)
                {
                    return true;
                }
            }
            return false;
        }

        private void Autoscale(List<JobRecord> unplaced)
        {
            foreach (var pool in _s._pools.Values.Where(p => p.Spec.Kind == PoolKind.Dynamic).OrderBy(p => p.Spec.Name, StringComparer.Ordinal).ToList())
            {
                var spec = pool.Spec;
                var members = _s._nodeOrder.Where(n => n.Spec.Pool == spec.Name && n.State != NodeState.Down).ToList();
                var template = spec.Template!;
                // Bins: what the pool's nodes have left (up and coming), then new nodes up to the pool's maximum.
                var bins = members
                    .Where(n => n.State is NodeState.Up or NodeState.Provisioning)
                    .Select(n => n.Spec.Capacity - n.Allocated)
                    .ToList();
                var used = new bool[bins.Count];
                var fresh = new List<ResourceVector>();
                var reasons = new List<string>();
                var templateRecord = new NodeRecord(template with { Name = spec.Name + "-new", Pool = spec.Name }, NodeState.Up, _now);
                var room = spec.MaxNodes - members.Count;
                foreach (var job in unplaced)
                {
                    if (job.Claim is not null || !templateRecord.Matches(job.Request.NodeSelector) || template.Capacity.CountFitting(job.Request.PerTask) < 1)
                    {
                        continue;
                    }
                    var need = job.Request.PerTask;
                    var trialBins = bins.ToList();
                    var trialFresh = fresh.ToList();
                    var trialUsed = (bool[])used.Clone();
                    var ok = true;
                    for (var t = 0; t < job.Request.Tasks && ok; t++)
                    {
                        var i = trialBins.FindIndex(b => need.FitsIn(b));
                        if (i >= 0)
                        {
                            trialBins[i] -= need;
                            trialUsed[i] = true;
                            continue;
                        }
                        var j = trialFresh.FindIndex(b => need.FitsIn(b));
                        if (j >= 0)
                        {
                            trialFresh[j] -= need;
                            continue;
                        }
                        if (trialFresh.Count >= room)
                        {
                            ok = false;
                            continue;
                        }
                        trialFresh.Add(template.Capacity - need);
                    }
                    if (!ok)
                    {
                        continue;
                    }
                    if (trialFresh.Count > fresh.Count && reasons.Count < 3)
                    {
                        reasons.Add($"job {job.Request.Id} needs {job.Request.Tasks} task(s) of {need}");
                    }
                    (bins, fresh, used) = (trialBins, trialFresh, trialUsed);
                }
                var add = fresh.Count;
                var belowMin = spec.MinNodes - members.Count;
                string why;
                if (belowMin > add)
                {
                    add = belowMin;
                    why = $"pool {spec.Name} is below its minimum of {spec.MinNodes} node(s)";
                }
                else
                {
                    why = $"pending work fits no node that is up or coming: {string.Join("; ", reasons)}" + (unplaced.Count > reasons.Count ? " ..." : "");
                }
                if (add > 0)
                {
                    var names = new List<string>();
                    for (var k = 0; k < add; k++)
                    {
                        string name;
                        do
                        {
                            name = $"{spec.Name}-{pool.NextNode++}";
                        }
                        while (_s._nodes.ContainsKey(name));
                        _s.AddNode(template with { Name = name, Pool = spec.Name }, NodeState.Provisioning);
                        names.Add(name);
                    }
                    var message = $"scale up pool {spec.Name} by {add} ({members.Count} -> {members.Count + add} nodes, max {spec.MaxNodes}): {why}";
                    _scaleUps.Add(new ScaleUp(spec.Name, names, message));
                    _s.Emit("scale_up", null, null, message);
                    continue;
                }
                // Scale down idle nodes past the timeout, oldest idle first, keeping the minimum and any node that
                // holds a reservation or that the demand above was counted on.
                var removable = members.Count - spec.MinNodes;
                var upBins = members.Where(n => n.State is NodeState.Up or NodeState.Provisioning).ToList();
                var idle = members
                    .Where(n => n.State == NodeState.Up && n.Tasks == 0 && n.IdleSince is { } since && since + spec.IdleTimeout <= _now
                        && !_reservedNodes.Contains(n.Index) && !used[upBins.IndexOf(n)])
                    .OrderBy(n => n.IdleSince)
                    .ThenBy(n => n.Spec.Name, StringComparer.Ordinal)
                    .Take(Math.Max(0, removable))
                    .ToList();
                foreach (var node in idle)
                {
                    var message = $"scale down pool {spec.Name}: node {node.Spec.Name} idle since {Clock(node.IdleSince!.Value)} (idle timeout {spec.IdleTimeout}, min {spec.MinNodes})";
                    _s.RemoveNode(node.Spec.Name);
                    _scaleDowns.Add(new ScaleDown(spec.Name, node.Spec.Name, message));
                    _s.Emit("scale_down", null, node.Spec.Name, message);
                }
            }
        }
    }
}
