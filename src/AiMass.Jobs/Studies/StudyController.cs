using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AiMass.Jobs.Storage;
using AiMass.Registry;
using AiMass.Specs;
using AiMass.Studies;
using AiMass.Tuning;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AiMass.Jobs.Studies;

/// <summary>Settings of studies (configuration section <c>Studies</c>).</summary>
public sealed class StudyOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Studies";

    /// <summary>The program (and leading arguments) that runs <c>aimass</c>; a training objective's trial runs it with <c>train ...</c>. Empty: this process's own <c>aimass</c>.</summary>
    public IList<string> TrialCommand { get; } = [];

    /// <summary>Time between two passes over the running trials (their output, their jobs, new trials).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan Tick { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// Runs studies: asks the study's sampler for configurations, runs each as a job through the scheduler (at most
/// <c>parallel</c> at once), reads what the trial prints (<c>intermediate STEP=VALUE</c>, <c>objective=VALUE</c>,
/// <c>artifact=PATH</c>) or reports through the API, stops trials the pruner prunes, fails and retries trials whose job
/// failed or whose heartbeat stopped, and registers the best trial's model at the end. Studies, trials and their
/// values live in the jobs database; after a restart a study is rebuilt from them and continues — running trials' jobs
/// are found again and read on from where the log was left.
/// </summary>
public sealed partial class StudyController : IAsyncDisposable
{
    private const string Running = "running";
    private const string Complete = "complete";
    private const string Pruned = "pruned";
    private const string Failed = "failed";
    private const string StoppedReason = "the study was stopped";

    private readonly IDbContextFactory<JobsDbContext> _db;
    private readonly JobController _jobs;
    private readonly ModelRegistry _registry;
    private readonly StudyOptions _options;
    private readonly string _dataDir;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<long, Live> _live = [];
    private readonly ControlLoop _control;
    // Parsed specs by study id: a stored study's request never changes.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, StudySpec> _specs = new();

    /// <summary>Creates the controller; call <see cref="StartAsync"/> after the job service has started.</summary>
    public StudyController(IDbContextFactory<JobsDbContext> db, JobController jobs, ModelRegistry registry, StudyOptions options, string dataDirectory, TimeProvider time, ILogger<StudyController> logger)
    {
        _db = db;
        _jobs = jobs;
        _registry = registry;
        _options = options;
        _dataDir = dataDirectory;
        _time = time;
        _logger = logger;
        _control = new ControlLoop(_gate, StepAsync, () => options.Tick, options.Tick, e => Log.StepFailed(logger, e));
    }

