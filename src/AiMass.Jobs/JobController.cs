using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using AiMass.Execution;
using AiMass.Jobs.Storage;
using AiMass.Registry;
using AiMass.Resources;
using AiMass.Scheduling;
using AiMass.Specs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AiMass.Jobs;

/// <summary>
/// The job service: keeps jobs, tasks and events in the store, and runs the control loop that feeds the scheduler,
/// starts and stops tasks through the executor, enforces walltimes, restarts failed jobs from their latest
/// checkpoint, and finds running tasks again after a restart. Every change of scheduler state happens under one
/// gate, in the loop or in an API call; readers use the snapshot published after each pass.
/// </summary>
public sealed partial class JobController : IAsyncDisposable
{
    private readonly IDbContextFactory<JobsDbContext> _db;
    private readonly IExecutor _executor;
    private readonly JobOptions _options;
    private readonly string _dataDir;
    private readonly TimeProvider _time;
    private readonly JobMetrics _metrics;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ConcurrentQueue<(ActiveJob Job, RunningTask Task, TaskExit Exit)> _exits = new();
    private readonly Dictionary<long, ActiveJob> _jobs = [];
    // Parsed specs by job id, read by API threads (the loop's own dictionary is not theirs to read).
    private readonly ConcurrentDictionary<long, JobSpec> _specs = new();
    private readonly Dictionary<string, DateTimeOffset> _provisioning = new(StringComparer.Ordinal);
    private readonly Dictionary<(long Job, int Attempt, int Task), (long At, double Cpu)> _usageSamples = [];
    private readonly ControlLoop _control;
    private ClusterScheduler _scheduler = new();
    private ClusterSpec _cluster = new();
    private readonly Dictionary<string, string> _queuePartitions = new(StringComparer.Ordinal);
    private ExecutorCluster? _discovered;
    private DateTimeOffset _nextDiscovery;
    private Task<ExecutorCluster?>? _discovery;
    private ClusterSnapshot _snapshot = ClusterSnapshot.Empty;
    private Dictionary<string, (double Cpu, long Memory)> _usage = [];
    private long _lastUsageSample;

    /// <summary>Creates the service; call <see cref="StartAsync"/> before use.</summary>
    public JobController(IDbContextFactory<JobsDbContext> db, IExecutor executor, JobOptions options, string dataDirectory, TimeProvider time, JobMetrics metrics, ILogger<JobController> logger)
    {
        _db = db;
        _executor = executor;
        _options = options;
        _dataDir = dataDirectory;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _metrics.Observe(() => _snapshot);
        _control = new ControlLoop(_gate, StepAsync, NextWait, options.Tick, e => LoopFailed(_logger, e));
    }

    /// <summary>The control plane's address, given to tasks as <c>AIMASS_SERVER</c>.</summary>
    public Uri? ServerAddress { get; set; }

    /// <summary>Where tasks run (<c>local</c>, <c>slurm</c>).</summary>
    public string ExecutorName => _executor.Name;

    /// <summary>The policy in force.</summary>
    public SchedulerPolicy Policy => _scheduler.Policy;

