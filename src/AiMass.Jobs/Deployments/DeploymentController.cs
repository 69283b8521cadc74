using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Text.Json;
using AiMass.Deployments;
using AiMass.Jobs.Storage;
using AiMass.Registry;
using AiMass.Resources;
using AiMass.Scheduling;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AiMass.Jobs.Deployments;

/// <summary>Settings of deployments (configuration section <c>Deployments</c>).</summary>
public sealed class DeploymentOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Deployments";

    /// <summary>The program (and leading arguments) that runs <c>aimass</c>; a replica's job runs it with <c>serve ...</c>. Empty: this process's own <c>aimass</c>.</summary>
    public IList<string> ReplicaCommand { get; } = [];

    /// <summary>Time between two reconciliations (health checks, scaling, rollouts).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan Tick { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long a health check may take.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan HealthTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Failed health checks in a row after which a replica is ejected from routing.</summary>
    [Range(1, 100)]
    public int UnhealthyAfterFailures { get; set; } = 2;

    /// <summary>How long an ejected replica may stay unhealthy before it is replaced.</summary>
    public TimeSpan ReplaceUnhealthyAfter { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait for a draining replica's requests before it is stopped anyway.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a request waits for a replica to become ready (a cold start from zero) before 503.</summary>
    public TimeSpan ColdStartTimeout { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// How long the router waits on a replica that sends nothing (no answer, no progress) before it gives up on it and,
    /// when nothing reached the client yet, retries the request on another replica.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long the router keeps retrying a request on other replicas when the chosen one cannot be reached.</summary>
    public TimeSpan RetryWindow { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Restarts the executor makes of a replica whose process ended.</summary>
    [Range(0, 1000)]
    public int ReplicaMaxRestarts { get; set; } = 1000;

    /// <summary>Seed of the router's weighted choice between primary and canary (deterministic traffic splits in tests).</summary>
    public int RoutingSeed { get; set; } = 1;
}

/// <summary>Asks a replica whether it serves its model; null when it does, else what went wrong.</summary>
public interface IReplicaProbe
{
    /// <summary>Checks <c>GET {address}/v2/models/{model}/ready</c>.</summary>
    Task<string?> ProbeAsync(string address, string model, CancellationToken cancellationToken);
}

/// <summary>What the router may use for one deployment now (a snapshot; the replicas' counters are live).</summary>
/// <param name="Name">The deployment.</param>
/// <param name="Load">Its load, counted by the router.</param>
/// <param name="CanaryWeight">Percent of requests for the canary (0 when it has no ready replica).</param>
/// <param name="Primary">Ready primary replicas.</param>
/// <param name="Canary">Ready canary replicas.</param>
/// <param name="Shadow">Ready shadow replicas.</param>
public sealed record DeploymentRoute(string Name, DeploymentLoad Load, int CanaryWeight, IReadOnlyList<Replica> Primary, IReadOnlyList<Replica> Canary, IReadOnlyList<Replica> Shadow)
{
    /// <summary>True when some replica can take a request.</summary>
    public bool HasReady => Primary.Count > 0 || Canary.Count > 0;
}

/// <summary>
/// Runs deployments: keeps each one's replicas (jobs running <c>aimass serve</c>, placed by the scheduler) at the count
/// the autoscaler wants, checks their health, rolls them over to a new version without dropping requests (new replicas
/// first, old ones drained), and publishes the routes the control plane's router uses. State lives in the jobs
/// database; replicas find their way back after a restart by announcing themselves again.
/// </summary>
public sealed partial class DeploymentController : IAsyncDisposable
{
    internal const string Primary = "primary";
    internal const string CanaryRole = "canary";
    internal const string ShadowRole = "shadow";
    private static readonly string[] Roles = [Primary, CanaryRole, ShadowRole];

    private readonly IDbContextFactory<JobsDbContext> _db;
    private readonly JobController _jobs;
    private readonly ModelRegistry _registry;
    private readonly IReplicaProbe _probe;
    private readonly DeploymentOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, Live> _live = new(StringComparer.Ordinal);
    private readonly ControlLoop _control;
    private volatile Dictionary<string, DeploymentRoute> _routes = new(StringComparer.Ordinal);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Events noticed outside the loop (the router ejecting a replica, a replica announcing a restart), written by the next step.
    private readonly System.Collections.Concurrent.ConcurrentQueue<EventRow> _noticed = new();

    /// <summary>Creates the controller; call <see cref="StartAsync"/> after the job service has started.</summary>
    public DeploymentController(IDbContextFactory<JobsDbContext> db, JobController jobs, ModelRegistry registry, IReplicaProbe probe, DeploymentOptions options, TimeProvider time, ILogger<DeploymentController> logger)
    {
        _db = db;
        _jobs = jobs;
        _registry = registry;
        _probe = probe;
        _options = options;
        _time = time;
        _logger = logger;
        _control = new ControlLoop(_gate, StepAsync, () => options.Tick, options.Tick, e => Log.StepFailed(logger, e));
        DeploymentMetrics.Observe(this);
    }

    /// <summary>The settings in force.</summary>
    public DeploymentOptions Options => _options;

    /// <summary>Loads the deployments and their replicas and starts the loop.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        await using (var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false))
        {
            var replicas = await db.Replicas.AsNoTracking().ToListAsync(cancellationToken).ConfigureAwait(false);
            foreach (var row in await db.Deployments.AsNoTracking().ToListAsync(cancellationToken).ConfigureAwait(false))
            {
                var live = new Live(row, Deserialize(row.SpecJson), now);
                foreach (var r in replicas.Where(r => r.Deployment == row.Name))
                {
                    live.Replicas[r.JobId] = new Replica(r.JobId, row.Name, r.Role, r.Version, r.Draining)
                    {
                        DrainingSince = r.Draining ? now : null,
                    };
                }
                _live[row.Name] = live;
            }
        }
        Publish();
        _control.Start();
    }

    /// <summary>Stops the loop; replicas keep running and are found again at the next start.</summary>
    public Task StopAsync() => _control.StopAsync();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        DeploymentMetrics.Forget(this);
        _control.Dispose();
        _gate.Dispose();
    }

    // ---------------------------------------------------------------------------------------------------- API

    /// <summary>Creates a deployment; its replicas start at the next reconciliation.</summary>
    public async Task<DeploymentInfo> CreateAsync(DeploymentSpec spec, string? actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Validate(spec);
        await ResolveAllAsync(spec, cancellationToken).ConfigureAwait(false);
        await CheckReplicaAsync(spec, cancellationToken).ConfigureAwait(false);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_live.ContainsKey(spec.Name))
            {
                throw JobsException.Conflict($"deployment '{spec.Name}' already exists (change it with PATCH or 'aimass deployments rollout')");
            }
            var now = _time.GetUtcNow();
            var row = new DeploymentRow
            {
                Name = spec.Name,
                SpecJson = JsonSerializer.Serialize(spec, AiMassJson.Options),
                Desired = spec.MinReplicas,
                CreatedAtMs = now.ToUnixTimeMilliseconds(),
                UpdatedAtMs = now.ToUnixTimeMilliseconds(),
            };
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            db.Deployments.Add(row);
            db.Events.Add(Event(spec.Name, "deployment.created", $"deployment {spec.Name} created by {actor ?? "anonymous"}: {Describe(spec)}"));
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            var live = new Live(row, spec, now);
            lock (_live)
            {
                _live[spec.Name] = live;
            }
            Publish();
            Wake();
            return ToInfo(live);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Changes a deployment: model (rolled over), replicas, canary and weight, shadow, promotion of the canary.</summary>
    public async Task<DeploymentInfo> UpdateAsync(string name, DeploymentPatch patch, string? actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(patch);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var live = Require(name);
            var spec = live.Spec;
            if (patch.Promote)
            {
                if (spec.Canary is null)
                {
                    throw JobsException.Invalid("promote", $"deployment '{name}' has no canary to promote");
                }
                spec = spec with { Model = spec.Canary, Canary = null, CanaryWeight = 0 };
            }
            spec = spec with
            {
                Model = patch.Model ?? spec.Model,
                MinReplicas = patch.MinReplicas ?? spec.MinReplicas,
                MaxReplicas = patch.MaxReplicas ?? (patch.MinReplicas is { } min && min > spec.MaxReplicas ? min : spec.MaxReplicas),
                Canary = patch.Canary is null ? spec.Canary : patch.Canary.Length == 0 ? null : patch.Canary,
                CanaryWeight = patch.Canary is { Length: 0 } ? 0 : patch.CanaryWeight ?? (patch.Canary is { Length: > 0 } && spec.Canary is null ? 10 : spec.CanaryWeight),
                Shadow = patch.Shadow is null ? spec.Shadow : patch.Shadow.Length == 0 ? null : patch.Shadow,
                TargetInFlight = patch.TargetInFlight ?? spec.TargetInFlight,
            };
            Validate(spec);
            var versions = await ResolveAllAsync(spec, cancellationToken).ConfigureAwait(false);
            await CheckReplicaAsync(spec, cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            var row = await db.Deployments.FirstAsync(d => d.Name == name, cancellationToken).ConfigureAwait(false);
            row.SpecJson = JsonSerializer.Serialize(spec, AiMassJson.Options);
            row.UpdatedAtMs = now.ToUnixTimeMilliseconds();
            var decision = live.Autoscaler.Update(Policy(spec), now);
            row.Desired = live.Autoscaler.Desired;
            db.Events.Add(Event(name, "deployment.updated", $"deployment {name} changed by {actor ?? "anonymous"}: {Describe(spec)}"));
            if (decision is not null)
            {
                db.Events.Add(Event(name, "deployment.scaled", $"{decision.From} -> {decision.To} replicas: {decision.Reason}"));
            }
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            live.Row.UpdatedAtMs = row.UpdatedAtMs;
            live.Spec = spec;
            // The versions now wanted, at once: until the next step a rollout would otherwise read as already done.
            foreach (var (role, version) in versions)
            {
                live.Versions[role] = version;
            }
            Publish();
            Wake();
            return ToInfo(live);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Deletes a deployment: routing stops at once, replicas are drained and stopped, then the record goes.</summary>
    public async Task<DeploymentInfo> DeleteAsync(string name, string? actor, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var live = Require(name);
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            var row = await db.Deployments.FirstAsync(d => d.Name == name, cancellationToken).ConfigureAwait(false);
            row.Deleting = true;
            db.Events.Add(Event(name, "deployment.deleting", $"deployment {name} deleted by {actor ?? "anonymous"}: draining {live.Replicas.Count} replica(s)"));
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            live.Row.Deleting = true;
            Publish();
            Wake();
            return ToInfo(live);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>One deployment, or null.</summary>
    public DeploymentInfo? Get(string name)
    {
        lock (_live)
        {
            return _live.TryGetValue(name, out var live) ? ToInfo(live) : null;
        }
    }

    /// <summary>Deployments sorted by name, a page at a time (the token is the last name of the previous page).</summary>
    public Page<DeploymentInfo> List(int pageSize, string? pageToken)
    {
        if (pageSize is < 1 or > 1000)
        {
            throw JobsException.Invalid("page_size", "page_size must be 1 to 1000");
        }
        lock (_live)
        {
            var items = _live.Values.Where(l => pageToken is null || string.CompareOrdinal(l.Spec.Name, pageToken) > 0)
                .OrderBy(l => l.Spec.Name, StringComparer.Ordinal).Take(pageSize + 1).Select(ToInfo).ToList();
            var more = items.Count > pageSize;
            return new Page<DeploymentInfo>(items.Take(pageSize).ToList(), more ? items[pageSize - 1].Name : null);
        }
    }

    /// <summary>Events of one deployment, oldest first, after an event id.</summary>
    public async Task<IReadOnlyList<JobEventInfo>> EventsAsync(string name, long after, int limit, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        if (!_live.ContainsKey(name) && !await db.Events.AnyAsync(e => e.Deployment == name, cancellationToken).ConfigureAwait(false))
        {
            throw JobsException.NotFound($"deployment '{name}' does not exist");
        }
        var rows = await db.Events.AsNoTracking().Where(e => e.Deployment == name && e.Id > after).OrderBy(e => e.Id)
            .Take(Math.Clamp(limit, 1, 10_000)).ToListAsync(cancellationToken).ConfigureAwait(false);
        return rows.Select(JobController.ToInfo).ToList();
    }

    /// <summary>A replica tells where it listens (again after each restart, and periodically as a heartbeat).</summary>
    public void Announce(string name, ReplicaAnnouncement announcement)
    {
        ArgumentNullException.ThrowIfNull(announcement);
        if (!Uri.TryCreate(announcement.Address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw JobsException.Invalid("address", $"'{announcement.Address}' is not an http(s) URL");
        }
        lock (_live)
        {
            if (!_live.TryGetValue(name, out var live))
            {
                throw JobsException.NotFound($"deployment '{name}' does not exist");
            }
            if (!live.Replicas.TryGetValue(announcement.JobId, out var replica))
            {
                throw JobsException.NotFound($"job {announcement.JobId} is not a replica of deployment '{name}'");
            }
            var address = uri.GetLeftPart(UriPartial.Authority);
            if (announcement.Attempt < replica.Attempt || (announcement.Attempt == replica.Attempt && replica.Address == address))
            {
                return;
            }
            if (replica.Address is not null)
            {
                _noticed.Enqueue(Event(name, "replica.restarted", $"{replica.Role} replica job {replica.JobId} is back (attempt {announcement.Attempt}) at {address}", replica.JobId));
            }
            replica.Attempt = announcement.Attempt;
            replica.SetAddress(address);
            if (replica.State != ReplicaState.Draining)
            {
                replica.SetState(ReplicaState.Starting);
                replica.Failures = 0;
            }
        }
        Wake();
    }

    /// <summary>The routes of a deployment that exists and is not being deleted.</summary>
    public DeploymentRoute? Route(string name) => _routes.GetValueOrDefault(name);

    /// <summary>Completes at the next change of the routes (a replica became ready or left).</summary>
    public Task RoutesChanged => Volatile.Read(ref _changed).Task;

    /// <summary>Asks for a reconciliation now (a request is waiting for a cold start).</summary>
    public void Wake() => _control.Wake();

    /// <summary>The router could not reach a replica: eject it now rather than at the next failed health check.</summary>
    public void ReportUnreachable(Replica replica, string error)
    {
        ArgumentNullException.ThrowIfNull(replica);
        if (replica.State == ReplicaState.Ready)
        {
            replica.SetState(ReplicaState.Unhealthy);
            replica.LastError = error;
            replica.Failures = _options.UnhealthyAfterFailures;
            replica.UnhealthySince ??= _time.GetUtcNow();
            _noticed.Enqueue(Event(replica.Deployment, "replica.ejected", $"{replica.Role} replica job {replica.JobId} ejected from routing: a request could not reach it ({error})", replica.JobId));
            Publish();
            Wake();
        }
    }

    // ---------------------------------------------------------------------------------------------------- loop

    private async Task StepAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        List<Live> all;
        lock (_live)
        {
            all = [.. _live.Values];
        }
        while (_noticed.TryDequeue(out var noticed))
        {
            db.Events.Add(noticed);
        }
        await Task.WhenAll(all.SelectMany(l => l.Replicas.Values.Select(r => ProbeAsync(l, r, now, db, cancellationToken)))).ConfigureAwait(false);
        foreach (var live in all)
        {
            await ReconcileAsync(db, live, now, cancellationToken).ConfigureAwait(false);
        }
        await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
        lock (_live)
        {
            foreach (var gone in all.Where(l => l.Gone))
            {
                _live.Remove(gone.Spec.Name);
            }
        }
        Publish();
    }

    private async Task ProbeAsync(Live live, Replica replica, DateTimeOffset now, JobsDbContext db, CancellationToken cancellationToken)
    {
        if (replica.Address is not { } address || replica.State == ReplicaState.Draining)
        {
            return;
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.HealthTimeout);
        string? error;
        try
        {
            error = await _probe.ProbeAsync(address, live.Spec.Name, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            error = $"no answer within {_options.HealthTimeout.TotalSeconds:0.#} s";
        }
        lock (db)
        {
            if (error is null)
            {
                replica.Failures = 0;
                replica.UnhealthySince = null;
                if (replica.State != ReplicaState.Ready)
                {
                    replica.SetState(ReplicaState.Ready);
                    db.Events.Add(Event(live.Spec.Name, "replica.ready", $"{replica.Role} replica job {replica.JobId} (version {replica.Version}) ready at {address}", replica.JobId));
                }
                return;
            }
            replica.LastError = error;
            replica.Failures++;
            if (replica.State == ReplicaState.Ready && replica.Failures >= _options.UnhealthyAfterFailures)
            {
                replica.SetState(ReplicaState.Unhealthy);
                replica.UnhealthySince = now;
                db.Events.Add(Event(live.Spec.Name, "replica.ejected", $"{replica.Role} replica job {replica.JobId} ejected from routing: {error}", replica.JobId));
            }
            else if (replica.State == ReplicaState.Unhealthy)
            {
                replica.UnhealthySince ??= now;
            }
        }
    }

    private async Task ReconcileAsync(JobsDbContext db, Live live, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var name = live.Spec.Name;
        var elapsed = now - live.LastObserved;
        live.LastObserved = now;

        // Replica jobs that ended by themselves (restarts exhausted, cancelled by someone) are forgotten; new ones replace them.
        foreach (var replica in live.Replicas.Values.ToList())
        {
            if (!_jobs.IsActive(replica.JobId))
            {
                lock (_live)
                {
                    live.Replicas.Remove(replica.JobId);
                }
                var row = await db.Replicas.FindAsync([replica.JobId], cancellationToken).ConfigureAwait(false);
                if (row is not null)
                {
                    db.Replicas.Remove(row);
                }
                if (replica.State != ReplicaState.Draining)
                {
                    var job = await _jobs.GetAsync(replica.JobId, cancellationToken).ConfigureAwait(false);
                    db.Events.Add(Event(name, "replica.ended", $"{replica.Role} replica job {replica.JobId} ended ({job?.State.ToString().ToLowerInvariant() ?? "gone"}{(job?.Reason is { } why ? ": " + why : "")}); a new one replaces it", replica.JobId));
                }
            }
        }

        if (live.Row.Deleting)
        {
            foreach (var replica in live.Replicas.Values)
            {
                await DrainAsync(db, live, replica, "the deployment is deleted", now, cancellationToken).ConfigureAwait(false);
            }
            await StopDrainedAsync(db, live, now, cancellationToken).ConfigureAwait(false);
            if (live.Replicas.Count == 0)
            {
                var row = await db.Deployments.FindAsync([name], cancellationToken).ConfigureAwait(false);
                if (row is not null)
                {
                    db.Deployments.Remove(row);
                }
                db.Events.Add(Event(name, "deployment.deleted", $"deployment {name} deleted: every replica stopped"));
                live.Gone = true; // forgotten once this step is stored
            }
            return;
        }

        live.Message = null;
        foreach (var role in Roles)
        {
            live.Versions[role] = live.Reference(role) is { } reference
                ? await ResolveAsync(live, reference, live.Version(role), cancellationToken).ConfigureAwait(false)
                : null;
        }

        var load = live.Load;
        var decision = live.Autoscaler.Observe(now, load.TakeConcurrency(elapsed), load.Waiting > 0);
        if (decision is not null)
        {
            db.Events.Add(Event(name, "deployment.scaled", $"{decision.From} -> {decision.To} replicas: {decision.Reason}"));
            var row = await db.Deployments.FindAsync([name], cancellationToken).ConfigureAwait(false);
            if (row is not null)
            {
                row.Desired = decision.To;
            }
        }
        foreach (var role in Roles)
        {
            await ReconcileTrackAsync(db, live, role, live.Reference(role), live.Version(role), live.Wanted(role), now, cancellationToken).ConfigureAwait(false);
        }
        await StopDrainedAsync(db, live, now, cancellationToken).ConfigureAwait(false);
    }

    private async Task<int?> ResolveAsync(Live live, string reference, int? previous, CancellationToken cancellationToken)
    {
        try
        {
            return await ResolveAsync(reference, cancellationToken).ConfigureAwait(false);
        }
        catch (AiMassException e)
        {
            live.Message = $"{reference}: {e.Message}" + (previous is { } p ? $"; version {p.ToString(CultureInfo.InvariantCulture)} stays" : "");
            return previous;
        }
    }

    /// <summary>
    /// Keeps <paramref name="desired"/> replicas of <paramref name="version"/> for one role. Replicas of another version
    /// (a rollover) are drained only as new ones become ready, so capacity never drops below what was serving.
    /// </summary>
    private async Task ReconcileTrackAsync(JobsDbContext db, Live live, string role, string? reference, int? version, int desired, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var mine = live.Replicas.Values.Where(r => r.Role == role && r.State != ReplicaState.Draining).ToList();
        if (reference is null || version is null)
        {
            foreach (var r in mine.Where(_ => reference is null))
            {
                await DrainAsync(db, live, r, $"the {role} was removed", now, cancellationToken).ConfigureAwait(false);
            }
            return;
        }
        // An ejected replica that stays unhealthy is replaced.
        foreach (var r in mine.Where(r => r.State == ReplicaState.Unhealthy && now - r.UnhealthySince >= _options.ReplaceUnhealthyAfter).ToList())
        {
            await DrainAsync(db, live, r, $"unhealthy for {_options.ReplaceUnhealthyAfter.TotalSeconds:0} s ({r.LastError})", now, cancellationToken).ConfigureAwait(false);
            mine.Remove(r);
        }
        var current = mine.Where(r => r.Version == version).ToList();
        var old = mine.Where(r => r.Version != version).ToList();
        for (var i = current.Count; i < desired; i++)
        {
            try
            {
                current.Add(await StartReplicaAsync(db, live, role, reference, version.Value, old.Count > 0, now, cancellationToken).ConfigureAwait(false));
            }
            catch (AiMassException e) when (e.Status is >= 400 and < 500)
            {
                // The cluster changed since the deployment was checked (a queue or node gone): say so once, try again later.
                var message = $"{role} replica cannot be submitted: {e.Message}";
                if (live.SubmitError != message)
                {
                    db.Events.Add(Event(live.Spec.Name, "replica.refused", message));
                    live.SubmitError = message;
                }
                live.Message = message;
                break;
            }
            live.SubmitError = null;
        }
        foreach (var extra in current.OrderBy(r => r.State == ReplicaState.Ready ? 1 : 0).ThenBy(r => r.InFlight).Take(Math.Max(0, current.Count - desired)).ToList())
        {
            await DrainAsync(db, live, extra, $"scaled down to {desired}", now, cancellationToken).ConfigureAwait(false);
        }
        var readyNew = current.Count(r => r.State == ReplicaState.Ready);
        var keepOld = Math.Max(0, Math.Min(desired, old.Count) - readyNew);
        foreach (var r in old.OrderBy(r => r.State == ReplicaState.Ready ? 1 : 0).ThenBy(r => r.InFlight).Take(old.Count - keepOld).ToList())
        {
            await DrainAsync(db, live, r, $"replaced by version {version.Value.ToString(CultureInfo.InvariantCulture)}", now, cancellationToken).ConfigureAwait(false);
        }
        if (current.Any(r => r.State == ReplicaState.Starting) && live.Message is null)
        {
            var waiting = current.Where(r => r.State == ReplicaState.Starting).Select(r => _jobs.PendingReason(r.JobId)).FirstOrDefault(p => p is not null);
            live.Message = waiting is null ? $"{role} replicas starting" : $"{role} replica queued: {waiting}";
        }
    }

    private async Task<Replica> StartReplicaAsync(JobsDbContext db, Live live, string role, string reference, int version, bool rollover, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var spec = live.Spec;
        var model = VersionRef.Parse(reference).Model;
        var info = await _jobs.SubmitAsync(ReplicaJob(spec, role, model, version), $"deployment {spec.Name}", cancellationToken, $"deployment:{spec.Name}").ConfigureAwait(false);
        db.Replicas.Add(new ReplicaRow { JobId = info.Id, Deployment = spec.Name, Role = role, Version = version, CreatedAtMs = now.ToUnixTimeMilliseconds() });
        db.Events.Add(Event(spec.Name, "replica.started", $"{role} replica job {info.Id} submitted for {model}@{version}{(rollover ? " (rolling over)" : "")}", info.Id));
        var replica = new Replica(info.Id, spec.Name, role, version, false);
        lock (_live)
        {
            live.Replicas[info.Id] = replica;
        }
        return replica;
    }

    /// <summary>The job spec (JSON) of one replica: <c>aimass serve</c> with the deployment's resources and placement.</summary>
    private string ReplicaJob(DeploymentSpec spec, string role, string model, int version)
    {
        var command = ReplicaCommand().Concat(
        [
            "serve", $"{spec.Name}={model}@{version.ToString(CultureInfo.InvariantCulture)}", "--port", "0", "--host", "node", "--deployment", spec.Name,
            "--max-batch-size", spec.MaxBatchSize.ToString(CultureInfo.InvariantCulture),
            "--max-queue-delay-us", spec.MaxQueueDelayUs.ToString(CultureInfo.InvariantCulture),
            "--threads", spec.Threads.ToString(CultureInfo.InvariantCulture),
        ]).ToList();
        var job = new Dictionary<string, object?>
        {
            ["name"] = $"{spec.Name}-{role}",
            ["command"] = command,
            ["resources"] = new Dictionary<string, object> { ["cpu"] = spec.Cpu, ["memory"] = spec.Memory, ["gpu"] = spec.Gpus },
            ["priority"] = spec.Priority,
            ["max_restarts"] = _options.ReplicaMaxRestarts,
            ["node_selector"] = spec.NodeSelector,
        };
        if (spec.Queue is { } queue)
        {
            job["queue"] = queue;
        }
        return JsonSerializer.Serialize(job);
    }

    /// <summary>Whether the cluster could ever run a replica of <paramref name="spec"/> (resources, queue, node selector).</summary>
    private Task CheckReplicaAsync(DeploymentSpec spec, CancellationToken cancellationToken) =>
        _jobs.CheckAsync(ReplicaJob(spec, Primary, VersionRef.Parse(spec.Model).Model, 1), $"deployment {spec.Name}", cancellationToken);

    private async Task DrainAsync(JobsDbContext db, Live live, Replica replica, string why, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (replica.State == ReplicaState.Draining)
        {
            return;
        }
        replica.SetState(ReplicaState.Draining);
        replica.DrainingSince = now;
        var row = await db.Replicas.FindAsync([replica.JobId], cancellationToken).ConfigureAwait(false);
        if (row is not null)
        {
            row.Draining = true;
        }
        db.Events.Add(Event(live.Spec.Name, "replica.draining", $"{replica.Role} replica job {replica.JobId} draining: {why}", replica.JobId));
        Publish();
    }

    private async Task StopDrainedAsync(JobsDbContext db, Live live, DateTimeOffset now, CancellationToken cancellationToken)
    {
        foreach (var replica in live.Replicas.Values.Where(r => r.State == ReplicaState.Draining).ToList())
        {
            var timedOut = now - replica.DrainingSince >= _options.DrainTimeout;
            if (replica.InFlight > 0 && !timedOut)
            {
                continue;
            }
            try
            {
                await _jobs.CancelAsync(replica.JobId, cancellationToken).ConfigureAwait(false);
            }
            catch (JobsException e) when (e.Status is 404 or 409)
            {
                // Already ended.
            }
            lock (_live)
            {
                live.Replicas.Remove(replica.JobId);
            }
            var row = await db.Replicas.FindAsync([replica.JobId], cancellationToken).ConfigureAwait(false);
            if (row is not null)
            {
                db.Replicas.Remove(row);
            }
            db.Events.Add(Event(live.Spec.Name, "replica.stopped", $"{replica.Role} replica job {replica.JobId} stopped" + (replica.InFlight > 0 ? $" with {replica.InFlight} request(s) still in flight after {_options.DrainTimeout.TotalSeconds:0} s" : " after draining"), replica.JobId));
        }
    }

    private IEnumerable<string> ReplicaCommand() =>
        _options.ReplicaCommand.Count > 0
            ? _options.ReplicaCommand
            : throw new JobsException(500, ErrorCodes.FailedPrecondition, "Deployments:ReplicaCommand is not set: the control plane does not know how to start 'aimass serve'");

    // ---------------------------------------------------------------------------------------------------- routes

    private void Publish()
    {
        var routes = new Dictionary<string, DeploymentRoute>(StringComparer.Ordinal);
        bool changed;
        lock (_live)
        {
            foreach (var live in _live.Values.Where(l => !l.Row.Deleting))
            {
                var primary = Ready(live, Primary);
                var canary = Ready(live, CanaryRole);
                routes[live.Spec.Name] = new DeploymentRoute(live.Spec.Name, live.Load, canary.Count == 0 ? 0 : primary.Count == 0 ? 100 : live.Spec.CanaryWeight,
                    primary, canary, Ready(live, ShadowRole));
            }
            var before = _routes;
            changed = before.Count != routes.Count || routes.Any(r => !before.TryGetValue(r.Key, out var b) || !Same(b, r.Value));
            _routes = routes;
        }
        if (changed)
        {
            Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }

    private static bool Same(DeploymentRoute a, DeploymentRoute b) =>
        a.CanaryWeight == b.CanaryWeight && a.Primary.SequenceEqual(b.Primary) && a.Canary.SequenceEqual(b.Canary) && a.Shadow.SequenceEqual(b.Shadow);

    private static List<Replica> Ready(Live live, string role) =>
        live.Replicas.Values.Where(r => r.Role == role && r.State == ReplicaState.Ready && r.Address is not null).OrderBy(r => r.JobId).ToList();

    // ---------------------------------------------------------------------------------------------------- helpers

    private Live Require(string name) =>
        _live.TryGetValue(name, out var live) && !live.Row.Deleting ? live : throw JobsException.NotFound($"deployment '{name}' does not exist");

    private async Task<int> ResolveAsync(string reference, CancellationToken cancellationToken)
    {
        var parsed = VersionRef.Parse(reference);
        var version = await _registry.GetVersionAsync(parsed.Model, parsed.Selector ?? "latest", cancellationToken).ConfigureAwait(false);
        return version.Status == VersionStatus.Ready
            ? version.Version
            : throw new JobsException(409, ErrorCodes.FailedPrecondition, $"{parsed.Model} version {version.Version} is {version.Status.ToString().ToLowerInvariant()}, not ready");
    }

    /// <summary>The version each role's reference names now (by role); a reference that names none is a 400 naming its field.</summary>
    private async Task<Dictionary<string, int?>> ResolveAllAsync(DeploymentSpec spec, CancellationToken cancellationToken)
    {
        var versions = new Dictionary<string, int?>(StringComparer.Ordinal);
        foreach (var (role, field, reference) in new[] { (Primary, "model", spec.Model), (CanaryRole, "canary", spec.Canary), (ShadowRole, "shadow", spec.Shadow) })
        {
            if (reference is null)
            {
                versions[role] = null;
                continue;
            }
            try
            {
                versions[role] = await ResolveAsync(reference, cancellationToken).ConfigureAwait(false);
            }
            catch (AiMassException e) when (e.Status is 404 or 409)
            {
                throw JobsException.Invalid(field, $"{field} {reference}: {e.Message}");
            }
        }
        return versions;
    }

    /// <summary>Checks every field and names the first that is wrong.</summary>
    internal static void Validate(DeploymentSpec spec)
    {
        if (!Names.IsValidModelName(spec.Name))
        {
            throw JobsException.Invalid("name", $"'{spec.Name}' is not a valid deployment name (it must match {Names.ModelNamePattern})");
        }
        foreach (var (field, reference) in new[] { ("model", spec.Model), ("canary", spec.Canary), ("shadow", spec.Shadow) })
        {
            if ((reference is not null || field == "model") && !VersionRef.TryParse(reference, out _, out var error))
            {
                throw JobsException.Invalid(field, $"{field}: {error}");
            }
        }
        if (spec.MinReplicas < 0 || spec.MaxReplicas < 1 || spec.MinReplicas > spec.MaxReplicas || spec.MaxReplicas > 1000)
        {
            throw JobsException.Invalid("replicas", $"replicas {spec.MinReplicas}..{spec.MaxReplicas}: the minimum must be 0 to the maximum, the maximum 1 to 1000");
        }
        if (spec.CanaryWeight is < 0 or > 100)
        {
            throw JobsException.Invalid("canary_weight", $"canary_weight {spec.CanaryWeight} must be a percentage (0-100)");
        }
        if (spec.CanaryWeight > 0 && spec.Canary is null)
        {
            throw JobsException.Invalid("canary_weight", "canary_weight needs a canary model");
        }
        if (!Quantity.TryParseCpu(spec.Cpu, out _, out var cpuError))
        {
            throw JobsException.Invalid("cpu", $"cpu: {cpuError}");
        }
        if (!Quantity.TryParseBytes(spec.Memory, out _, out var memoryError))
        {
            throw JobsException.Invalid("memory", $"memory: {memoryError}");
        }
        if (spec.Gpus < 0)
        {
            throw JobsException.Invalid("gpus", "gpus must not be negative");
        }
        if (!(spec.TargetInFlight > 0) || double.IsInfinity(spec.TargetInFlight))
        {
            throw JobsException.Invalid("target_in_flight", "target_in_flight must be a positive number of requests");
        }
        foreach (var (field, seconds) in new[] { ("upscale_delay_seconds", spec.UpscaleDelaySeconds), ("downscale_delay_seconds", spec.DownscaleDelaySeconds), ("scale_to_zero_after_seconds", spec.ScaleToZeroAfterSeconds) })
        {
            if (!(seconds >= 0) || seconds > 7 * 24 * 3600)
            {
                throw JobsException.Invalid(field, $"{field} must be 0 to 604800 seconds");
            }
        }
        if (spec.MaxBatchSize < 1 || spec.MaxQueueDelayUs < 0 || spec.Threads < 0)
        {
            throw JobsException.Invalid("max_batch_size", "max_batch_size must be at least 1, max_queue_delay_us and threads not negative");
        }
    }

    internal static AutoscalingPolicy Policy(DeploymentSpec spec) => new()
    {
        MinReplicas = spec.MinReplicas,
        MaxReplicas = spec.MaxReplicas,
        TargetInFlight = spec.TargetInFlight,
        UpscaleDelay = TimeSpan.FromSeconds(spec.UpscaleDelaySeconds),
        DownscaleDelay = TimeSpan.FromSeconds(spec.DownscaleDelaySeconds),
        ScaleToZeroAfter = TimeSpan.FromSeconds(spec.ScaleToZeroAfterSeconds),
    };

    private static string Describe(DeploymentSpec s) =>
        $"{s.Model}, replicas {s.MinReplicas}..{s.MaxReplicas}"
        + (s.Canary is { } c ? $", canary {c} at {s.CanaryWeight}%" : "")
        + (s.Shadow is { } sh ? $", shadow {sh}" : "");

    private static DeploymentSpec Deserialize(string json) =>
        JsonSerializer.Deserialize<DeploymentSpec>(json, AiMassJson.Options) ?? throw new InvalidDataException("a deployment's stored spec is empty");

    private EventRow Event(string deployment, string kind, string message, long? job = null) =>
        new() { Deployment = deployment, JobId = job, Kind = kind, Message = message, TimeMs = _time.GetUtcNow().ToUnixTimeMilliseconds() };

    private DeploymentInfo ToInfo(Live live)
    {
        var spec = live.Spec;
        var replicas = live.Replicas.Values.ToList();
        var primaryReady = replicas.Count(r => r.Role == Primary && r.State == ReplicaState.Ready && r.Version == live.Version(Primary));
        var desired = live.Autoscaler.Desired;
        var rolling = replicas.Any(r => r.State != ReplicaState.Draining && r.Version != live.Version(r.Role));
        var state = live.Row.Deleting ? "deleting"
            : desired == 0 && replicas.All(r => r.State == ReplicaState.Draining) ? "scaled_to_zero"
            : rolling || replicas.Any(r => r.State == ReplicaState.Starting) || replicas.Count(r => r.Role == Primary && r.State != ReplicaState.Draining) < desired ? "progressing"
            : primaryReady < desired || replicas.Any(r => r.State == ReplicaState.Unhealthy) ? "degraded"
            : "ready";
        var route = _routes.GetValueOrDefault(spec.Name);
        var canaryWeight = route?.CanaryWeight ?? 0;
        // The primary always shows; a canary or shadow while it is set or still has replicas.
        var tracks = Roles.Where(role => role == Primary || live.Reference(role) is not null || replicas.Any(r => r.Role == role))
            .Select(role => new DeploymentTrackInfo(role, live.Reference(role) ?? "", live.Version(role),
                role == Primary ? 100 - canaryWeight : role == CanaryRole ? canaryWeight : 0, live.Wanted(role),
                replicas.Where(r => r.Role == role).OrderBy(r => r.JobId)
                    .Select(r => new ReplicaInfo(r.JobId, r.Version, r.State.ToString().ToLowerInvariant(), r.Address, r.InFlight, r.Requests)).ToList()))
            .ToList();
        return new DeploymentInfo
        {
            Name = spec.Name,
            Spec = spec,
            State = state,
            Message = state == "ready" ? null : live.Message ?? replicas.Select(r => r.LastError).FirstOrDefault(e => e is not null),
            DesiredReplicas = desired,
            ReadyReplicas = primaryReady,
            Tracks = tracks,
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(live.Row.CreatedAtMs),
            UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(live.Row.UpdatedAtMs),
        };
    }

    internal IEnumerable<DeploymentInfo> Snapshot()
    {
        lock (_live)
        {
            return _live.Values.Select(ToInfo).ToList();
        }
    }

    private sealed class Live(DeploymentRow row, DeploymentSpec spec, DateTimeOffset now)
    {
        public DeploymentRow Row { get; } = row;

        public DeploymentSpec Spec { get; set; } = spec;

        public ReplicaAutoscaler Autoscaler { get; } = new(Policy(spec), row.Desired, now);

        public DeploymentLoad Load { get; } = new();

        public Dictionary<long, Replica> Replicas { get; } = [];

        /// <summary>The version each role's reference resolves to (kept when the registry cannot be asked).</summary>
        public Dictionary<string, int?> Versions { get; } = new(StringComparer.Ordinal);

        public string? Message { get; set; }

        /// <summary>Why the last replica could not be submitted (an event is written when it changes).</summary>
        public string? SubmitError { get; set; }

        public DateTimeOffset LastObserved { get; set; } = now;

        public string? Reference(string role) => role switch { Primary => Spec.Model, CanaryRole => Spec.Canary, _ => Spec.Shadow };

        public int? Version(string role) => Versions.GetValueOrDefault(role);

        /// <summary>Replicas a role should have: the autoscaler's count for the primary, a share of it by weight for the canary, one shadow.</summary>
        public int Wanted(string role)
        {
            var desired = Autoscaler.Desired;
            return role == Primary ? desired
                : Reference(role) is null || desired == 0 ? 0
                : role == CanaryRole ? Math.Max(1, (int)Math.Round(desired * Spec.CanaryWeight / 100.0))
                : 1;
        }

        /// <summary>Deleted: every replica stopped; removed from memory once the step that deleted it is stored.</summary>
        public bool Gone { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3101, Level = LogLevel.Error, Message = "deployment reconciliation failed; it continues with the next tick")]
        public static partial void StepFailed(ILogger logger, Exception exception);
    }
}