    /// <summary>Rebuilds the running studies from the store and starts the loop.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using (var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false))
        {
            var active = new[] { nameof(StudyState.Running), nameof(StudyState.Stopping) };
            foreach (var row in await db.Studies.Where(s => active.Contains(s.State)).ToListAsync(cancellationToken).ConfigureAwait(false))
            {
                _live[row.Id] = await LoadAsync(db, row, cancellationToken).ConfigureAwait(false);
            }
        }
        _control.Start();
    }

    /// <summary>Stops the loop; trials keep running as jobs and are found again at the next start.</summary>
    public Task StopAsync() => _control.StopAsync();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _control.Dispose();
        _gate.Dispose();
    }

    // ---------------------------------------------------------------------------------------------------- API

    /// <summary>Creates a study from its spec; its first trials start at the next pass.</summary>
    public async Task<StudyInfo> CreateAsync(CreateStudyRequest request, string? actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var spec = Parse(request);
        // Whether the cluster could ever run a trial (resources, queue, node selector), before anything is stored.
        var sample = new Study(spec.Space, new RandomSampler()).Ask();
        await _jobs.CheckAsync(JobSpecReader.ToJson(TrialJob(spec, spec.Name, 0, sample.Params, Path.Combine(_dataDir, "studies", "check"), write: false)),
            $"study {spec.Name}", cancellationToken).ConfigureAwait(false);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            if (await db.Studies.AnyAsync(s => s.Name == spec.Name, cancellationToken).ConfigureAwait(false))
            {
                throw new JobsException(409, ErrorCodes.AlreadyExists, $"study '{spec.Name}' already exists; choose another name (--name) or look at it with 'aimass studies show {spec.Name}'", "name");
            }
            var row = new StudyRow
            {
                Name = spec.Name,
                RequestJson = JsonSerializer.Serialize(request, AiMassJson.Options),
                Owner = string.IsNullOrWhiteSpace(actor) ? "anonymous" : actor,
                State = nameof(StudyState.Running),
                Message = "starting its first trials",
                CreatedAtMs = _time.GetUtcNow().ToUnixTimeMilliseconds(),
            };
            db.Studies.Add(row);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            _specs[row.Id] = spec;
            var live = new Live(row, spec, new Study(spec.Space, spec.CreateSampler(), spec.Direction, spec.Pruner.Create(), spec.Seed));
            _live[row.Id] = live;
            Log.Created(_logger, spec.Name, spec.Sampler, spec.Trials, spec.Parallel);
            _control.Wake();
            return ToInfo(live.Row, live.Spec, live.Rows.Values, null);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Studies, newest first.</summary>
    public async Task<Page<StudyInfo>> ListAsync(StudyState? state, int pageSize, string? pageToken, CancellationToken cancellationToken)
    {
        pageSize = Math.Clamp(pageSize, 1, 1000);
        long? before = null;
        if (pageToken is not null)
        {
            before = long.TryParse(pageToken, NumberStyles.None, CultureInfo.InvariantCulture, out var b) ? b : throw JobsException.Invalid("page_token", "page_token is not one this server gave");
        }
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var query = db.Studies.AsNoTracking().AsQueryable();
        if (state is { } s)
        {
            var name = s.ToString();
            query = query.Where(r => r.State == name);
        }
        if (before is { } last)
        {
            query = query.Where(r => r.Id < last);
        }
        var rows = await query.OrderByDescending(r => r.Id).Take(pageSize + 1).ToListAsync(cancellationToken).ConfigureAwait(false);
        var items = new List<StudyInfo>();
        foreach (var row in rows.Take(pageSize))
        {
            items.Add(await InfoAsync(db, row, cancellationToken).ConfigureAwait(false));
        }
        return new Page<StudyInfo>(items, rows.Count > pageSize ? rows[pageSize - 1].Id.ToString(CultureInfo.InvariantCulture) : null);
    }

    /// <summary>A study by id or name.</summary>
    public async Task<StudyInfo> GetAsync(string study, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        return await InfoAsync(db, await FindAsync(db, study, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A study's trials by number, with their intermediate values when <paramref name="withValues"/>.</summary>
    public async Task<IReadOnlyList<TrialInfo>> TrialsAsync(string study, string? state, bool withValues, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await FindAsync(db, study, cancellationToken).ConfigureAwait(false);
        var spec = SpecOf(row);
        var trials = await db.Trials.AsNoTracking().Where(t => t.StudyId == row.Id).OrderBy(t => t.Number).ToListAsync(cancellationToken).ConfigureAwait(false);
        if (state is not null)
        {
            if (state is not (Running or Complete or Pruned or Failed))
            {
                throw JobsException.Invalid("state", $"'{state}' is not a trial state: running, complete, pruned or failed");
            }
            trials = trials.Where(t => t.State == state).ToList();
        }
        var values = await ValuesAsync(db, trials.Select(t => t.Id), cancellationToken).ConfigureAwait(false);
        return trials.Select(t => ToInfo(t, spec, values.GetValueOrDefault(t.Id) ?? [], withValues)).ToList();
    }

    /// <summary>One trial, with its intermediate values.</summary>
    public async Task<TrialInfo> TrialAsync(string study, int number, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await FindAsync(db, study, cancellationToken).ConfigureAwait(false);
        var trial = await db.Trials.AsNoTracking().FirstOrDefaultAsync(t => t.StudyId == row.Id && t.Number == number, cancellationToken).ConfigureAwait(false)
            ?? throw JobsException.NotFound($"study '{row.Name}' has no trial {number}");
        var values = await ValuesAsync(db, [trial.Id], cancellationToken).ConfigureAwait(false);
        return ToInfo(trial, SpecOf(row), values.GetValueOrDefault(trial.Id) ?? [], true);
    }

    /// <summary>The best complete trial; 404 before the first.</summary>
    public async Task<TrialInfo> BestAsync(string study, CancellationToken cancellationToken)
    {
        var info = await GetAsync(study, cancellationToken).ConfigureAwait(false);
        return info.Best ?? throw JobsException.NotFound($"study '{info.Name}' has no complete trial yet ({info.Running} running, {info.Failed} failed, {info.Pruned} pruned)");
    }

    /// <summary>The study's report: history, parallel coordinates, parameter importance.</summary>
    public async Task<StudyReport> GetReportAsync(string study, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await FindAsync(db, study, cancellationToken).ConfigureAwait(false);
        var live = await LoadAsync(db, row, cancellationToken).ConfigureAwait(false);
        return StudyReport.Of(live.Study);
    }

    /// <summary>Stops a study: its running trials' jobs are cancelled and no new trial starts.</summary>
    public async Task<StudyInfo> StopStudyAsync(string study, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            var row = await FindAsync(db, study, cancellationToken).ConfigureAwait(false);
            if (row.State is nameof(StudyState.Completed) or nameof(StudyState.Stopped))
            {
                throw JobsException.Conflict($"study '{row.Name}' has already ended ({row.State.ToLowerInvariant()})");
            }
            if (_live.TryGetValue(row.Id, out var live))
            {
                live.Row.State = nameof(StudyState.Stopping);
                live.Row.Message = "stopping its running trials";
                db.Studies.Update(live.Row);
                await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
                _control.Wake();
                return ToInfo(live.Row, live.Spec, live.Rows.Values, null);
            }
            throw JobsException.Conflict($"study '{row.Name}' is not running on this control plane");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// A trial reports a value through the API: with a step, an intermediate value (the answer says whether the pruner
    /// stopped the trial — its job is then stopped); without, its final value, taken when its job ends.
    /// </summary>
    public async Task<TrialReportResult> ReportValueAsync(string study, int number, TrialReport report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (!double.IsFinite(report.Value))
        {
            throw JobsException.Invalid("value", $"value must be a finite number (got {report.Value.ToString(CultureInfo.InvariantCulture)})");
        }
        if (report.Step is < 0)
        {
            throw JobsException.Invalid("step", "step must not be negative");
        }
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            var row = await FindAsync(db, study, cancellationToken).ConfigureAwait(false);
            if (!_live.TryGetValue(row.Id, out var live) || !live.Rows.TryGetValue(number, out var trial))
            {
                throw JobsException.NotFound($"study '{row.Name}' has no running trial {number}");
            }
            if (trial.State != Running)
            {
                return new TrialReportResult(trial.State == Pruned, trial.State);
            }
            db.Attach(trial);
            var now = _time.GetUtcNow();
            trial.HeartbeatMs = now.ToUnixTimeMilliseconds();
            var pruned = false;
            if (report.Step is { } step)
            {
                pruned = await IntermediateAsync(db, live, trial, step, report.Value, now, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                trial.Value = report.Value; // the final value (the last one wins); it counts when the trial's job ends well
            }
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            return new TrialReportResult(pruned, trial.State);
        }
        finally
        {
            _gate.Release();
        }
    }

    // ---------------------------------------------------------------------------------------------------- the loop

    private async Task StepAsync(CancellationToken cancellationToken)
    {
        foreach (var live in _live.Values.ToList())
        {
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            db.Attach(live.Row);
            foreach (var trial in live.Rows.Values.Where(t => t.State == Running).OrderBy(t => t.Number).ToList())
            {
                db.Attach(trial);
                await PollAsync(db, live, trial, cancellationToken).ConfigureAwait(false);
            }
            if (live.Row.State == nameof(StudyState.Running))
            {
                await LaunchAsync(db, live, cancellationToken).ConfigureAwait(false);
            }
            await FinishIfDoneAsync(live, cancellationToken).ConfigureAwait(false);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            if (live.Row.State is nameof(StudyState.Completed) or nameof(StudyState.Stopped))
            {
                _live.Remove(live.Row.Id);
            }
        }
    }

    /// <summary>Looks at one running trial: its output, its job, its heartbeat.</summary>
    private async Task PollAsync(JobsDbContext db, Live live, TrialRow trial, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (trial.JobId is null && !await AdoptOrSubmitAsync(db, live, trial, cancellationToken).ConfigureAwait(false))
        {
            return;
        }
        var job = await _jobs.GetAsync(trial.JobId!.Value, cancellationToken).ConfigureAwait(false);
        if (job is null)
        {
            Fail(live, trial, $"its job {trial.JobId} no longer exists", now);
            return;
        }
        var ended = job.State is JobState.Succeeded or JobState.Failed or JobState.Cancelled;
        if (live.Row.State == nameof(StudyState.Stopping))
        {
            await CancelJobAsync(trial.JobId.Value, cancellationToken).ConfigureAwait(false);
            Fail(live, trial, StoppedReason, now);
            return;
        }
        if (job.State == JobState.Running && trial.HeartbeatMs is null)
        {
            trial.HeartbeatMs = now.ToUnixTimeMilliseconds(); // its heartbeat starts when it starts, not while it queues
        }
        if (await ReadOutputAsync(db, live, trial, ended, now, cancellationToken).ConfigureAwait(false))
        {
            await CancelJobAsync(trial.JobId.Value, cancellationToken).ConfigureAwait(false);
            return; // pruned
        }
        if (ended)
        {
            if (job.State == JobState.Succeeded && trial.Value is { } value)
            {
                live.Study.Tell(live.Trial(trial), value);
                trial.State = Complete;
                trial.EndedAtMs = now.ToUnixTimeMilliseconds();
                Log.TrialEnded(_logger, live.Spec.Name, trial.Number, Complete, value);
                return;
            }
            var why = job.State == JobState.Succeeded
                ? "its command exited 0 but printed no objective=<number> line (nor reported a final value through the API)"
                : $"its job {job.Id} {job.State.ToString().ToLowerInvariant()}" + (job.Reason is { } r ? $": {r}" : "");
            Fail(live, trial, why, now);
            return;
        }
        if (job.State == JobState.Running && live.Spec.HeartbeatTimeout is { } timeout && trial.HeartbeatMs is { } beat
            && now - DateTimeOffset.FromUnixTimeMilliseconds(beat) > timeout)
        {
            await CancelJobAsync(trial.JobId.Value, cancellationToken).ConfigureAwait(false);
            Fail(live, trial, $"no heartbeat for {Resources.Quantity.FormatDuration(timeout)}: it printed and reported nothing (heartbeat_timeout)", now);
        }
    }

    /// <summary>
    /// A trial stored without its job id (the control plane stopped between submitting the job and recording it): its
    /// job is found by name if it was submitted, else submitted now — never twice.
    /// </summary>
    private async Task<bool> AdoptOrSubmitAsync(JobsDbContext db, Live live, TrialRow trial, CancellationToken cancellationToken)
    {
        var name = JobName(live.Spec.Name, trial.Number);
        var owner = live.Row.Owner;
        var existing = await db.Jobs.AsNoTracking().Where(j => j.Name == name && j.Owner == owner && j.SubmittedAtMs >= trial.StartedAtMs)
            .OrderByDescending(j => j.Id).Select(j => (long?)j.Id).FirstOrDefaultAsync(cancellationToken).ConfigureAwait(false);
        if (existing is { } id)
        {
            trial.JobId = id;
            return true;
        }
        return await SubmitAsync(db, live, trial, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads what the trial printed since the last pass; true when a reported value got it pruned.</summary>
    private async Task<bool> ReadOutputAsync(JobsDbContext db, Live live, TrialRow trial, bool ended, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var segments = await _jobs.LogSegmentsAsync(trial.JobId!.Value, null, null, cancellationToken).ConfigureAwait(false);
        if (segments.Count == 0 || !File.Exists(segments[^1].Path))
        {
            return false;
        }
        if (trial.LogPath != segments[^1].Path)
        {
            // A new attempt of the job (it was preempted or lost its node and started again): its own log, from the start.
            trial.LogPath = segments[^1].Path;
            trial.LogOffset = 0;
        }
        string text;
        await using (var log = new FileStream(segments[^1].Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            if (log.Length <= trial.LogOffset)
            {
                return false;
            }
            log.Position = trial.LogOffset;
            var bytes = new byte[Math.Min(log.Length - trial.LogOffset, 16L << 20)];
            var read = await log.ReadAtLeastAsync(bytes, bytes.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            // Whole lines only, unless the job has ended (its last line may lack a newline).
            var end = ended && trial.LogOffset + read >= log.Length ? read : Array.LastIndexOf(bytes, (byte)'\n', read - 1) + 1;
            if (end <= 0 && read == bytes.Length)
            {
                end = read; // 16 MiB without a newline (a progress bar redrawn with \r): no protocol line, skip it
            }
            if (end <= 0)
            {
                return false;
            }
            text = Encoding.UTF8.GetString(bytes, 0, end);
            trial.LogOffset += end;
        }
        trial.HeartbeatMs = now.ToUnixTimeMilliseconds();
        foreach (var line in text.Split('\n'))
        {
            switch (TrialOutput.Parse(line))
            {
                case TrialOutput.Intermediate(var step, var value):
                    if (await IntermediateAsync(db, live, trial, step, value, now, cancellationToken).ConfigureAwait(false))
                    {
                        return true;
                    }
                    break;
                case TrialOutput.Objective(var value):
                    trial.Value = value; // the last one wins; it counts when the job ends well
                    break;
                case TrialOutput.Artifact(var path):
                    trial.Artifact = path;
                    break;
            }
        }
        return false;
    }

    /// <summary>Records an intermediate value and asks the pruner; true (and the trial pruned) when it says stop.</summary>
    private async Task<bool> IntermediateAsync(JobsDbContext db, Live live, TrialRow trial, long step, double value, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var existing = await db.TrialValues.FirstOrDefaultAsync(v => v.TrialId == trial.Id && v.Step == step, cancellationToken).ConfigureAwait(false);
        if (existing is null)
        {
            db.TrialValues.Add(new TrialValueRow { TrialId = trial.Id, Step = step, Value = value });
        }
        else
        {
            existing.Value = value;
        }
        if (!live.Study.Report(live.Trial(trial), step, value))
        {
            return false;
        }
        trial.State = Pruned;
        trial.Value = live.Trial(trial).Value;
        trial.Reason = string.Create(CultureInfo.InvariantCulture, $"pruned by {live.Spec.Pruner.Type} at step {step} ({live.Spec.Metric} {value:G6})");
        trial.EndedAtMs = now.ToUnixTimeMilliseconds();
        Log.TrialEnded(_logger, live.Spec.Name, trial.Number, Pruned, value);
        return true;
    }

    private void Fail(Live live, TrialRow trial, string reason, DateTimeOffset now)
    {
        live.Study.Fail(live.Trial(trial));
        trial.State = Failed;
        trial.Value = null;
        trial.Reason = reason;
        trial.EndedAtMs = now.ToUnixTimeMilliseconds();
        Log.TrialFailed(_logger, live.Spec.Name, trial.Number, reason);
    }

    private async Task CancelJobAsync(long job, CancellationToken cancellationToken)
    {
        try
        {
            await _jobs.CancelAsync(job, cancellationToken).ConfigureAwait(false);
        }
        catch (JobsException e) when (e.Status is 404 or 409)
        {
            // Already ended.
        }
    }

    /// <summary>Starts trials until <c>parallel</c> run: retries of failed configurations first, then new ones from the sampler.</summary>
    private async Task LaunchAsync(JobsDbContext db, Live live, CancellationToken cancellationToken)
    {
        while (live.Rows.Values.Count(t => t.State == Running) < live.Spec.Parallel)
        {
            var retry = NextRetry(live);
            if (retry is null && live.Rows.Values.Count(t => t.RetryOf is null) >= live.Spec.Trials)
            {
                return;
            }
            if (retry is not null)
            {
                live.Study.Enqueue(live.Study.Trials[retry.Number].Values);
            }
            var asked = live.Study.Ask();
            var now = _time.GetUtcNow();
            var trial = new TrialRow
            {
                StudyId = live.Row.Id,
                Number = asked.Number,
                State = Running,
                ValuesJson = JsonSerializer.Serialize(asked.Values),
                RetryOf = retry?.Number,
                StartedAtMs = now.ToUnixTimeMilliseconds(),
            };
            // The trial is stored before its job is submitted, so a restart in between finds it (and its job by name).
            db.Trials.Add(trial);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            live.Rows[trial.Number] = trial;
            await SubmitAsync(db, live, trial, cancellationToken).ConfigureAwait(false);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            live.Row.Message = null;
        }
    }

    /// <summary>The oldest failed trial whose configuration may be tried again (not retried yet, retries left, not stopped by the study).</summary>
    private static TrialRow? NextRetry(Live live)
    {
        var retried = live.Rows.Values.Where(t => t.RetryOf is not null).Select(t => t.RetryOf!.Value).ToHashSet();
        foreach (var t in live.Rows.Values.Where(t => t.State == Failed && t.Reason != StoppedReason && !retried.Contains(t.Number)).OrderBy(t => t.Number))
        {
            var depth = 0;
            for (var x = t; x.RetryOf is { } parent; x = live.Rows[parent])
            {
                depth++;
            }
            if (depth < live.Spec.MaxRetries && !t.Reason!.StartsWith(NotRunnable, StringComparison.Ordinal))
            {
                return t;
            }
        }
        return null;
    }

    private const string NotRunnable = "its job could not be submitted";

    /// <summary>Submits a trial's job; false (and the trial failed, not to be retried) when it cannot be.</summary>
    private async Task<bool> SubmitAsync(JobsDbContext db, Live live, TrialRow trial, CancellationToken cancellationToken)
    {
        var asked = live.Trial(trial);
        try
        {
            var job = TrialJob(live.Spec, live.Spec.Name, trial.Number, asked.Params, TrialDirectory(live, trial.Number), write: true);
            var info = await _jobs.SubmitAsync(JobSpecReader.ToJson(job), $"study {live.Spec.Name} trial {trial.Number}", cancellationToken, live.Row.Owner).ConfigureAwait(false);
            trial.JobId = info.Id;
            return true;
        }
        catch (Exception e) when (e is AiMassException or SpecException or IOException)
        {
            Fail(live, trial, $"{NotRunnable}: {e.Message}", _time.GetUtcNow());
            return false;
        }
    }

    private string TrialDirectory(Live live, int number) =>
        Path.Combine(_dataDir, "studies", live.Row.Id.ToString(CultureInfo.InvariantCulture), "trials", number.ToString(CultureInfo.InvariantCulture));

    internal static string JobName(string study, int number) => $"{study}-trial-{number.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// The job of one trial: the study's job template with the objective's command (placeholders filled), each active
    /// parameter as <c>AIMASS_PARAM_NAME</c>, the study and trial in <c>AIMASS_STUDY</c>/<c>AIMASS_TRIAL</c>, a trial
    /// directory (<c>AIMASS_TRIAL_DIR</c>), the spec's directory as working directory (else the template's, else the
    /// trial directory), and no restarts —
    /// the study retries a failed trial itself.
    /// </summary>
    private JobSpec TrialJob(StudySpec spec, string study, int number, IReadOnlyDictionary<string, string> values, string trialDir, bool write)
    {
        IReadOnlyList<string> command;
        if (spec.TrainingText is { } training)
        {
            var file = Path.Combine(trialDir, "train.yaml");
            if (write)
            {
                Directory.CreateDirectory(trialDir);
                IO.AtomicFile.Write(file, StudyTemplate.Render(training, values));
            }
            var program = _options.TrialCommand.Count > 0 ? _options.TrialCommand
                : throw new JobsException(500, ErrorCodes.FailedPrecondition, "Studies:TrialCommand is not set: the control plane does not know how to start 'aimass train'");
            command = [.. program, "train", file, "--local", "--no-register", "--model-dir", Path.Combine(trialDir, "model"),
                "--base-dir", spec.TrainingBaseDirectory!, "--objective", spec.Metric];
        }
        else
        {
            command = spec.Command!.Select(part => StudyTemplate.Render(part, values)).ToList();
            if (write)
            {
                Directory.CreateDirectory(trialDir);
            }
        }
        var env = new Dictionary<string, string>(spec.Job.Env, StringComparer.Ordinal)
        {
            ["AIMASS_STUDY"] = study,
            ["AIMASS_TRIAL"] = number.ToString(CultureInfo.InvariantCulture),
            ["AIMASS_TRIAL_DIR"] = trialDir,
        };
        foreach (var (name, value) in values)
        {
            env[StudyTemplate.EnvName(name)] = value;
        }
        return spec.Job with
        {
            Name = JobName(study, number),
            Command = command,
            Replicas = 1,
            MaxRestarts = 0,
            Env = env,
            WorkingDir = spec.Job.WorkingDir ?? (spec.TrainingText is null ? spec.BaseDirectory : null) ?? trialDir,
        };
    }

    /// <summary>Ends a study whose budget is spent (or that was stopped) once no trial runs; registers the best trial's model.</summary>
    private async Task FinishIfDoneAsync(Live live, CancellationToken cancellationToken)
    {
        if (live.Rows.Values.Any(t => t.State == Running))
        {
            return;
        }
        var stopping = live.Row.State == nameof(StudyState.Stopping);
        if (!stopping && (live.Rows.Values.Count(t => t.RetryOf is null) < live.Spec.Trials || NextRetry(live) is not null))
        {
            return;
        }
        var now = _time.GetUtcNow();
        live.Row.State = stopping ? nameof(StudyState.Stopped) : nameof(StudyState.Completed);
        live.Row.EndedAtMs = now.ToUnixTimeMilliseconds();
        var best = live.Study.Best;
        // The best trial is in the study's info; the message says what is not: no result, or what became of its model.
        live.Row.Message = best is null ? "no trial completed"
            : live.Spec.Register is { } register ? await RegisterBestAsync(live, live.Rows[best.Number], register, cancellationToken).ConfigureAwait(false)
            : null;
        Log.Finished(_logger, live.Spec.Name, live.Row.State,
            best is null ? live.Row.Message : string.Create(CultureInfo.InvariantCulture, $"best trial {best.Number}, {live.Spec.Metric} {best.Value:G6}") + (live.Row.Message is { } m ? "; " + m : ""));
    }

    private async Task<string> RegisterBestAsync(Live live, TrialRow best, StudyRegisterSpec register, CancellationToken cancellationToken)
    {
        var trialDir = TrialDirectory(live, best.Number);
        var artifact = best.Artifact ?? (register.Artifact is { } a ? StudyTemplate.Render(a, live.Trial(best).Params) : null);
        if (artifact is null)
        {
            return $"nothing registered: trial {best.Number} named no model file (print artifact=PATH, or set register.artifact)";
        }
        var path = Path.GetFullPath(artifact, trialDir);
        if (!File.Exists(path))
        {
            return $"nothing registered: trial {best.Number}'s model file {path} does not exist";
        }
        try
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
            var asked = live.Trial(best);
            var version = await _registry.RegisterVersionAsync(register.Model, stream, new RegisterVersionRequest
            {
                Description = string.Create(CultureInfo.InvariantCulture, $"best trial {best.Number} of study {live.Spec.Name}: {live.Spec.Metric} {best.Value:G6}"),
                // Numbers as JSON numbers, choices as strings.
                Params = asked.Values.ToDictionary(p => p.Key, p => live.Spec.Space[p.Key].Kind switch
                {
                    ParameterKind.Float => JsonSerializer.SerializeToElement(p.Value),
                    ParameterKind.Int => JsonSerializer.SerializeToElement((long)p.Value),
                    _ => JsonSerializer.SerializeToElement(asked.Params[p.Key]),
                }, StringComparer.Ordinal),
                Metrics = new Dictionary<string, double>(StringComparer.Ordinal) { [live.Spec.Metric] = best.Value!.Value },
                Tags = new Dictionary<string, string>(StringComparer.Ordinal) { ["study"] = live.Spec.Name, ["trial"] = best.Number.ToString(CultureInfo.InvariantCulture) },
                Lineage = new Lineage($"study:{live.Spec.Name}/trial:{best.Number.ToString(CultureInfo.InvariantCulture)}" + (best.JobId is { } j ? $"/job:{j.ToString(CultureInfo.InvariantCulture)}" : "")),
                Alias = register.Alias,
            }, live.Row.Owner, cancellationToken).ConfigureAwait(false);
            live.Row.Registered = $"{version.Name}@{version.Version.ToString(CultureInfo.InvariantCulture)}";
            return $"registered {live.Row.Registered}" + (register.Alias is { } alias ? $" ({alias})" : "");
        }
        catch (AiMassException e)
        {
            return $"registering trial {best.Number}'s model failed: {e.Message}";
        }
    }

    // ---------------------------------------------------------------------------------------------------- state

    private static StudySpec Parse(CreateStudyRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.Spec))
        {
            throw JobsException.Invalid("spec", "spec must hold the study spec (YAML)");
        }
        var spec = StudySpecReader.Parse(request.Spec, request.Source ?? "study spec", request.TrainingSpec, request.BaseDirectory);
        if (request.Sampler is { } sampler && !StudySpec.Samplers.Contains(sampler))
        {
            throw JobsException.Invalid("sampler", $"'{sampler}' is not a sampler: {string.Join(", ", StudySpec.Samplers)}");
        }
        if (request.Trials is < 1)
        {
            throw JobsException.Invalid("trials", "trials must be at least 1");
        }
        if (request.Parallel is < 1)
        {
            throw JobsException.Invalid("parallel", "parallel must be at least 1");
        }
        if (request.Name is { } name && !Names.IsValidModelName(name))
        {
            throw JobsException.Invalid("name", $"'{name}' is not a valid study name: letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit");
        }
        spec = spec with
        {
            Name = request.Name ?? spec.Name,
            Sampler = request.Sampler ?? spec.Sampler,
            Trials = request.Trials ?? spec.Trials,
            Parallel = request.Parallel ?? spec.Parallel,
            Seed = request.Seed ?? spec.Seed,
        };
        if (spec.Sampler == "grid")
        {
            // A grid is tried once: the budget is the grid when that is smaller.
            try
            {
                return spec with { Trials = Math.Min(spec.Trials, new GridSampler().Size(spec.Space)) };
            }
            catch (InvalidOperationException e)
            {
                throw JobsException.Invalid("sampler", e.Message);
            }
        }
        return spec;
    }

    /// <summary>A stored study's spec, parsed once per study (a training objective's check alone reads its spec four times).</summary>
    private StudySpec SpecOf(StudyRow row) =>
        _specs.GetOrAdd(row.Id, _ => Parse(JsonSerializer.Deserialize<CreateStudyRequest>(row.RequestJson, AiMassJson.Options)!));

    /// <summary>A study rebuilt from the store: its trials restored in order into a new <see cref="Study"/>, so its sampler continues.</summary>
    private async Task<Live> LoadAsync(JobsDbContext db, StudyRow row, CancellationToken cancellationToken)
    {
        var spec = SpecOf(row);
        var trials = await db.Trials.Where(t => t.StudyId == row.Id).OrderBy(t => t.Number).ToListAsync(cancellationToken).ConfigureAwait(false);
        // The restored trials were drawn from the seed's random stream; the new ones draw from a stream of their own, or a
        // restarted study would ask the first configurations again.
        var study = new Study(spec.Space, spec.CreateSampler(), spec.Direction, spec.Pruner.Create(), unchecked(spec.Seed + (trials.Count * 1_000_003)));
        var live = new Live(row, spec, study);
        var values = await ValuesAsync(db, trials.Select(t => t.Id), cancellationToken).ConfigureAwait(false);
        foreach (var t in trials)
        {
            var state = t.State switch { Complete => TrialState.Complete, Pruned => TrialState.Pruned, Failed => TrialState.Failed, _ => TrialState.Running };
            var restored = study.Restore(JsonSerializer.Deserialize<Dictionary<string, double>>(t.ValuesJson)!, state,
                state == TrialState.Running || state == TrialState.Failed ? null : t.Value,
                (values.GetValueOrDefault(t.Id) ?? []).Select(v => new KeyValuePair<long, double>(v.Step, v.Value)));
            if (restored.Number != t.Number)
            {
                throw new InvalidOperationException($"study '{row.Name}' has a gap in its trial numbers at {t.Number}");
            }
            live.Rows[t.Number] = t;
        }
        return live;
    }

    private static async Task<Dictionary<long, List<IntermediateValue>>> ValuesAsync(JobsDbContext db, IEnumerable<long> trials, CancellationToken cancellationToken)
    {
        var ids = trials.ToList();
        var rows = await db.TrialValues.AsNoTracking().Where(v => ids.Contains(v.TrialId)).OrderBy(v => v.Step).ToListAsync(cancellationToken).ConfigureAwait(false);
        return rows.GroupBy(v => v.TrialId).ToDictionary(g => g.Key, g => g.Select(v => new IntermediateValue(v.Step, v.Value)).ToList());
    }

    private static async Task<StudyRow> FindAsync(JobsDbContext db, string study, CancellationToken cancellationToken)
    {
        var row = await db.Studies.AsNoTracking().FirstOrDefaultAsync(s => s.Name == study, cancellationToken).ConfigureAwait(false);
        if (row is null && long.TryParse(study, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            row = await db.Studies.AsNoTracking().FirstOrDefaultAsync(s => s.Id == id, cancellationToken).ConfigureAwait(false);
        }
        return row ?? throw JobsException.NotFound($"study '{study}' does not exist");
    }

    private async Task<StudyInfo> InfoAsync(JobsDbContext db, StudyRow row, CancellationToken cancellationToken)
    {
        var spec = SpecOf(row);
        var trials = await db.Trials.AsNoTracking().Where(t => t.StudyId == row.Id).ToListAsync(cancellationToken).ConfigureAwait(false);
        var best = Best(spec, trials);
        List<IntermediateValue>? values = null;
        if (best is not null)
        {
            values = (await ValuesAsync(db, [best.Id], cancellationToken).ConfigureAwait(false)).GetValueOrDefault(best.Id);
        }
        return ToInfo(row, spec, trials, best is null ? null : ToInfo(best, spec, values ?? [], true));
    }

    private static TrialRow? Best(StudySpec spec, IEnumerable<TrialRow> trials) =>
        trials.Where(t => t.State == Complete && t.Value is not null)
            .OrderBy(t => spec.Direction == Direction.Minimize ? t.Value!.Value : -t.Value!.Value).ThenBy(t => t.Number).FirstOrDefault();

    private static StudyInfo ToInfo(StudyRow row, StudySpec spec, IEnumerable<TrialRow> trialRows, TrialInfo? best)
    {
        var trials = trialRows.ToList();
        best ??= Best(spec, trials) is { } b ? ToInfo(b, spec, [], false) : null;
        return new StudyInfo
        {
            Id = row.Id,
            Name = row.Name,
            State = Enum.Parse<StudyState>(row.State),
            Direction = spec.Direction.ToString().ToLowerInvariant(),
            Metric = spec.Metric,
            Sampler = spec.Sampler,
            Pruner = spec.Pruner.Type,
            Objective = spec.TrainingText is null ? "command" : "training",
            Trials = spec.Trials,
            Parallel = spec.Parallel,
            Started = trials.Count,
            Running = trials.Count(t => t.State == Running),
            Complete = trials.Count(t => t.State == Complete),
            Pruned = trials.Count(t => t.State == Pruned),
            Failed = trials.Count(t => t.State == Failed),
            Best = best,
            Message = row.Message,
            Registered = row.Registered,
            Owner = row.Owner,
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAtMs),
            EndedAt = row.EndedAtMs is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null,
        };
    }

    private static TrialInfo ToInfo(TrialRow t, StudySpec spec, List<IntermediateValue> values, bool withValues) => new()
    {
        Number = t.Number,
        State = t.State,
        Params = spec.Space.Format(JsonSerializer.Deserialize<Dictionary<string, double>>(t.ValuesJson)!),
        Value = t.State is Complete or Pruned ? t.Value : null,
        JobId = t.JobId,
        RetryOf = t.RetryOf,
        Reason = t.Reason,
        Artifact = t.Artifact,
        StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(t.StartedAtMs),
        EndedAt = t.EndedAtMs is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null,
        LastHeartbeat = t.HeartbeatMs is { } h ? DateTimeOffset.FromUnixTimeMilliseconds(h) : null,
        Intermediate = withValues ? values : [],
        IntermediateCount = values.Count,
    };

    private sealed class Live(StudyRow row, StudySpec spec, Study study)
    {
        public StudyRow Row { get; } = row;

        public StudySpec Spec { get; } = spec;

        public Study Study { get; } = study;

        /// <summary>Every trial's row, by number.</summary>
        public Dictionary<int, TrialRow> Rows { get; } = [];

        public Trial Trial(TrialRow row) => Study.Trials[row.Number];
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3201, Level = LogLevel.Error, Message = "study pass failed; it continues with the next tick")]
        public static partial void StepFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 3202, Level = LogLevel.Information, Message = "study {Study} created: sampler {Sampler}, {Trials} trials, {Parallel} in parallel")]
        public static partial void Created(ILogger logger, string study, string sampler, int trials, int parallel);

        [LoggerMessage(EventId = 3203, Level = LogLevel.Information, Message = "study {Study} trial {Trial} {State}: {Value}")]
        public static partial void TrialEnded(ILogger logger, string study, int trial, string state, double value);

        [LoggerMessage(EventId = 3204, Level = LogLevel.Warning, Message = "study {Study} trial {Trial} failed: {Reason}")]
        public static partial void TrialFailed(ILogger logger, string study, int trial, string reason);

        [LoggerMessage(EventId = 3205, Level = LogLevel.Information, Message = "study {Study} {State}: {Message}")]
        public static partial void Finished(ILogger logger, string study, string state, string? message);
    }
}

/// <summary>The lines a trial prints that the study reads: <c>intermediate STEP=VALUE</c>, <c>objective=VALUE</c>, <c>artifact=PATH</c>.</summary>
internal abstract record TrialOutput
{
    public sealed record Intermediate(long Step, double Value) : TrialOutput;

    public sealed record Objective(double Value) : TrialOutput;

    public sealed record Artifact(string Path) : TrialOutput;

    /// <summary>What a line says, or null when it is ordinary output. Surrounding spaces are ignored; a value that is not a finite number is ordinary output.</summary>
    public static TrialOutput? Parse(string line)
    {
        var text = line.Trim();
        if (text.StartsWith("objective=", StringComparison.Ordinal))
        {
            return Number(text["objective=".Length..]) is { } v ? new Objective(v) : null;
        }
        if (text.StartsWith("artifact=", StringComparison.Ordinal))
        {
            var path = text["artifact=".Length..].Trim();
            return path.Length > 0 ? new Artifact(path) : null;
        }
        if (text.StartsWith("intermediate ", StringComparison.Ordinal))
        {
            var rest = text["intermediate ".Length..];
            var eq = rest.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && long.TryParse(rest.AsSpan(0, eq).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var step) && Number(rest[(eq + 1)..]) is { } value)
            {
                return new Intermediate(step, value);
            }
        }
        return null;
    }

    private static double? Number(string text) =>
        double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v : null;
}