    /// <summary>Creates the tables, declares the cluster, recovers jobs left by the previous run and starts the loop.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using (var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false))
        {
            await db.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
        }
        _cluster = await LoadClusterAsync(cancellationToken).ConfigureAwait(false);
        _scheduler = new ClusterScheduler(_cluster.Policy, _time);
        _cluster.ApplyTo(_scheduler);
        if (_discovered is { DelegatesScheduling: false } discovered)
        {
            SyncNodes(discovered);
        }
        _nextDiscovery = _time.GetUtcNow() + _options.DiscoveryInterval;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await RecoverAsync(cancellationToken).ConfigureAwait(false);
            Publish();
        }
        finally
        {
            _gate.Release();
        }
        _control.Start();
    }

    /// <summary>Stops the loop. Running tasks keep running; the next start finds them again.</summary>
    public Task StopAsync() => _control.StopAsync();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _control.Dispose();
        _gate.Dispose();
    }

    private async Task<ClusterSpec> LoadClusterAsync(CancellationToken cancellationToken)
    {
        ClusterSpec? declared = null;
        if (_options.ClusterFile is { } file)
        {
            string text;
            try
            {
                text = await File.ReadAllTextAsync(file, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new SpecException(file, [new SpecError("", 0, 0, $"cannot read the cluster file: {e.Message}")]);
            }
            declared = ClusterSpecReader.Parse(text, file);
        }
        ExecutorCluster? discovered;
        try
        {
            discovered = await _executor.DiscoverAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            throw new InvalidOperationException($"cannot read the {_executor.Name} cluster's nodes and partitions: {e.Message}", e);
        }
        if (discovered is not null)
        {
            if (declared is { Nodes.Count: > 0 } or { Pools.Count: > 0 })
            {
                throw new SpecException(_options.ClusterFile!, [new SpecError("nodes", 0, 0,
                    $"with the {_executor.Name} backend, nodes and pools come from {_executor.Name}; the cluster file may only set the policy and queues")]);
            }
            _discovered = discovered;
            return ManagedCluster(discovered, declared);
        }
        if (declared is not null)
        {
            return declared;
        }
        var machine = LocalMachine.Describe();
        return new ClusterSpec
        {
            Nodes = [new NodeSpec("local", "local", machine.Capacity) { GpuModel = machine.GpuModel, GpuMemoryBytes = machine.GpuMemoryBytes }],
        };
    }

    /// <summary>The partition jobs of the <c>default</c> queue go to (listed first by the backend).</summary>
    private static string? DefaultPartition(ExecutorCluster discovered) => discovered.Partitions.Count > 0 ? discovered.Partitions[0].Name : null;

    /// <summary>The label every node of a backend's partition carries (<c>partition.NAME: "true"</c>).</summary>
    private static string PartitionLabel(string partition) => "partition." + partition;

    /// <summary>
    /// The cluster a backend owns (Slurm), as AI Mass's scheduler sees it: its partitions as pools and queues, its
    /// nodes read-only. When the backend does the scheduling, each partition is one node of unbounded size, so every
    /// job is submitted at once and waits in the backend's own queue.
    /// </summary>
    private ClusterSpec ManagedCluster(ExecutorCluster discovered, ClusterSpec? declared)
    {
        var defaultPartition = DefaultPartition(discovered) ?? throw new InvalidOperationException($"the {_executor.Name} cluster has no partition");
        var queues = (declared?.Queues ?? []).ToList();
        foreach (var partition in discovered.Partitions.Where(p => p.Name != JobDefaults.Queue && queues.All(q => q.Name != p.Name)))
        {
            queues.Add(new QueueSpec(partition.Name));
        }
        _queuePartitions.Clear();
        foreach (var queue in queues.Select(q => q.Name).Append(JobDefaults.Queue))
        {
            _queuePartitions[queue] = discovered.QueuePartitions.GetValueOrDefault(queue)
                ?? (discovered.Partitions.Any(p => p.Name == queue) ? queue : defaultPartition);
        }
        List<NodeSpec> nodes;
        if (discovered.DelegatesScheduling)
        {
            nodes = discovered.Partitions.Select(p =>
            {
                var total = discovered.Nodes.Where(n => n.Partitions.Contains(p.Name)).Aggregate(ResourceVector.Zero, (sum, n) => sum + n.Capacity);
                return new NodeSpec(VirtualNode(p.Name), p.Name, total * 1000) { Labels = new Dictionary<string, string> { [PartitionLabel(p.Name)] = "true" } };
            }).ToList();
        }
        else
        {
            nodes = discovered.Nodes.Select(n => NodeSpecOf(n, defaultPartition)).ToList();
        }
        return new ClusterSpec { Policy = declared?.Policy ?? new SchedulerPolicy(), Queues = queues, Nodes = nodes };
    }

    /// <summary>The node that stands for a whole partition when the backend does the scheduling.</summary>
    private static string VirtualNode(string partition) => "partition:" + partition;

    /// <summary>A backend's node as the scheduler sees it: its pool is its default partition (else its first one).</summary>
    private static NodeSpec NodeSpecOf(ExecutorNode node, string defaultPartition)
    {
        var labels = node.Partitions.ToDictionary(PartitionLabel, _ => "true", StringComparer.Ordinal);
        foreach (var feature in node.Features)
        {
            labels[feature] = "true";
        }
        var pool = node.Partitions.Contains(defaultPartition) || node.Partitions.Count == 0 ? defaultPartition : node.Partitions[0];
        return new NodeSpec(node.Name, pool, node.Capacity) { Labels = labels, GpuModel = node.GpuModel };
    }

    /// <summary>Applies a discovery to the scheduler (not for a backend that schedules: its nodes stand for partitions).</summary>
    private void ApplyDiscovery(Step step, ExecutorCluster discovered)
    {
        _discovered = discovered;
        if (!discovered.DelegatesScheduling)
        {
            SyncNodes(discovered);
            DrainSchedulerEvents(step);
        }
    }

    /// <summary>
    /// The backend's node states (drained, down, back) in the scheduler: an unavailable node takes no new work, and
    /// what runs there is left to the backend, which reports how it ends. New nodes join.
    /// </summary>
    private void SyncNodes(ExecutorCluster discovered)
    {
        var defaultPartition = DefaultPartition(discovered) ?? _executor.Name;
        foreach (var node in discovered.Nodes)
        {
            var wanted = node.Available ? NodeState.Up : NodeState.Draining;
            var known = _scheduler.GetNode(node.Name);
            if (known is null)
            {
                _scheduler.AddNode(NodeSpecOf(node, defaultPartition), wanted);
            }
            else if (known.State != wanted)
            {
                _scheduler.SetNodeState(node.Name, wanted, $"{_executor.Name}: {node.State}" + (node.Available || node.Reason is null ? "" : $" ({node.Reason})"));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------- API

    /// <summary>Validates and queues a job spec (YAML or JSON).</summary>
    public async Task<JobInfo> SubmitAsync(string specText, string source, CancellationToken cancellationToken, string? submitter = null)
    {
        var parsed = JobSpecReader.Parse(specText, source);
        // Jobs are accounted to the spec's owner, else to whoever submitted them.
        var spec = parsed.Owner is null && !string.IsNullOrWhiteSpace(submitter) ? parsed with { Owner = submitter } : parsed;
        var now = _time.GetUtcNow();
        var owner = spec.Owner ?? "anonymous";
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            try
            {
                _scheduler.Check(Request(0, spec, now));
            }
            catch (SchedulingException e)
            {
                throw JobsException.Invalid(e.Field ?? "resources", e.Message);
            }
            var row = new JobRow
            {
                Name = spec.Name,
                SpecText = specText,
                Queue = spec.Queue,
                Owner = owner,
                Priority = spec.Priority,
                State = JobState.Queued,
                Reason = "waiting for the next scheduling pass",
                SubmittedAtMs = now.ToUnixTimeMilliseconds(),
            };
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            db.Jobs.Add(row);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            var job = new ActiveJob(row, spec) { QueuedSince = now };
            _scheduler.Submit(Request(row.Id, spec, now));
            _jobs[row.Id] = job;
            _specs[row.Id] = spec;
            db.Events.Add(Event(row.Id, null, "submitted", $"job {row.Id} submitted to queue {spec.Queue} by {owner}: {spec.Replicas} task(s) of {spec.Resources}"));
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            Publish();
            Wake();
            return ToInfo(row, [], spec);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Validates a job spec as <see cref="SubmitAsync"/> would (fields, and whether the cluster could ever run it) without submitting it.</summary>
    public async Task CheckAsync(string specText, string source, CancellationToken cancellationToken)
    {
        var spec = JobSpecReader.Parse(specText, source);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _scheduler.Check(Request(0, spec, _time.GetUtcNow()));
        }
        catch (SchedulingException e)
        {
            throw JobsException.Invalid(e.Field ?? "resources", e.Message);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>One job, or null.</summary>
    public async Task<JobInfo?> GetAsync(long id, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, cancellationToken).ConfigureAwait(false);
        if (row is null)
        {
            return null;
        }
        var tasks = await db.Tasks.AsNoTracking().Where(t => t.JobId == id && t.Attempt == row.Attempt).OrderBy(t => t.TaskIndex)
            .ToListAsync(cancellationToken).ConfigureAwait(false);
        return ToInfo(row, tasks, null);
    }

    /// <summary>Jobs, newest first, filtered by state, queue and owner.</summary>
    public async Task<Page<JobInfo>> ListAsync(JobState? state, string? queue, string? owner, int pageSize, string? pageToken, CancellationToken cancellationToken)
    {
        if (pageSize is < 1 or > 1000)
        {
            throw JobsException.Invalid("page_size", $"page_size must be between 1 and 1000 (got {pageSize})");
        }
        long? before = null;
        if (pageToken is not null)
        {
            if (!long.TryParse(pageToken, NumberStyles.None, CultureInfo.InvariantCulture, out var b))
            {
                throw JobsException.Invalid("page_token", "page_token is not one this server issued");
            }
            before = b;
        }
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var query = db.Jobs.AsNoTracking();
        if (state is { } s)
        {
            query = query.Where(j => j.State == s);
        }
        if (queue is not null)
        {
            query = query.Where(j => j.Queue == queue);
        }
        if (owner is not null)
        {
            query = query.Where(j => j.Owner == owner);
        }
        if (before is { } id)
        {
            query = query.Where(j => j.Id < id);
        }
        var rows = await query.OrderByDescending(j => j.Id).Take(pageSize + 1).ToListAsync(cancellationToken).ConfigureAwait(false);
        var more = rows.Count > pageSize;
        if (more)
        {
            rows.RemoveAt(rows.Count - 1);
        }
        var ids = rows.Select(r => r.Id).ToList();
        var tasks = await db.Tasks.AsNoTracking().Where(t => ids.Contains(t.JobId)).ToListAsync(cancellationToken).ConfigureAwait(false);
        var byJob = tasks.ToLookup(t => t.JobId);
        var items = rows.Select(r => ToInfo(r, byJob[r.Id].Where(t => t.Attempt == r.Attempt).OrderBy(t => t.TaskIndex).ToList(), null)).ToList();
        return new Page<JobInfo>(items, more ? rows[^1].Id.ToString(CultureInfo.InvariantCulture) : null);
    }

    /// <summary>Cancels a job: a queued one at once, a running one by stopping its tasks (SIGTERM, SIGKILL after the grace period).</summary>
    public async Task<JobInfo> CancelAsync(long id, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_jobs.TryGetValue(id, out var job))
            {
                var existing = await GetAsync(id, cancellationToken).ConfigureAwait(false)
                    ?? throw JobsException.NotFound($"job {id} does not exist");
                throw JobsException.Conflict($"job {id} has already ended ({existing.State.ToString().ToLowerInvariant()})");
            }
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            var step = new Step(db, _time.GetUtcNow());
            job.Row.CancelRequested = true;
            step.Dirty(job);
            if (job.Row.State == JobState.Queued)
            {
                _scheduler.Release(id);
                Finish(step, job, JobState.Cancelled, "cancelled before it started");
            }
            else
            {
                BeginStop(step, job, StopKind.Cancel, "cancelled by a user", null);
            }
            await step.SaveAsync(cancellationToken).ConfigureAwait(false);
            Publish();
            Wake();
            return (await GetAsync(id, cancellationToken).ConfigureAwait(false))!;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Events of one job (or of the cluster when <paramref name="jobId"/> is null), oldest first, after an event id.</summary>
    public async Task<IReadOnlyList<JobEventInfo>> EventsAsync(long? jobId, long after, int limit, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        if (jobId is { } id && !await db.Jobs.AnyAsync(j => j.Id == id, cancellationToken).ConfigureAwait(false))
        {
            throw JobsException.NotFound($"job {id} does not exist");
        }
        var query = db.Events.AsNoTracking().Where(e => e.Id > after);
        query = jobId is null ? query : query.Where(e => e.JobId == jobId);
        var rows = await query.OrderBy(e => e.Id).Take(Math.Clamp(limit, 1, 10_000)).ToListAsync(cancellationToken).ConfigureAwait(false);
        return rows.Select(ToInfo).ToList();
    }

    internal static JobEventInfo ToInfo(EventRow e) =>
        new(e.Id, DateTimeOffset.FromUnixTimeMilliseconds(e.TimeMs), e.Kind, e.Message) { JobId = e.JobId, Node = e.Node, Deployment = e.Deployment };

    /// <summary>The log files of a job, attempt by attempt and task by task.</summary>
    public async Task<IReadOnlyList<LogSegment>> LogSegmentsAsync(long id, int? attempt, int? task, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, cancellationToken).ConfigureAwait(false)
            ?? throw JobsException.NotFound($"job {id} does not exist");
        if (attempt is { } a && (a < 1 || a > Math.Max(1, row.Attempt)))
        {
            throw JobsException.Invalid("attempt", row.Attempt == 0 ? $"job {id} has not started yet" : $"job {id} has attempts 1 to {row.Attempt} (got {a})");
        }
        var query = db.Tasks.AsNoTracking().Where(t => t.JobId == id);
        if (attempt is not null)
        {
            query = query.Where(t => t.Attempt == attempt);
        }
        if (task is not null)
        {
            query = query.Where(t => t.TaskIndex == task);
        }
        var rows = await query.OrderBy(t => t.Attempt).ThenBy(t => t.TaskIndex).ToListAsync(cancellationToken).ConfigureAwait(false);
        return rows.Select(t => new LogSegment(t.Attempt, t.TaskIndex, t.Node, DateTimeOffset.FromUnixTimeMilliseconds(t.StartedAtMs), t.LogPath, t.State == TaskState.Running)).ToList();
    }

    /// <summary>Records metric values a running task reports.</summary>
    public async Task ReportMetricsAsync(long id, JobMetricReport report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (report.Values is null || report.Values.Count == 0)
        {
            throw JobsException.Invalid("values", "values must name at least one metric");
        }
        foreach (var (name, value) in report.Values)
        {
            if (string.IsNullOrWhiteSpace(name) || name.Length > 128)
            {
                throw JobsException.Invalid("values", $"metric name '{name}' must be 1 to 128 characters");
            }
            if (!double.IsFinite(value))
            {
                throw JobsException.Invalid($"values.{name}", $"metric '{name}' must be a finite number");
            }
        }
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await RequireJobAsync(db, id, cancellationToken).ConfigureAwait(false);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var (name, value) in report.Values)
        {
            db.Metrics.Add(new MetricRow { JobId = id, Attempt = row.Attempt, Step = report.Step, TimeMs = now, Name = name, Value = value });
        }
        await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Metric values of a job, oldest first.</summary>
    public async Task<IReadOnlyList<JobMetricInfo>> MetricsAsync(long id, string? name, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        await RequireJobAsync(db, id, cancellationToken).ConfigureAwait(false);
        var query = db.Metrics.AsNoTracking().Where(m => m.JobId == id);
        if (name is not null)
        {
            query = query.Where(m => m.Name == name);
        }
        var rows = await query.OrderBy(m => m.Id).Take(100_000).ToListAsync(cancellationToken).ConfigureAwait(false);
        return rows.Select(m => new JobMetricInfo(m.Attempt, m.Step, DateTimeOffset.FromUnixTimeMilliseconds(m.TimeMs), m.Name, m.Value)).ToList();
    }

    /// <summary>Records a checkpoint; the next attempt of the job gets it as <c>AIMASS_RESUME_FROM</c>.</summary>
    public async Task<JobCheckpointInfo> ReportCheckpointAsync(long id, JobCheckpointReport report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (string.IsNullOrWhiteSpace(report.Path) || report.Path.Length > 4096)
        {
            throw JobsException.Invalid("path", "path must name the checkpoint (1 to 4096 characters)");
        }
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            var row = await RequireJobAsync(db, id, cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            var checkpoint = new CheckpointRow { JobId = id, Attempt = row.Attempt, Step = report.Step, Path = report.Path, TimeMs = now.ToUnixTimeMilliseconds() };
            db.Checkpoints.Add(checkpoint);
            if (_jobs.TryGetValue(id, out var job))
            {
                job.Row.ResumeFrom = report.Path; // the in-memory row is the one the loop writes back
                db.Jobs.Update(job.Row);
            }
            else
            {
                row.ResumeFrom = report.Path;
                db.Jobs.Update(row);
            }
            db.Events.Add(Event(id, null, "checkpoint", $"job {id} reported checkpoint {report.Path}" + (report.Step is { } s ? $" at step {s}" : "")));
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            return new JobCheckpointInfo(checkpoint.Id, checkpoint.Attempt, checkpoint.Step, checkpoint.Path, now);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Checkpoints of a job, oldest first.</summary>
    public async Task<IReadOnlyList<JobCheckpointInfo>> CheckpointsAsync(long id, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        await RequireJobAsync(db, id, cancellationToken).ConfigureAwait(false);
        var rows = await db.Checkpoints.AsNoTracking().Where(c => c.JobId == id).OrderBy(c => c.Id).ToListAsync(cancellationToken).ConfigureAwait(false);
        return rows.Select(c => new JobCheckpointInfo(c.Id, c.Attempt, c.Step, c.Path, DateTimeOffset.FromUnixTimeMilliseconds(c.TimeMs))).ToList();
    }

    /// <summary>Nodes with allocation and live use, as of the last pass.</summary>
    public IReadOnlyList<NodeInfo> Nodes()
    {
        var snapshot = _snapshot;
        return snapshot.Nodes.Select(n => ToInfo(n, snapshot.Usage)).ToList();
    }

    /// <summary>
    /// The cluster as a cluster file declares it, as of the last pass: the policy, the queues, the nodes of static pools
    /// (as discovered or declared) and the dynamic pools with their templates (their nodes come and go).
    /// </summary>
    public ClusterSpec CurrentCluster()
    {
        var snapshot = _snapshot;
        var dynamic = _cluster.Pools.Where(p => p.Kind == PoolKind.Dynamic).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        return _cluster with
        {
            Queues = snapshot.Queues.Select(q => q.Spec).ToList(),
            Nodes = snapshot.Nodes.Where(n => !dynamic.Contains(n.Spec.Pool)).Select(n => n.Spec).ToList(),
        };
    }

    /// <summary>Queues, as of the last pass.</summary>
    public IReadOnlyList<QueueInfo> Queues() => _snapshot.Queues
        .Select(q => new QueueInfo(q.Spec.Name, q.Spec.Weight, Snake(q.Ordering.ToString()), q.Pending, q.Running, ResourceAmounts.From(q.Allocated), q.DominantShare))
        .ToList();

    /// <summary>Drains a node, takes it down (its tasks are killed and their jobs requeued) or brings it up.</summary>
    public async Task<NodeInfo> SetNodeStateAsync(string name, string state, string? reason, CancellationToken cancellationToken)
    {
        var target = state.ToLowerInvariant() switch
        {
            "up" => NodeState.Up,
            "draining" or "drain" => NodeState.Draining,
            "down" => NodeState.Down,
            _ => throw JobsException.Invalid("state", $"state must be up, draining or down (got '{state}')"),
        };
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_scheduler.GetNode(name) is null)
            {
                throw JobsException.NotFound($"node '{name}' does not exist; nodes: {string.Join(", ", _scheduler.Nodes.Select(n => n.Spec.Name))}");
            }
            if (_discovered is not null)
            {
                throw JobsException.Invalid("state", $"node '{name}' is managed by {_executor.Name}: change its state there"
                    + (_executor.Name == "slurm" ? $" (scontrol update nodename={name} state={(target == NodeState.Up ? "resume" : target == NodeState.Draining ? "drain" : "down")} reason=...)" : "")
                    + "; AI Mass follows within Jobs:DiscoveryInterval");
            }
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            var step = new Step(db, _time.GetUtcNow());
            var affected = _scheduler.SetNodeState(name, target, reason ?? "set by an operator");
            // An operator's drain or down outlives a restart of the control plane (as in Slurm's saved state).
            var saved = await db.NodeStates.FirstOrDefaultAsync(n => n.Node == name, cancellationToken).ConfigureAwait(false);
            if (target == NodeState.Up)
            {
                if (saved is not null)
                {
                    db.NodeStates.Remove(saved);
                }
            }
            else
            {
                if (saved is null)
                {
                    saved = new NodeStateRow { Node = name };
                    db.NodeStates.Add(saved);
                }
                saved.State = target.ToString().ToLowerInvariant();
                saved.Reason = reason;
                saved.TimeMs = step.Now.ToUnixTimeMilliseconds();
            }
            foreach (var id in affected)
            {
                if (_jobs.TryGetValue(id, out var job))
                {
                    BeginStop(step, job, StopKind.Lost, $"node {name} went down", step.Now);
                }
            }
            DrainSchedulerEvents(step);
            await step.SaveAsync(cancellationToken).ConfigureAwait(false);
            Publish();
            Wake();
            return ToInfo(_scheduler.GetNode(name)!, _usage);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Whether a job is in a final state (for log following).</summary>
    public bool IsActive(long id) => _snapshot.Jobs.ContainsKey(id);

    /// <summary>Why an active job is still pending, as of the last scheduling pass (null when it runs or is unknown).</summary>
    internal string? PendingReason(long id) =>
        _snapshot.Jobs.TryGetValue(id, out var view) && view.Phase == JobPhase.Pending ? view.PendingReason ?? "waiting for the next scheduling pass" : null;

    // ---------------------------------------------------------------------------------------------------- loop

    private void Wake() => _control.Wake();

    private TimeSpan NextWait()
    {
        var now = _time.GetUtcNow();
        var next = now + _options.Tick;
        foreach (var job in _jobs.Values)
        {
            if (job.KillAt is { } kill && kill < next)
            {
                next = kill;
            }
            if (job.Row.State == JobState.Running && job.Spec.Walltime is { } w && job.StartedAt is { } started && started + w < next)
            {
                next = started + w;
            }
        }
        foreach (var ready in _provisioning.Values)
        {
            next = ready < next ? ready : next;
        }
        var wait = next - now;
        return wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait;
    }

    private async Task StepAsync(CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var step = new Step(db, _time.GetUtcNow());
        while (_exits.TryDequeue(out var exit))
        {
            HandleExit(step, exit.Job, exit.Task, exit.Exit);
        }
        CheckDeadlines(step);
        Rediscover(step);
        var started = Stopwatch.GetTimestamp();
        var pass = _scheduler.Schedule();
        _metrics.Pass(Stopwatch.GetElapsedTime(started));
        foreach (var preemption in pass.Preemptions)
        {
            if (_jobs.TryGetValue(preemption.VictimId, out var victim))
            {
                BeginStop(step, victim, StopKind.Preempted, preemption.Reason, preemption.KillDeadline);
            }
        }
        foreach (var up in pass.ScaleUps)
        {
            var delay = _cluster.ProvisioningDelays.GetValueOrDefault(up.Pool);
            foreach (var node in up.Nodes)
            {
                _provisioning[node] = step.Now + delay;
            }
        }
        foreach (var down in pass.ScaleDowns)
        {
            _provisioning.Remove(down.Node);
        }
        AddSchedulerEvents(step, pass.Events);
        // Rows (and the task rows of new attempts) are committed before any process starts, so a crash in between
        // leaves a record that recovery can match against the processes it finds.
        var launches = pass.Started.Select(s => (Job: _jobs[s.JobId], Start: s)).ToList();
        var prepared = launches.Select(l => Prepare(step, l.Job, l.Start)).ToList();
        await step.SaveAsync(cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < launches.Count; i++)
        {
            await LaunchAsync(step, launches[i].Job, prepared[i], cancellationToken).ConfigureAwait(false);
        }
        SampleUsage(step.Now);
        await step.SaveAsync(cancellationToken).ConfigureAwait(false);
        Publish();
    }

    /// <summary>Reads a backend's nodes again now and then, in the background, and applies the answer at a later step.</summary>
    private void Rediscover(Step step)
    {
        if (_discovered is null)
        {
            return;
        }
        if (_discovery is { IsCompleted: true } done)
        {
            _discovery = null;
            if (done.IsCompletedSuccessfully && done.Result is { } fresh)
            {
                ApplyDiscovery(step, fresh);
            }
            else if (done.Exception?.InnerException is { } e)
            {
                DiscoveryFailed(_logger, _executor.Name, e.Message);
            }
        }
        if (_discovery is null && step.Now >= _nextDiscovery)
        {
            _nextDiscovery = step.Now + _options.DiscoveryInterval;
            _discovery = _executor.DiscoverAsync(_control.Stopping);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot read the {Backend} cluster's nodes: {Error}")]
    private static partial void DiscoveryFailed(ILogger logger, string backend, string error);

    private void CheckDeadlines(Step step)
    {
        foreach (var job in _jobs.Values.ToList())
        {
            if (job.Row.State == JobState.Running && job.Spec.Walltime is { } w && job.StartedAt is { } started
                && step.Now >= started + w + (_executor.EnforcesWalltime ? TimeSpan.FromMinutes(Math.Ceiling(w.TotalMinutes)) - w + _options.WalltimeBackstop : TimeSpan.Zero))
            {
                BeginStop(step, job, StopKind.Walltime, $"walltime of {Quantity.FormatDuration(w)} exceeded", null);
            }
            if (job.Row.State == JobState.Stopping && job.KillAt is { } kill && step.Now >= kill && !job.Killed)
            {
                job.Killed = true;
                foreach (var task in job.Running)
                {
                    _executor.Terminate(task.Handle, kill: true);
                }
                step.Add(Event(job.Row.Id, null, "killed", $"job {job.Row.Id}: {job.Running.Count} task(s) still running after the grace period were killed (SIGKILL)"));
            }
        }
        foreach (var (node, ready) in _provisioning.ToList())
        {
            if (ready <= step.Now)
            {
                _provisioning.Remove(node);
                if (_scheduler.GetNode(node) is { State: NodeState.Provisioning })
                {
                    _scheduler.SetNodeState(node, NodeState.Up, "provisioned");
                }
            }
        }
    }

    private void HandleExit(Step step, ActiveJob job, RunningTask task, TaskExit exit)
    {
        if (!job.Running.Remove(task))
        {
            return;
        }
        var row = task.Row;
        row.State = exit.Succeeded ? TaskState.Succeeded : exit.ExitCode is null ? TaskState.Lost : TaskState.Failed;
        row.ExitCode = exit.ExitCode;
        row.ExitDescription = exit.Description;
        row.EndedAtMs = step.Now.ToUnixTimeMilliseconds();
        step.Dirty(row);
        step.Add(Event(job.Row.Id, row.Node, "task_exit", $"job {job.Row.Id} task {row.TaskIndex} (attempt {row.Attempt}, node {row.Node}) {exit.Description}"));
        if (job.Row.State == JobState.Running)
        {
            if (exit.Succeeded)
            {
                if (job.Running.Count == 0)
                {
                    _scheduler.Release(job.Row.Id);
                    Finish(step, job, JobState.Succeeded, $"all {job.Spec.Replicas} task(s) exited with code 0");
                }
                return;
            }
            var kind = exit.End switch
            {
                TaskEnd.Walltime => StopKind.Walltime,
                TaskEnd.Preempted => StopKind.Preempted,
                TaskEnd.Lost or TaskEnd.NodeFailure => StopKind.Lost,
                _ => exit.ExitCode is null ? StopKind.Lost : StopKind.TaskFailed,
            };
            BeginStop(step, job, kind, $"task {row.TaskIndex} {exit.Description}", null);
            return;
        }
        if (job.Row.State == JobState.Stopping && job.Running.Count == 0)
        {
            CompleteStop(step, job);
        }
    }

    private void BeginStop(Step step, ActiveJob job, StopKind kind, string reason, DateTimeOffset? killAt)
    {
        if (job.Row.State == JobState.Stopping)
        {
            if (kind == StopKind.Cancel)
            {
                job.StopKind = StopKind.Cancel; // whatever else was stopping it, the user now wants it gone
                job.Row.StopKind = Word(StopKind.Cancel);
                job.Row.Reason = reason;
                step.Dirty(job);
            }
            return;
        }
        if (job.Row.State != JobState.Running)
        {
            return;
        }
        job.Row.State = JobState.Stopping;
        job.StopKind = kind;
        job.Row.StopKind = Word(kind);
        job.Row.Reason = reason;
        job.KillAt = killAt ?? step.Now + _options.KillGrace;
        job.Killed = false;
        step.Dirty(job);
        var immediate = job.KillAt <= step.Now;
        foreach (var task in job.Running)
        {
            _executor.Terminate(task.Handle, kill: immediate);
        }
        job.Killed = immediate;
        step.Add(Event(job.Row.Id, null, "stopping", $"job {job.Row.Id} stopping: {reason}"
            + (job.Running.Count == 0 ? "" : immediate ? "; its tasks are killed" : $"; SIGTERM sent to {job.Running.Count} task(s), SIGKILL at {job.KillAt.Value.UtcDateTime:HH:mm:ss}Z if still running")));
        if (job.Running.Count == 0)
        {
            CompleteStop(step, job);
        }
    }

    private void CompleteStop(Step step, ActiveJob job)
    {
        var id = job.Row.Id;
        var ran = job.StartedAt is { } s ? step.Now - s : TimeSpan.Zero;
        job.KillAt = null;
        switch (job.StopKind)
        {
            case StopKind.Cancel:
                _metrics.AttemptEnded(job.Row.Queue, "cancelled", ran);
                _scheduler.Release(id);
                Finish(step, job, JobState.Cancelled, job.Row.Reason ?? "cancelled");
                return;
            case StopKind.Walltime:
                _metrics.AttemptEnded(job.Row.Queue, "walltime", ran);
                _scheduler.Release(id);
                Finish(step, job, JobState.Failed, job.Row.Reason ?? "walltime exceeded");
                return;
            case StopKind.TaskFailed when job.NoRestart || job.Row.Restarts >= job.Spec.MaxRestarts:
                _metrics.AttemptEnded(job.Row.Queue, "failed", ran);
                _scheduler.Release(id);
                Finish(step, job, JobState.Failed, job.Spec.MaxRestarts == 0 ? job.Row.Reason! : $"{job.Row.Reason} (no restart left of {job.Spec.MaxRestarts})");
                return;
            case StopKind.TaskFailed:
                _metrics.AttemptEnded(job.Row.Queue, "failed", ran);
                job.Row.Restarts++;
                // A task that keeps failing soon after it starts is restarted after a growing pause (as Kubernetes'
                // CrashLoopBackOff), so a broken command does not spin; an attempt that ran long resets the pause.
                job.QuickFailures = ran < _options.RestartBackoffReset ? job.QuickFailures + 1 : 0;
                var backoff = Backoff(job.QuickFailures);
                Requeue(step, job, $"restart {job.Row.Restarts} of {job.Spec.MaxRestarts} after {job.Row.Reason}"
                    + (job.Row.ResumeFrom is { } r ? $"; resumes from {r}" : "; no checkpoint reported, starts over")
                    + (backoff > TimeSpan.Zero ? $"; waits {backoff.TotalSeconds:0.#} s first (failure {job.QuickFailures} within {_options.RestartBackoffReset.TotalMinutes:0} min of starting)" : ""),
                    backoff > TimeSpan.Zero ? step.Now + backoff : null);
                return;
            case StopKind.Preempted:
                _metrics.AttemptEnded(job.Row.Queue, "preempted", ran);
                Requeue(step, job, $"requeued: {job.Row.Reason}");
                return;
            default:
                _metrics.AttemptEnded(job.Row.Queue, "lost", ran);
                Requeue(step, job, $"requeued: {job.Row.Reason}");
                return;
        }
    }

    private void Requeue(Step step, ActiveJob job, string reason, DateTimeOffset? notBefore = null)
    {
        // The scheduler records the "requeued" event; a job it no longer holds (lost placement after a restart) is submitted again.
        if (!_scheduler.Requeue(job.Row.Id, reason, notBefore))
        {
            if (!TrySubmit(step, job, Request(job.Row.Id, job.Spec, DateTimeOffset.FromUnixTimeMilliseconds(job.Row.SubmittedAtMs))))
            {
                return; // the cluster can no longer run it: it failed, and TrySubmit said why
            }
            step.Add(Event(job.Row.Id, null, "requeued", $"job {job.Row.Id} requeued: {reason}"));
        }
        job.Row.State = JobState.Queued;
        job.Row.Reason = reason;
        job.Row.StopKind = null;
        job.StopKind = StopKind.None;
        job.QueuedSince = step.Now;
        step.Dirty(job);
        DrainSchedulerEvents(step);
    }

    private void Finish(Step step, ActiveJob job, JobState state, string reason)
    {
        job.Row.State = state;
        job.Row.Reason = reason;
        job.Row.EndedAtMs = step.Now.ToUnixTimeMilliseconds();
        job.Row.StopKind = null;
        job.KillAt = null;
        step.Dirty(job);
        _jobs.Remove(job.Row.Id);
        _specs.TryRemove(job.Row.Id, out _);
        _metrics.Finished(job.Row.Queue, state.ToString().ToLowerInvariant());
        if (state == JobState.Succeeded && job.StartedAt is { } s)
        {
            _metrics.AttemptEnded(job.Row.Queue, "succeeded", step.Now - s);
        }
        step.Add(Event(job.Row.Id, null, state.ToString().ToLowerInvariant(), $"job {job.Row.Id} {state.ToString().ToLowerInvariant()}: {reason}"));
    }

    private Prepared Prepare(Step step, ActiveJob job, JobStart start)
    {
        var row = job.Row;
        row.Attempt++;
        row.State = JobState.Running;
        row.Reason = null;
        row.StartedAtMs = step.Now.ToUnixTimeMilliseconds();
        job.StartedAt = step.Now;
        job.Killed = false;
        step.Dirty(job);
        _metrics.Started(row.Queue, step.Now - job.QueuedSince);
        var logDir = Path.Combine(_dataDir, "jobs", row.Id.ToString(CultureInfo.InvariantCulture), "logs");
        var tasks = start.Tasks.Select(t =>
        {
            var log = Path.Combine(logDir, $"attempt-{row.Attempt}.task-{t.TaskIndex}.log");
            var taskRow = new TaskRow
            {
                JobId = row.Id,
                Attempt = row.Attempt,
                TaskIndex = t.TaskIndex,
                Node = t.Node,
                LogPath = log,
                ExitPath = log + ".exit",
                State = TaskState.Running,
                StartedAtMs = step.Now.ToUnixTimeMilliseconds(),
            };
            step.Db.Tasks.Add(taskRow);
            return taskRow;
        }).ToList();
        return new Prepared(tasks, FreePorts(tasks.Count));
    }

    private async Task LaunchAsync(Step step, ActiveJob job, Prepared prepared, CancellationToken cancellationToken)
    {
        var row = job.Row;
        var id = row.Id.ToString(CultureInfo.InvariantCulture);
        var jobDir = Path.Combine(_dataDir, "jobs", id);
        var workDir = job.Spec.WorkingDir ?? Path.Combine(jobDir, "work");
        var checkpointDir = Path.Combine(jobDir, "checkpoints");
        Directory.CreateDirectory(checkpointDir);
        var addresses = string.Join(",", prepared.Tasks.Select((t, i) => $"{_executor.NodeAddress(t.Node)}:{prepared.Ports[i].ToString(CultureInfo.InvariantCulture)}"));
        var launches = new List<TaskLaunch>(prepared.Tasks.Count);
        for (var i = 0; i < prepared.Tasks.Count; i++)
        {
            var taskRow = prepared.Tasks[i];
            var env = new Dictionary<string, string>(job.Spec.Env, StringComparer.Ordinal)
            {
                ["AIMASS_JOB_ID"] = id,
                ["AIMASS_TASK_INDEX"] = taskRow.TaskIndex.ToString(CultureInfo.InvariantCulture),
                ["AIMASS_NUM_TASKS"] = prepared.Tasks.Count.ToString(CultureInfo.InvariantCulture),
                ["AIMASS_ATTEMPT"] = row.Attempt.ToString(CultureInfo.InvariantCulture),
                ["AIMASS_NODE"] = taskRow.Node,
                ["AIMASS_NODE_ADDRESS"] = _executor.NodeAddress(taskRow.Node),
                ["AIMASS_TASK_ADDRESSES"] = addresses,
                ["AIMASS_TASK_PORT"] = prepared.Ports[i].ToString(CultureInfo.InvariantCulture),
                ["AIMASS_CHECKPOINT_DIR"] = checkpointDir,
            };
            if (ServerAddress is { } server)
            {
                env["AIMASS_SERVER"] = server.ToString().TrimEnd('/');
            }
            if (row.ResumeFrom is { } resume && row.Attempt > 1)
            {
                env["AIMASS_RESUME_FROM"] = resume;
            }
            launches.Add(new TaskLaunch(row.Id, taskRow.TaskIndex, row.Attempt, taskRow.Node, job.Spec.Command, workDir, env, taskRow.LogPath));
        }
        var gang = new GangLaunch(row.Id, row.Attempt, row.Queue, _queuePartitions.GetValueOrDefault(row.Queue), job.Spec.Resources, job.Spec.Walltime, launches);
        IReadOnlyList<TaskHandle> handles;
        try
        {
            handles = await _executor.StartAsync(gang, cancellationToken).ConfigureAwait(false);
        }
        catch (ExecutorUnavailableException e)
        {
            // The backend could not be reached (Slurm's controller down): the attempt is tried again after a pause,
            // a bounded number of times, then the job fails with the backend's own error.
            MarkNotStarted(step, prepared.Tasks, $"not submitted: {e.Message}");
            job.SubmitFailures++;
            if (job.SubmitFailures > _options.SubmitRetries)
            {
                job.NoRestart = true;
                BeginStop(step, job, StopKind.TaskFailed, $"the {_executor.Name} backend did not take the job after {job.SubmitFailures} tries: {e.Message}", step.Now);
                return;
            }
            var pause = Backoff(job.SubmitFailures, _options.SubmitRetryBackoff);
            step.Add(Event(row.Id, null, "submit_failed", $"job {row.Id}: {e.Message}; try {job.SubmitFailures + 1} of {_options.SubmitRetries + 1} in {pause.TotalSeconds:0.#} s"));
            Requeue(step, job, $"the {_executor.Name} backend is unreachable ({e.Message}); submitted again in {pause.TotalSeconds:0.#} s", step.Now + pause);
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or InvalidOperationException or ArgumentException)
        {
            // The job fails: a spec that cannot start will not start next time either.
            MarkNotStarted(step, prepared.Tasks, $"could not start: {e.Message}");
            job.NoRestart = true;
            BeginStop(step, job, StopKind.TaskFailed, $"job {row.Id} could not start: {e.Message}", step.Now);
            return;
        }
        job.SubmitFailures = 0;
        for (var i = 0; i < handles.Count; i++)
        {
            var taskRow = prepared.Tasks[i];
            taskRow.Pid = handles[i].Pid;
            taskRow.ProcessStart = handles[i].ProcessStart;
            taskRow.ExternalId = handles[i].ExternalId;
            step.Dirty(taskRow);
            Watch(job, new RunningTask(taskRow, handles[i]));
        }
        if (handles.Count > 0 && handles[0].ExternalId is { } external)
        {
            step.Add(Event(row.Id, null, "dispatched", $"job {row.Id} attempt {row.Attempt} submitted to {_executor.Name} as job {external}"));
        }
    }

    private static void MarkNotStarted(Step step, List<TaskRow> tasks, string why)
    {
        foreach (var task in tasks)
        {
            task.State = TaskState.Failed;
            task.ExitDescription = why;
            task.EndedAtMs = step.Now.ToUnixTimeMilliseconds();
            step.Dirty(task);
        }
    }

    /// <summary>The pause before try <paramref name="failures"/> + 1: <paramref name="first"/> (the restart back-off by default), doubling, capped.</summary>
    private TimeSpan Backoff(int failures, TimeSpan? first = null)
    {
        var start = first ?? _options.RestartBackoff;
        return failures <= 0 || start <= TimeSpan.Zero
            ? TimeSpan.Zero
            : TimeSpan.FromTicks(Math.Min(_options.MaxRestartBackoff.Ticks, start.Ticks << Math.Min(failures - 1, 30)));
    }

    private void Watch(ActiveJob job, RunningTask task)
    {
        job.Running.Add(task);
        _ = Task.Run(async () =>
        {
            try
            {
                var exit = await _executor.WaitAsync(task.Handle, _control.Stopping).ConfigureAwait(false);
                _exits.Enqueue((job, task, exit));
                Wake();
            }
            catch (OperationCanceledException)
            {
                // The control plane stops; the task keeps running and is found again at the next start.
            }
#pragma warning disable CA1031 // a watcher that dies silently would leave its job running forever
            catch (Exception e)
#pragma warning restore CA1031
            {
                // Kill it first: a task nobody follows must not run on while its job is requeued.
                try
                {
                    _executor.Terminate(task.Handle, kill: true);
                }
                catch (IOException)
                {
                }
                _exits.Enqueue((job, task, TaskExit.Lost($"the executor could not follow the task: {e.Message}")));
                Wake();
            }
        });
    }

    private void SampleUsage(DateTimeOffset now)
    {
        var ticks = now.UtcTicks;
        if (ticks - _lastUsageSample < _options.UsageSampleInterval.Ticks)
        {
            return;
        }
        var usage = new Dictionary<string, (double Cpu, long Memory)>(StringComparer.Ordinal);
        var seen = new HashSet<(long, int, int)>();
        foreach (var job in _jobs.Values)
        {
            foreach (var task in job.Running)
            {
                var sample = _executor.Usage(task.Handle);
                if (sample is null)
                {
                    continue;
                }
                var key = (job.Row.Id, task.Row.Attempt, task.Row.TaskIndex);
                seen.Add(key);
                var cores = 0.0;
                if (_usageSamples.TryGetValue(key, out var previous) && ticks > previous.At)
                {
                    cores = Math.Max(0, (sample.CpuSeconds - previous.Cpu) / TimeSpan.FromTicks(ticks - previous.At).TotalSeconds);
                }
                _usageSamples[key] = (ticks, sample.CpuSeconds);
                var (cpu, memory) = usage.GetValueOrDefault(task.Row.Node);
                usage[task.Row.Node] = (cpu + cores, memory + sample.ResidentBytes);
            }
        }
        foreach (var key in _usageSamples.Keys.Where(k => !seen.Contains(k)).ToList())
        {
            _usageSamples.Remove(key);
        }
        _usage = usage;
        _lastUsageSample = ticks;
    }

    // ---------------------------------------------------------------------------------------------------- recovery

    private async Task RecoverAsync(CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var step = new Step(db, _time.GetUtcNow());
        var rows = await db.Jobs.AsNoTracking()
            .Where(j => j.State == JobState.Queued || j.State == JobState.Running || j.State == JobState.Stopping)
            .OrderBy(j => j.Id).ToListAsync(cancellationToken).ConfigureAwait(false);
        var found = 0;
        var requeued = 0;
        await RestoreNodesAsync(db, rows, cancellationToken).ConfigureAwait(false);
        foreach (var row in rows)
        {
            JobSpec spec;
            try
            {
                spec = JobSpecReader.Parse(row.SpecText, $"job {row.Id}") with { Owner = row.Owner };
            }
            catch (SpecException e)
            {
                var broken = new ActiveJob(row, null!);
                Finish(step, broken, JobState.Failed, $"its spec no longer reads: {e.Message}");
                continue;
            }
            var job = new ActiveJob(row, spec) { QueuedSince = step.Now };
            var submitted = DateTimeOffset.FromUnixTimeMilliseconds(row.SubmittedAtMs);
            var request = Request(row.Id, spec, submitted);
            if (row.State == JobState.Queued)
            {
                if (TrySubmit(step, job, request))
                {
                    _jobs[row.Id] = job;
                    _specs[row.Id] = spec;
                }
                continue;
            }
            // Running or stopping: find its tasks.
            var tasks = await db.Tasks.AsNoTracking().Where(t => t.JobId == row.Id && t.Attempt == row.Attempt)
                .OrderBy(t => t.TaskIndex).ToListAsync(cancellationToken).ConfigureAwait(false);
            job.StartedAt = row.StartedAtMs is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : step.Now;
            job.StopKind = ParseStopKind(row.StopKind);
            var alive = new List<RunningTask>();
            var ended = new List<(RunningTask Task, TaskExit Exit)>();
            foreach (var t in tasks.Where(t => t.State == TaskState.Running))
            {
                var handle = new TaskHandle(row.Id, t.TaskIndex, t.Attempt, t.Node, t.Pid, t.ProcessStart, t.LogPath, t.ExitPath) { ExternalId = t.ExternalId };
                if (!handle.IsLaunched && _executor.Find(handle) is { } located)
                {
                    // Started by the previous run, which stopped before recording it: found again, not started twice.
                    handle = located;
                    t.Pid = located.Pid;
                    t.ProcessStart = located.ProcessStart;
                    t.ExternalId = located.ExternalId;
                    step.Dirty(t);
                }
                var probe = _executor.Probe(handle); // a handle never launched: each executor says it is lost
                if (probe is null)
                {
                    alive.Add(new RunningTask(t, handle));
                }
                else
                {
                    ended.Add((new RunningTask(t, handle), probe));
                }
            }
            _jobs[row.Id] = job;
            _specs[row.Id] = spec;
            var restored = false;
            if (alive.Count + ended.Count > 0)
            {
                try
                {
                    _scheduler.Restore(request, tasks.Select(t => t.Node).ToList(), job.StartedAt.Value);
                    restored = true;
                }
                catch (SchedulingException e)
                {
                    step.Add(Event(row.Id, null, "recovery", $"job {row.Id} cannot keep its placement after the restart: {e.Message}"));
                }
            }
            foreach (var task in alive)
            {
                Watch(job, task);
                found++;
            }
            foreach (var (task, exit) in ended)
            {
                job.Running.Add(task);
                _exits.Enqueue((job, task, exit));
                requeued += exit.ExitCode is null ? 1 : 0;
            }
            if (!restored)
            {
                // No task found, or its nodes are gone from the cluster: stop what still runs and requeue it.
                job.Row.State = JobState.Stopping;
                job.StopKind = StopKind.Lost;
                job.Row.StopKind = Word(StopKind.Lost);
                job.Row.Reason = alive.Count + ended.Count == 0 ? "no task of it was found after the restart" : "its placement is no longer in the cluster";
                job.KillAt = step.Now;
                job.Killed = true;
                step.Dirty(job);
                foreach (var task in alive)
                {
                    _executor.Terminate(task.Handle, kill: true);
                }
                if (job.Running.Count == 0)
                {
                    CompleteStop(step, job);
                }
                requeued++;
            }
            else if (row.CancelRequested && row.State == JobState.Running)
            {
                BeginStop(step, job, StopKind.Cancel, "cancelled by a user", null);
            }
            else if (row.State == JobState.Stopping)
            {
                job.KillAt = step.Now + _options.KillGrace;
                foreach (var task in alive)
                {
                    _executor.Terminate(task.Handle, kill: false);
                }
            }
        }
        if (rows.Count > 0)
        {
            step.Add(Event(null, null, "recovery", $"control plane started: {rows.Count} unfinished job(s) found, {found} task(s) still running and followed, {requeued} task(s) lost"));
        }
        DrainSchedulerEvents(step);
        await step.SaveAsync(cancellationToken).ConfigureAwait(false);
        Wake();
    }

    /// <summary>
    /// Brings back the dynamic nodes that running tasks were placed on (virtual nodes of this machine: their tasks
    /// still run), and the drain and down states operators set.
    /// </summary>
    private async Task RestoreNodesAsync(JobsDbContext db, List<JobRow> unfinished, CancellationToken cancellationToken)
    {
        var ids = unfinished.Where(j => j.State != JobState.Queued).Select(j => j.Id).ToList();
        var used = await db.Tasks.AsNoTracking().Where(t => ids.Contains(t.JobId) && t.State == TaskState.Running)
            .Select(t => t.Node).Distinct().ToListAsync(cancellationToken).ConfigureAwait(false);
        foreach (var node in used.Where(n => _scheduler.GetNode(n) is null).Order(StringComparer.Ordinal))
        {
            var pool = _cluster.Pools.FirstOrDefault(p => p.Kind == PoolKind.Dynamic && p.Template is not null
                && node.StartsWith(p.Name + "-", StringComparison.Ordinal) && int.TryParse(node.AsSpan(p.Name.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out _));
            if (pool is not null)
            {
                _scheduler.AddNode(pool.Template! with { Name = node, Pool = pool.Name });
            }
        }
        foreach (var saved in await db.NodeStates.AsNoTracking().ToListAsync(cancellationToken).ConfigureAwait(false))
        {
            // Jobs still placed on a node that is down are handled below like any lost placement.
            if (_scheduler.GetNode(saved.Node) is not null && Enum.TryParse<NodeState>(saved.State, ignoreCase: true, out var state))
            {
                _scheduler.SetNodeState(saved.Node, state, saved.Reason);
            }
        }
    }

    private bool TrySubmit(Step step, ActiveJob job, JobRequest request)
    {
        try
        {
            _scheduler.Submit(request);
            return true;
        }
        catch (SchedulingException e)
        {
            Finish(step, job, JobState.Failed, $"the cluster can no longer run it: {e.Message}");
            return false;
        }
    }

    // ---------------------------------------------------------------------------------------------------- helpers

    private JobRequest Request(long id, JobSpec spec, DateTimeOffset submitted) => new(id, spec.Replicas, spec.Resources)
    {
        Name = spec.Name,
        Queue = spec.Queue,
        Owner = spec.Owner ?? "anonymous",
        Priority = spec.Priority,
        Walltime = spec.Walltime,
        Preemptible = spec.Preemptible,
        // On a backend's cluster a queue's jobs run on its partition's nodes only.
        NodeSelector = _queuePartitions.TryGetValue(spec.Queue, out var partition)
            ? new Dictionary<string, string>(spec.NodeSelector, StringComparer.Ordinal) { [PartitionLabel(partition)] = "true" }
            : spec.NodeSelector,
        SubmitTime = submitted,
    };

    private static async Task<JobRow> RequireJobAsync(JobsDbContext db, long id, CancellationToken cancellationToken) =>
        await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, cancellationToken).ConfigureAwait(false)
        ?? throw JobsException.NotFound($"job {id} does not exist");

    private EventRow Event(long? job, string? node, string kind, string message) =>
        new() { JobId = job, Node = node, Kind = kind, Message = message, TimeMs = _time.GetUtcNow().ToUnixTimeMilliseconds() };

    private static void AddSchedulerEvents(Step step, IReadOnlyList<SchedulerEvent> events)
    {
        foreach (var e in events)
        {
            step.Add(new EventRow { JobId = e.JobId, Node = e.Node, Kind = e.Kind, Message = e.Message, TimeMs = e.Time.ToUnixTimeMilliseconds() });
        }
    }

    private void DrainSchedulerEvents(Step step) => AddSchedulerEvents(step, _scheduler.DrainEvents());

    private void Publish()
    {
        var jobs = _scheduler.Jobs.ToDictionary(j => j.Request.Id);
        _snapshot = new ClusterSnapshot(_scheduler.Nodes, _scheduler.Queues, jobs, _scheduler.OwnerAllocations, _usage);
    }

    private JobInfo ToInfo(JobRow row, List<TaskRow> tasks, JobSpec? spec)
    {
        spec ??= _specs.TryGetValue(row.Id, out var known) ? known : TryParse(row.SpecText);
        var view = _snapshot.Jobs.GetValueOrDefault(row.Id);
        var reason = row.State == JobState.Queued && view?.PendingReason is { } pending ? pending : row.Reason;
        var external = tasks.ToDictionary(t => t, t => t.State == TaskState.Running && t.ExternalId is not null
            ? _executor.Status(new TaskHandle(row.Id, t.TaskIndex, t.Attempt, t.Node, t.Pid, t.ProcessStart, t.LogPath, t.ExitPath) { ExternalId = t.ExternalId })
            : null);
        if (row.State == JobState.Running && external.Values.FirstOrDefault(v => v?.StartsWith("PENDING", StringComparison.Ordinal) == true) is { } waiting)
        {
            reason = $"submitted; waiting in {_executor.Name}'s queue: {waiting}";
        }
        return new JobInfo
        {
            Id = row.Id,
            Name = row.Name,
            State = row.State,
            Reason = reason,
            Queue = row.Queue,
            Owner = row.Owner,
            Priority = row.Priority,
            Replicas = spec?.Replicas ?? tasks.Count,
            Resources = ResourceAmounts.From(spec?.Resources ?? ResourceVector.Zero),
            WalltimeSeconds = spec?.Walltime?.TotalSeconds,
            Preemptible = spec?.Preemptible ?? false,
            MaxRestarts = spec?.MaxRestarts ?? 0,
            Restarts = row.Restarts,
            Attempt = row.Attempt,
            Command = spec?.Command ?? [],
            SubmittedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.SubmittedAtMs),
            StartedAt = row.StartedAtMs is { } s ? DateTimeOffset.FromUnixTimeMilliseconds(s) : null,
            EndedAt = row.EndedAtMs is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null,
            ExpectedStart = row.State == JobState.Queued ? view?.ExpectedStart : null,
            ResumeFrom = row.ResumeFrom,
            Tasks = tasks.Select(t => new TaskInfo(t.TaskIndex, t.Attempt, t.Node, t.State)
            {
                Pid = t.Pid == 0 ? null : t.Pid,
                ExternalId = t.ExternalId,
                ExternalState = external[t],
                ExitCode = t.ExitCode,
                Exit = t.ExitDescription,
                StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(t.StartedAtMs),
                EndedAt = t.EndedAtMs is { } te ? DateTimeOffset.FromUnixTimeMilliseconds(te) : null,
            }).ToList(),
        };
    }

    private static JobSpec? TryParse(string text)
    {
        try
        {
            return JobSpecReader.Parse(text);
        }
        catch (SpecException)
        {
            return null;
        }
    }

    private static NodeInfo ToInfo(NodeView n, IReadOnlyDictionary<string, (double Cpu, long Memory)> usage)
    {
        var live = usage.TryGetValue(n.Spec.Name, out var u) ? u : ((double, long)?)null;
        return new NodeInfo(n.Spec.Name, n.Spec.Pool, n.State.ToString().ToLowerInvariant(), ResourceAmounts.From(n.Spec.Capacity), ResourceAmounts.From(n.Allocated), n.Tasks)
        {
            Labels = n.Spec.Labels,
            GpuModel = n.Spec.GpuModel,
            Reason = n.Reason,
            CpuUsedCores = n.Tasks > 0 ? live?.Item1 ?? 0 : null,
            MemoryUsedBytes = n.Tasks > 0 ? live?.Item2 ?? 0 : null,
        };
    }

    /// <summary>Free TCP ports for a gang's tasks (bound and released at once; the tasks bind them moments later).</summary>
    private static int[] FreePorts(int count)
    {
        var listeners = new List<TcpListener>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var l = new TcpListener(IPAddress.Loopback, 0);
                l.Start();
                listeners.Add(l);
            }
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var l in listeners)
            {
                l.Stop();
                l.Dispose();
            }
        }
    }

    private static string Word(StopKind kind) => Snake(kind.ToString());

    private static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    private static StopKind ParseStopKind(string? text) =>
        Enum.GetValues<StopKind>().FirstOrDefault(k => Word(k) == text);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Error, Message = "job control loop step failed; it continues with the next step")]
    private static partial void LoopFailed(ILogger logger, Exception exception);

    private enum StopKind
    {
        None,
        Cancel,
        Preempted,
        Walltime,
        TaskFailed,
        Lost,
    }

    private sealed class ActiveJob(JobRow row, JobSpec spec)
    {
        public JobRow Row { get; } = row;

        public JobSpec Spec { get; } = spec;

        public List<RunningTask> Running { get; } = [];

        public StopKind StopKind { get; set; }

        public DateTimeOffset? KillAt { get; set; }

        public bool Killed { get; set; }

        /// <summary>Set when the job could not even start: a restart would fail the same way.</summary>
        public bool NoRestart { get; set; }

        /// <summary>Attempts in a row that failed soon after starting (the restart back-off grows with them).</summary>
        public int QuickFailures { get; set; }

        /// <summary>Submissions in a row the backend could not be reached for.</summary>
        public int SubmitFailures { get; set; }

        public DateTimeOffset? StartedAt { get; set; }

        public DateTimeOffset QueuedSince { get; set; }
    }

    private sealed record RunningTask(TaskRow Row, TaskHandle Handle);

    private sealed record Prepared(List<TaskRow> Tasks, int[] Ports);

    /// <summary>One step's database context, the rows it changed and the events it adds.</summary>
    private sealed class Step(JobsDbContext db, DateTimeOffset now)
    {
        private readonly HashSet<object> _dirty = new(ReferenceEqualityComparer.Instance);

        public JobsDbContext Db { get; } = db;

        public DateTimeOffset Now { get; } = now;

        public void Dirty(ActiveJob job) => _dirty.Add(job.Row);

        public void Dirty(TaskRow row) => _dirty.Add(row);

        public void Add(EventRow row) => Db.Events.Add(row);

        public async Task SaveAsync(CancellationToken cancellationToken)
        {
            foreach (var row in _dirty)
            {
                var entry = Db.Entry(row);
                if (entry.State == EntityState.Detached)
                {
                    Db.Update(row);
                }
            }
            _dirty.Clear();
            await Db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>One task's log of one attempt.</summary>
/// <param name="Attempt">Attempt number.</param>
/// <param name="Task">Task index.</param>
/// <param name="Node">Node it ran on.</param>
/// <param name="StartedAt">When it started.</param>
/// <param name="Path">The log file.</param>
/// <param name="Running">Whether the task still runs (the file may grow).</param>
public sealed record LogSegment(int Attempt, int Task, string Node, DateTimeOffset StartedAt, string Path, bool Running)
{
    /// <summary>The line that precedes the segment in combined logs.</summary>
    public string Marker => $"==> attempt {Attempt}, task {Task}, node {Node}, started {StartedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z <==";
}
