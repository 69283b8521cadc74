using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using AiMass.Registry.Artifacts;
using AiMass.Registry.Inspection;
using AiMass.Registry.Storage;
using Microsoft.EntityFrameworkCore;

namespace AiMass.Registry;

/// <summary>
/// The model registry: models, versions, aliases with history and lineage over an EF Core store and an artifact store.
/// Writes are serialised by one gate (SQLite has a single writer anyway), so version numbers are gap-free and blob
/// deletion never races a registration that shares the blob. Reads run concurrently.
/// </summary>
public sealed partial class ModelRegistry : IDisposable
{
    /// <summary>The selector that means "the highest-numbered ready version".</summary>
    public const string Latest = Names.Latest;

    private readonly IDbContextFactory<RegistryDbContext> _db;
    private readonly IArtifactStore _store;
    private readonly Dictionary<string, IArtifactInspector> _inspectors;
    private readonly RegistryOptions _options;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _uploading = new(StringComparer.Ordinal);
    private readonly RegistryMetrics? _metrics;
    private int _backupsRunning;

    /// <summary>Creates the registry over a store and a database.</summary>
    public ModelRegistry(
        IDbContextFactory<RegistryDbContext> db,
        IArtifactStore store,
        IEnumerable<IArtifactInspector> inspectors,
        RegistryOptions options,
        TimeProvider time,
        RegistryMetrics? metrics = null)
    {
        _metrics = metrics;
        _db = db;
        _store = store;
        _inspectors = inspectors.ToDictionary(i => i.Format, StringComparer.Ordinal);
        _options = options;
        _time = time;
    }

    /// <summary>The artifact store behind the registry.</summary>
    public IArtifactStore Store => _store;

    /// <summary>Creates or upgrades the schema and removes temporary files a crash left behind.</summary>
    public async Task<int> InitializeAsync(CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        // Migrations, not EnsureCreated: a data directory made by an older version gains the newer tables.
        await db.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
        if (db.Database.IsSqlite())
        {
            // WAL lets listings read while a registration writes.
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken).ConfigureAwait(false);
        }
        // Only this process uses the data directory (the host holds its lock), so every temporary file is stale.
        return _store.CollectTemporaryFiles(TimeSpan.Zero).Files;
    }

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // ---------------------------------------------------------------- models

    /// <summary>Creates a model; 409 when the name is taken.</summary>
    public async Task<ModelInfo> CreateModelAsync(CreateModelRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateModelName(request.Name, "name");
        ValidateTags(request.Tags, "tags");
        return await WriteAsync(async db =>
        {
            if (await db.Models.AnyAsync(m => m.Name == request.Name, cancellationToken).ConfigureAwait(false))
            {
                throw RegistryException.Conflict($"model '{request.Name}' already exists", ErrorCodes.AlreadyExists);
            }
            var row = NewModel(request.Name, request.Description, request.Tags);
            db.Models.Add(row);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            return ToInfo(row);
        }, cancellationToken).ConfigureAwait(false);
    }

    private ModelRow NewModel(string name, string? description, IReadOnlyDictionary<string, string>? tags)
    {
        var now = NowMs;
        return new ModelRow
        {
            Name = name,
            Description = description,
            CreatedAtMs = now,
            UpdatedAtMs = now,
            Tags = tags?.Select(t => new ModelTagRow { Key = t.Key, Value = t.Value }).ToList() ?? [],
        };
    }

    /// <summary>Gets a model by name; 404 when missing.</summary>
    public async Task<ModelInfo> GetModelAsync(string name, CancellationToken cancellationToken)
    {
        ValidateModelName(name, "name");
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await db.Models.AsNoTracking().Include(m => m.Tags).Include(m => m.Aliases)
            .AsSplitQuery()
            .FirstOrDefaultAsync(m => m.Name == name, cancellationToken).ConfigureAwait(false);
        return row is null ? throw ModelNotFound(name) : ToInfo(row);
    }

    /// <summary>Changes a model's description or tags.</summary>
    public async Task<ModelInfo> UpdateModelAsync(string name, UpdateModelRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateModelName(name, "name");
        ValidateTagChanges(request.Tags, "tags");
        return await WriteAsync(async db =>
        {
            var row = await LoadModelAsync(db, name, cancellationToken).ConfigureAwait(false);
            await db.Entry(row).Collection(m => m.Tags).LoadAsync(cancellationToken).ConfigureAwait(false);
            await db.Entry(row).Collection(m => m.Aliases).LoadAsync(cancellationToken).ConfigureAwait(false);
            if (request.Description is not null)
            {
                row.Description = request.Description.Length == 0 ? null : request.Description;
            }
            ApplyTagChanges(row.Tags, request.Tags, t => t.Key, (t, v) => t.Value = v, (k, v) => new ModelTagRow { ModelId = row.Id, Key = k, Value = v });
            row.UpdatedAtMs = NowMs;
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            return ToInfo(row);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes a model; with versions only when <paramref name="force"/>, and then their unshared blobs too.</summary>
    public async Task DeleteModelAsync(string name, bool force, CancellationToken cancellationToken)
    {
        ValidateModelName(name, "name");
        var digests = await WriteAsync(async db =>
        {
            var row = await LoadModelAsync(db, name, cancellationToken).ConfigureAwait(false);
            var versionDigests = await db.Versions.Where(v => v.ModelId == row.Id && v.Digest != "").Select(v => v.Digest).Distinct()
                .ToListAsync(cancellationToken).ConfigureAwait(false);
            if (row.VersionCount > 0 && !force)
            {
                throw RegistryException.Conflict(
                    $"model '{name}' has {row.VersionCount} version(s); delete them first or pass force=true to delete the model with all its versions");
            }
            db.Models.Remove(row);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            return versionDigests;
        }, cancellationToken).ConfigureAwait(false);
        await DeleteUnreferencedBlobsAsync(digests, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Lists models, filtered and sorted, one keyset page at a time.</summary>
    public async Task<Page<ModelInfo>> ListModelsAsync(ModelQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var pageSize = PageSize(query.PageSize);
        var order = (query.OrderBy ?? "name").ToLowerInvariant();
        if (order is not ("name" or "created" or "updated"))
        {
            throw RegistryException.Invalid("order_by", $"order_by '{query.OrderBy}' is not one of name, created, updated");
        }
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        IQueryable<ModelRow> q = db.Models.AsNoTracking();
        if (!string.IsNullOrEmpty(query.NamePrefix))
        {
            // A range on the unique name index, case-sensitive like names themselves (SQLite's LIKE is not), and with
            // no wildcard characters. Names are ASCII, so the range ends at the prefix with its last character + 1.
            var prefix = query.NamePrefix;
            var end = prefix[..^1] + (char)(prefix[^1] + 1);
            q = q.Where(m => m.Name.CompareTo(prefix) >= 0 && m.Name.CompareTo(end) < 0);
        }
        if (!string.IsNullOrEmpty(query.Tag))
        {
            var (key, value) = ParseTagFilter(query.Tag);
            q = value is null ? q.Where(m => m.Tags.Any(t => t.Key == key)) : q.Where(m => m.Tags.Any(t => t.Key == key && t.Value == value));
        }
        if (!string.IsNullOrEmpty(query.Alias))
        {
            var alias = query.Alias;
            q = q.Where(m => m.Aliases.Any(a => a.Name == alias));
        }
        var kind = $"models-{order}-{(query.Descending ? "d" : "a")}";
        if (query.PageToken is not null)
        {
            var (key, id) = PageTokens.Decode(query.PageToken, kind);
            q = order switch
            {
                "name" => query.Descending ? q.Where(m => m.Name.CompareTo(key) < 0) : q.Where(m => m.Name.CompareTo(key) > 0),
                _ => KeysetAfter(q, order, ParseLong(key), id, query.Descending),
            };
        }
        q = (order, query.Descending) switch
        {
            ("name", false) => q.OrderBy(m => m.Name),
            ("name", true) => q.OrderByDescending(m => m.Name),
            ("created", false) => q.OrderBy(m => m.CreatedAtMs).ThenBy(m => m.Id),
            ("created", true) => q.OrderByDescending(m => m.CreatedAtMs).ThenByDescending(m => m.Id),
            ("updated", false) => q.OrderBy(m => m.UpdatedAtMs).ThenBy(m => m.Id),
            _ => q.OrderByDescending(m => m.UpdatedAtMs).ThenByDescending(m => m.Id),
        };
        var rows = await q.Take(pageSize + 1).Include(m => m.Tags).Include(m => m.Aliases).AsSplitQuery()
            .ToListAsync(cancellationToken).ConfigureAwait(false);
        string? next = null;
        if (rows.Count > pageSize)
        {
            rows.RemoveAt(rows.Count - 1);
            var last = rows[^1];
            var key = order switch
            {
                "name" => last.Name,
                "created" => last.CreatedAtMs.ToString(CultureInfo.InvariantCulture),
                _ => last.UpdatedAtMs.ToString(CultureInfo.InvariantCulture),
            };
            next = PageTokens.Encode(kind, key, last.Id);
        }
        return new Page<ModelInfo>(rows.Select(ToInfo).ToList(), next);
    }

    private static IQueryable<ModelRow> KeysetAfter(IQueryable<ModelRow> q, string order, long key, long id, bool descending) =>
        (order, descending) switch
        {
            ("created", false) => q.Where(m => m.CreatedAtMs > key || (m.CreatedAtMs == key && m.Id > id)),
            ("created", true) => q.Where(m => m.CreatedAtMs < key || (m.CreatedAtMs == key && m.Id < id)),
            ("updated", false) => q.Where(m => m.UpdatedAtMs > key || (m.UpdatedAtMs == key && m.Id > id)),
            _ => q.Where(m => m.UpdatedAtMs < key || (m.UpdatedAtMs == key && m.Id < id)),
        };

    // ---------------------------------------------------------------- versions

    /// <summary>
    /// Registers a new version from a stream: stages and hashes the bytes, checks the expected digest, loads the artifact
    /// with its format's inspector, then in one transaction commits the blob and assigns the next version number.
    /// The model is created when it does not exist. Nothing is left behind when any step fails.
    /// </summary>
    public async Task<ModelVersionInfo> RegisterVersionAsync(
        string model, Stream content, RegisterVersionRequest request, string? actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        var (format, expected, parent) = ValidateRegistration(model, request);
        if (request.Alias is not null)
        {
            ValidateAliasName(request.Alias, "alias");
        }
        return await MeasuredAsync(format, () => RegisterStagedAsync(model, content, request, format, expected, parent, actor, cancellationToken)).ConfigureAwait(false);
    }

    private async Task<ModelVersionInfo> RegisterStagedAsync(
        string model, Stream content, RegisterVersionRequest request, string format, string? expected, VersionRef? parent, string? actor, CancellationToken cancellationToken)
    {
        using var staged = await StageAsync(content, format, expected, cancellationToken).ConfigureAwait(false);
        var committedBlob = false;
        try
        {
            return await WriteAsync(async db =>
            {
                await using var tx = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                var (row, version) = await AddVersionAsync(db, model, format, request, parent, cancellationToken).ConfigureAwait(false);
                _store.Commit(staged.Artifact);
                committedBlob = true;
                Complete(version, staged);
                await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
                if (request.Alias is not null)
                {
                    await MoveAliasAsync(db, row, request.Alias, version.Version, AliasAction.Set, actor, "set at registration", cancellationToken).ConfigureAwait(false);
                }
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                return await ToVersionInfoAsync(db, row, version, cancellationToken).ConfigureAwait(false);
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch when (committedBlob)
        {
            // The transaction rolled back; drop the blob unless another version shares it.
            await DeleteUnreferencedBlobsAsync([staged.Artifact.Digest], CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Reserves the next version number with its metadata and lineage, in status <c>registering</c>, for a producer (a
    /// training job) that uploads the artifact later with <see cref="UploadArtifactAsync"/> or reports failure.
    /// </summary>
    public async Task<ModelVersionInfo> ReserveVersionAsync(string model, RegisterVersionRequest request, CancellationToken cancellationToken)
    {
        var (format, expected, parent) = ValidateRegistration(model, request);
        if (expected is not null || request.Alias is not null)
        {
            throw RegistryException.Invalid(expected is not null ? "digest" : "alias",
                "digest and alias belong to the artifact upload (PUT .../versions/{v}/artifact), not to the reservation");
        }
        return await WriteAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var (row, version) = await AddVersionAsync(db, model, format, request, parent, cancellationToken).ConfigureAwait(false);
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return await ToVersionInfoAsync(db, row, version, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Uploads the artifact of a reserved (<c>registering</c>) version and makes it <c>ready</c>. An artifact its format's
    /// inspector refuses marks the version <c>failed</c> with the reason; a digest mismatch or an interrupted upload
    /// leaves it <c>registering</c>, so the producer can try again.
    /// </summary>
    public async Task<ModelVersionInfo> UploadArtifactAsync(
        string model, int number, Stream content, string? expectedDigest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        ValidateModelName(model, "name");
        var expected = NormalizeDigest(expectedDigest);
        string format;
        await using (var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false))
        {
            var (_, version) = await ResolveAsync(db, model, number.ToString(CultureInfo.InvariantCulture), tracking: false, cancellationToken).ConfigureAwait(false);
            EnsureRegistering(version, model);
            format = version.Format;
        }
        var key = $"{model}@{number}";
        if (!_uploading.TryAdd(key, 0))
        {
            throw RegistryException.Conflict($"an artifact for {key} is being uploaded right now", ErrorCodes.Conflict);
        }
        try
        {
            return await MeasuredAsync(format, () => UploadStagedAsync(model, number, content, format, expected, cancellationToken)).ConfigureAwait(false);
        }
        finally
        {
            _uploading.TryRemove(key, out _);
        }
    }

    private async Task<ModelVersionInfo> UploadStagedAsync(string model, int number, Stream content, string format, string? expected, CancellationToken cancellationToken)
    {
        StagedUpload staged;
        try
        {
            staged = await StageAsync(content, format, expected, cancellationToken).ConfigureAwait(false);
        }
        catch (RegistryException ex) when (ex.Code == ErrorCodes.InvalidArtifact)
        {
            await MarkFailedAsync(model, number, ex.Message, cancellationToken).ConfigureAwait(false);
            throw;
        }
        using (staged)
        {
            return await WriteAsync(async db =>
            {
                var (row, version) = await ResolveAsync(db, model, number.ToString(CultureInfo.InvariantCulture), tracking: true, cancellationToken).ConfigureAwait(false);
                EnsureRegistering(version, model);
                _store.Commit(staged.Artifact);
                Complete(version, staged);
                row.UpdatedAtMs = version.UpdatedAtMs;
                await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
                return await ToVersionInfoAsync(db, row, version, cancellationToken).ConfigureAwait(false);
            }, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Records the outcome, size and duration of an artifact upload.</summary>
    private async Task<ModelVersionInfo> MeasuredAsync(string format, Func<Task<ModelVersionInfo>> upload)
    {
        var started = _time.GetTimestamp();
        var outcome = "error";
        long size = 0;
        try
        {
            var version = await upload().ConfigureAwait(false);
            (outcome, size) = ("ready", version.Size);
            return version;
        }
        catch (RegistryException ex)
        {
            outcome = ex.Code;
            throw;
        }
        finally
        {
            _metrics?.Registered(format, outcome, size, _time.GetElapsedTime(started));
        }
    }

    private async Task MarkFailedAsync(string model, int number, string message, CancellationToken cancellationToken) =>
        await WriteAsync(async db =>
        {
            var (_, version) = await ResolveAsync(db, model, number.ToString(CultureInfo.InvariantCulture), tracking: true, cancellationToken).ConfigureAwait(false);
            version.Status = VersionStatus.Failed;
            version.StatusMessage = message;
            version.UpdatedAtMs = NowMs;
            return await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
        }, CancellationToken.None).ConfigureAwait(false);

    private static void EnsureRegistering(VersionRow version, string model)
    {
        if (version.Status != VersionStatus.Registering)
        {
            throw RegistryException.Conflict(
                $"version {version.Version} of '{model}' is {Lower(version.Status)}; an artifact can only be uploaded to a registering version",
                ErrorCodes.FailedPrecondition);
        }
    }

    /// <summary>Checks everything about a registration that can be checked before any byte is read.</summary>
    private static (string Format, string? ExpectedDigest, VersionRef? Parent) ValidateRegistration(string model, RegisterVersionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateModelName(model, "name");
        var format = request.Format;
        if (string.IsNullOrEmpty(format) || !FormatRegex().IsMatch(format))
        {
            throw RegistryException.Invalid("format", $"format '{format}' is not valid: use a lower-case name such as onnx");
        }
        var expected = NormalizeDigest(request.ExpectedDigest);
        ValidateTags(request.Tags, "tags");
        ValidateMetrics(request.Metrics, "metrics");
        ValidateParams(request.Params, "params");
        VersionRef? parent = null;
        if (request.Lineage?.Parent is { } parentText)
        {
            if (!VersionRef.TryParse(parentText, out var p, out var error) || p.Number is null)
            {
                throw RegistryException.Invalid("lineage.parent", $"lineage.parent must be NAME@VERSION with a version number: {error ?? $"'{parentText}' has none"}");
            }
            parent = p;
        }
        if (request.Lineage?.DatasetDigest is { Length: > 200 })
        {
            throw RegistryException.Invalid("lineage.dataset_digest", "lineage.dataset_digest is longer than 200 characters");
        }
        return (format, expected, parent);
    }

    private static string? NormalizeDigest(string? digest) =>
        digest is null
            ? null
            : Digests.Normalize(digest) ?? throw RegistryException.Invalid("digest", $"digest '{digest}' is not of the form sha256:<64 hex digits>");

    /// <summary>A staged upload with what its inspection found.</summary>
    private sealed record StagedUpload(StagedArtifact Artifact, ModelSignature? Signature) : IDisposable
    {
        public void Dispose() => Artifact.Dispose();
    }

    /// <summary>Streams the bytes to a temporary file, checks the digest, and loads the artifact with its format's inspector.</summary>
    private async Task<StagedUpload> StageAsync(Stream content, string format, string? expected, CancellationToken cancellationToken)
    {
        var staged = await _store.StageAsync(content, _options.MaxUploadBytes, cancellationToken).ConfigureAwait(false);
        try
        {
            if (expected is not null && expected != staged.Digest)
            {
                throw new RegistryException(400, ErrorCodes.DigestMismatch,
                    $"the uploaded content hashes to {staged.Digest} but the request expected {expected}; nothing was stored", "digest");
            }
            ModelSignature? signature = null;
            if (_inspectors.TryGetValue(format, out var inspector))
            {
                try
                {
                    signature = inspector.Inspect(staged.TempPath);
                }
                catch (InvalidArtifactException ex)
                {
                    throw new RegistryException(400, ErrorCodes.InvalidArtifact, $"the artifact is not a valid {format} model: {ex.Message}", "artifact");
                }
            }
            return new StagedUpload(staged, signature);
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }

    /// <summary>Adds the next version of a model (created when missing) with the request's metadata, status registering.</summary>
    private async Task<(ModelRow Model, VersionRow Version)> AddVersionAsync(
        RegistryDbContext db, string model, string format, RegisterVersionRequest request, VersionRef? parent, CancellationToken cancellationToken)
    {
        var row = await db.Models.FirstOrDefaultAsync(m => m.Name == model, cancellationToken).ConfigureAwait(false);
        if (row is null)
        {
            row = NewModel(model, null, null);
            db.Models.Add(row);
        }
        if (parent is { } pr && !await db.Versions.AnyAsync(v => v.Model.Name == pr.Model && v.Version == pr.Number, cancellationToken).ConfigureAwait(false))
        {
            throw RegistryException.Invalid("lineage.parent", $"lineage.parent '{pr}' does not exist");
        }
        var now = NowMs;
        row.LatestVersion++;
        row.VersionCount++;
        row.UpdatedAtMs = now;
        var version = new VersionRow
        {
            Model = row,
            Version = row.LatestVersion,
            Status = VersionStatus.Registering,
            Format = format,
            ParamsJson = JsonSerializer.Serialize(request.Params ?? new Dictionary<string, JsonElement>(), AiMassJson.Options),
            MetricsJson = JsonSerializer.Serialize(request.Metrics ?? new Dictionary<string, double>(), AiMassJson.Options),
            Description = request.Description,
            Source = request.Lineage?.Source,
            DatasetDigest = request.Lineage?.DatasetDigest,
            ParentModel = parent?.Model,
            ParentVersion = parent?.Number,
            CreatedAtMs = now,
            UpdatedAtMs = now,
            Tags = request.Tags?.Select(t => new VersionTagRow { Key = t.Key, Value = t.Value }).ToList() ?? [],
        };
        db.Versions.Add(version);
        return (row, version);
    }

    /// <summary>Records the committed blob on a version and makes it ready.</summary>
    private void Complete(VersionRow version, StagedUpload staged)
    {
        version.Digest = staged.Artifact.Digest;
        version.Size = staged.Artifact.Size;
        version.SignatureJson = staged.Signature is null ? null : JsonSerializer.Serialize(staged.Signature, AiMassJson.Options);
        version.Status = VersionStatus.Ready;
        version.StatusMessage = null;
        version.UpdatedAtMs = NowMs;
    }

    /// <summary>Gets a version by number, alias or <c>latest</c>.</summary>
    public async Task<ModelVersionInfo> GetVersionAsync(string model, string selector, CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var (row, version) = await ResolveAsync(db, model, selector, tracking: false, cancellationToken).ConfigureAwait(false);
        return await ToVersionInfoAsync(db, row, version, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Lists the versions of a model, newest first unless ascending, one keyset page at a time.</summary>
    public async Task<Page<ModelVersionInfo>> ListVersionsAsync(string model, VersionQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ValidateModelName(model, "name");
        var pageSize = PageSize(query.PageSize);
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Name == model, cancellationToken).ConfigureAwait(false)
            ?? throw ModelNotFound(model);
        var modelId = row.Id;
        IQueryable<VersionRow> q = db.Versions.AsNoTracking().Where(v => v.ModelId == modelId);
        var status = query.Status?.ToLowerInvariant();
        if (status is null or "")
        {
            q = q.Where(v => v.Status != VersionStatus.Archived);
        }
        else if (status != "all")
        {
            var parsed = ParseStatus(status, "status");
            q = q.Where(v => v.Status == parsed);
        }
        if (!string.IsNullOrEmpty(query.Tag))
        {
            var (key, value) = ParseTagFilter(query.Tag);
            q = value is null ? q.Where(v => v.Tags.Any(t => t.Key == key)) : q.Where(v => v.Tags.Any(t => t.Key == key && t.Value == value));
        }
        if (!string.IsNullOrEmpty(query.Alias))
        {
            var alias = query.Alias;
            q = q.Where(v => db.Aliases.Any(a => a.ModelId == modelId && a.Name == alias && a.Version == v.Version));
        }
        var kind = query.Ascending ? "versions-a" : "versions-d";
        if (query.PageToken is not null)
        {
            var (key, _) = PageTokens.Decode(query.PageToken, kind);
            var after = (int)ParseLong(key);
            q = query.Ascending ? q.Where(v => v.Version > after) : q.Where(v => v.Version < after);
        }
        q = query.Ascending ? q.OrderBy(v => v.Version) : q.OrderByDescending(v => v.Version);
        var rows = await q.Take(pageSize + 1).Include(v => v.Tags).AsSplitQuery().ToListAsync(cancellationToken).ConfigureAwait(false);
        string? next = null;
        if (rows.Count > pageSize)
        {
            rows.RemoveAt(rows.Count - 1);
            next = PageTokens.Encode(kind, rows[^1].Version.ToString(CultureInfo.InvariantCulture), rows[^1].Id);
        }
        var aliases = await AliasesByVersionAsync(db, modelId, cancellationToken).ConfigureAwait(false);
        return new Page<ModelVersionInfo>(rows.Select(v => ToVersionInfo(row.Name, v, aliases)).ToList(), next);
    }

    /// <summary>Changes a version's description, tags, params, metrics or status (archive with <c>archived</c>, restore with <c>ready</c>, give up a reservation with <c>failed</c>).</summary>
    public async Task<ModelVersionInfo> UpdateVersionAsync(string model, string selector, UpdateVersionRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateTagChanges(request.Tags, "tags");
        ValidateMetrics(request.Metrics, "metrics");
        ValidateParams(request.Params, "params");
        return await WriteAsync(async db =>
        {
            var (row, version) = await ResolveAsync(db, model, selector, tracking: true, cancellationToken).ConfigureAwait(false);
            await db.Entry(version).Collection(v => v.Tags).LoadAsync(cancellationToken).ConfigureAwait(false);
            if (request.Status is { } status && status != version.Status)
            {
                await ChangeStatusAsync(db, row, version, status, request.StatusMessage, cancellationToken).ConfigureAwait(false);
            }
            if (request.Description is not null)
            {
                version.Description = request.Description.Length == 0 ? null : request.Description;
            }
            ApplyTagChanges(version.Tags, request.Tags, t => t.Key, (t, v) => t.Value = v, (k, v) => new VersionTagRow { VersionId = version.Id, Key = k, Value = v });
            if (request.Params is not null)
            {
                var current = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(version.ParamsJson, AiMassJson.Options) ?? [];
                foreach (var (k, v) in request.Params)
                {
                    current[k] = v;
                }
                version.ParamsJson = JsonSerializer.Serialize(current, AiMassJson.Options);
            }
            if (request.Metrics is not null)
            {
                var current = JsonSerializer.Deserialize<Dictionary<string, double>>(version.MetricsJson, AiMassJson.Options) ?? [];
                foreach (var (k, v) in request.Metrics)
                {
                    current[k] = v;
                }
                version.MetricsJson = JsonSerializer.Serialize(current, AiMassJson.Options);
            }
            version.UpdatedAtMs = NowMs;
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            return await ToVersionInfoAsync(db, row, version, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    private static async Task ChangeStatusAsync(RegistryDbContext db, ModelRow row, VersionRow version, VersionStatus status, string? message, CancellationToken cancellationToken)
    {
        switch (status)
        {
            case VersionStatus.Archived when version.Status == VersionStatus.Ready:
                var aliases = await db.Aliases.Where(a => a.ModelId == row.Id && a.Version == version.Version)
                    .Select(a => a.Name).ToListAsync(cancellationToken).ConfigureAwait(false);
                if (aliases.Count > 0)
                {
                    throw RegistryException.Conflict(
                        $"version {version.Version} of '{row.Name}' is the target of alias(es) {string.Join(", ", aliases)}; move them before archiving it");
                }
                break;
            case VersionStatus.Ready when version.Status == VersionStatus.Archived:
                break;
            case VersionStatus.Failed when version.Status == VersionStatus.Registering:
                // The producer gave up (a training job failed): the number stays taken, with the reason.
                version.Status = status;
                version.StatusMessage = string.IsNullOrWhiteSpace(message) ? "marked failed by its producer" : message;
                return;
            default:
                throw RegistryException.Invalid("status",
                    $"status cannot change from {Lower(version.Status)} to {Lower(status)}: allowed are ready -> archived, archived -> ready and registering -> failed");
        }
        version.Status = status;
        version.StatusMessage = null;
    }

    /// <summary>Deletes a version and, when no other version shares it, its blob. Aliases pointing at it block the delete unless <paramref name="force"/>.</summary>
    public async Task DeleteVersionAsync(string model, string selector, bool force, string? actor, CancellationToken cancellationToken)
    {
        var digest = await WriteAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var (row, version) = await ResolveAsync(db, model, selector, tracking: true, cancellationToken).ConfigureAwait(false);
            var aliases = await db.Aliases.Where(a => a.ModelId == row.Id && a.Version == version.Version).ToListAsync(cancellationToken).ConfigureAwait(false);
            if (aliases.Count > 0 && !force)
            {
                throw RegistryException.Conflict(
                    $"version {version.Version} of '{row.Name}' is the target of alias(es) {string.Join(", ", aliases.Select(a => a.Name))}; move them first or pass force=true");
            }
            foreach (var alias in aliases)
            {
                await MoveAliasAsync(db, row, alias.Name, null, AliasAction.Remove, actor, $"version {version.Version} deleted", cancellationToken).ConfigureAwait(false);
            }
            db.Versions.Remove(version);
            row.VersionCount--;
            row.UpdatedAtMs = NowMs;
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return version.Digest;
        }, cancellationToken).ConfigureAwait(false);
        if (digest.Length > 0)
        {
            await DeleteUnreferencedBlobsAsync([digest], cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The version and the local path of its artifact, for download.</summary>
    public async Task<(ModelVersionInfo Version, string Path)> GetArtifactAsync(string model, string selector, CancellationToken cancellationToken)
    {
        var info = await GetVersionAsync(model, selector, cancellationToken).ConfigureAwait(false);
        if (info.Status is not (VersionStatus.Ready or VersionStatus.Archived))
        {
            throw RegistryException.Conflict($"version {info.Version} of '{model}' is {Lower(info.Status)} and has no artifact", ErrorCodes.FailedPrecondition);
        }
        var path = _store.GetPath(info.Digest!);
        if (!File.Exists(path))
        {
            throw new RegistryException(500, ErrorCodes.Internal,
                $"the blob {info.Digest} of '{model}@{info.Version}' is missing from the artifact store; run 'aimass admin verify' and restore from a backup");
        }
        return (info, path);
    }

    // ---------------------------------------------------------------- aliases

    /// <summary>Points an alias at a ready version, recording the move in the alias history.</summary>
    public async Task<AliasInfo> SetAliasAsync(string model, string alias, int version, string? actor, string? reason, CancellationToken cancellationToken)
    {
        ValidateModelName(model, "name");
        ValidateAliasName(alias, "alias");
        if (version <= 0)
        {
            throw RegistryException.Invalid("version", $"version must be a positive version number, not {version}");
        }
        return await WriteAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var row = await LoadModelAsync(db, model, cancellationToken).ConfigureAwait(false);
            var (info, _) = await MoveAliasAsync(db, row, alias, version, AliasAction.Set, actor, reason, cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return info!;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes an alias (recorded in its history, so a rollback can restore it).</summary>
    public async Task DeleteAliasAsync(string model, string alias, string? actor, CancellationToken cancellationToken)
    {
        ValidateModelName(model, "name");
        ValidateAliasName(alias, "alias");
        await WriteAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var row = await LoadModelAsync(db, model, cancellationToken).ConfigureAwait(false);
            if (!await db.Aliases.AnyAsync(a => a.ModelId == row.Id && a.Name == alias, cancellationToken).ConfigureAwait(false))
            {
                throw RegistryException.NotFound($"model '{model}' has no alias '{alias}'");
            }
            await MoveAliasAsync(db, row, alias, null, AliasAction.Remove, actor, null, cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Where an alias points; 404 when it is not set.</summary>
    public async Task<AliasInfo> GetAliasAsync(string model, string alias, CancellationToken cancellationToken)
    {
        ValidateModelName(model, "name");
        ValidateAliasName(alias, "alias");
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Name == model, cancellationToken).ConfigureAwait(false)
            ?? throw ModelNotFound(model);
        var a = await db.Aliases.AsNoTracking().FirstOrDefaultAsync(x => x.ModelId == row.Id && x.Name == alias, cancellationToken).ConfigureAwait(false)
            ?? throw RegistryException.NotFound($"model '{model}' has no alias '{alias}'");
        return new AliasInfo(model, alias, a.Version, FromMs(a.UpdatedAtMs));
    }

    /// <summary>Every move of an alias, newest first.</summary>
    public async Task<IReadOnlyList<AliasEvent>> GetAliasHistoryAsync(string model, string alias, CancellationToken cancellationToken)
    {
        ValidateModelName(model, "name");
        ValidateAliasName(alias, "alias");
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var row = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Name == model, cancellationToken).ConfigureAwait(false)
            ?? throw ModelNotFound(model);
        var events = await db.AliasEvents.AsNoTracking().Where(e => e.ModelId == row.Id && e.Alias == alias)
            .OrderByDescending(e => e.Id).ToListAsync(cancellationToken).ConfigureAwait(false);
        return events.Select(ToEvent).ToList();
    }

    /// <summary>
    /// Returns an alias to the version it had before its latest move that has not been undone yet. Repeated rollbacks
    /// walk further back through the history; each is itself recorded.
    /// </summary>
    public async Task<AliasInfo?> RollbackAliasAsync(string model, string alias, string? actor, CancellationToken cancellationToken)
    {
        ValidateModelName(model, "name");
        ValidateAliasName(alias, "alias");
        return await WriteAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var row = await LoadModelAsync(db, model, cancellationToken).ConfigureAwait(false);
            var move = await db.AliasEvents
                .Where(e => e.ModelId == row.Id && e.Alias == alias && e.Action != AliasAction.Rollback && e.UndoneBy == null)
                .OrderByDescending(e => e.Id).FirstOrDefaultAsync(cancellationToken).ConfigureAwait(false)
                ?? throw RegistryException.Conflict($"alias '{alias}' of '{model}' has no move left to roll back", ErrorCodes.FailedPrecondition);
            (AliasInfo? Info, AliasEventRow Event) result;
            if (move.PreviousVersion is { } previous)
            {
                var exists = await db.Versions.AnyAsync(v => v.ModelId == row.Id && v.Version == previous && v.Status == VersionStatus.Ready, cancellationToken).ConfigureAwait(false);
                if (!exists)
                {
                    throw RegistryException.Conflict(
                        $"alias '{alias}' of '{model}' was at version {previous} before, but that version is no longer ready (deleted or archived); set the alias explicitly",
                        ErrorCodes.FailedPrecondition);
                }
                result = await MoveAliasAsync(db, row, alias, previous, AliasAction.Rollback, actor, $"rollback of event {move.Id}", cancellationToken).ConfigureAwait(false);
            }
            else
            {
                // Before that move the alias did not exist: rolling back removes it.
                result = await MoveAliasAsync(db, row, alias, null, AliasAction.Rollback, actor, $"rollback of event {move.Id}", cancellationToken).ConfigureAwait(false);
            }
            move.UndoneBy = result.Event.Id;
            await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return result.Info;
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task<(AliasInfo? Info, AliasEventRow Event)> MoveAliasAsync(
        RegistryDbContext db, ModelRow row, string alias, int? version, AliasAction action, string? actor, string? reason, CancellationToken cancellationToken)
    {
        if (version is { } target)
        {
            var status = await db.Versions.Where(v => v.ModelId == row.Id && v.Version == target).Select(v => (VersionStatus?)v.Status)
                .FirstOrDefaultAsync(cancellationToken).ConfigureAwait(false);
            if (status is null)
            {
                throw RegistryException.NotFound($"model '{row.Name}' has no version {target}");
            }
            if (status is { } s && s != VersionStatus.Ready)
            {
                throw RegistryException.Conflict($"version {target} of '{row.Name}' is {Lower(s)}; an alias can only point at a ready version", ErrorCodes.FailedPrecondition);
            }
        }
        var current = await db.Aliases.FirstOrDefaultAsync(a => a.ModelId == row.Id && a.Name == alias, cancellationToken).ConfigureAwait(false);
        var now = NowMs;
        var previous = current?.Version;
        if (version is null)
        {
            if (current is not null)
            {
                db.Aliases.Remove(current);
            }
        }
        else if (current is null)
        {
            current = new AliasRow { ModelId = row.Id, Name = alias, Version = version.Value, UpdatedAtMs = now };
            db.Aliases.Add(current);
        }
        else
        {
            current.Version = version.Value;
            current.UpdatedAtMs = now;
        }
        var evt = new AliasEventRow
        {
            ModelId = row.Id,
            Alias = alias,
            Action = action,
            Version = version,
            PreviousVersion = previous,
            AtMs = now,
            Actor = actor,
            Reason = reason,
        };
        db.AliasEvents.Add(evt);
        row.UpdatedAtMs = now;
        await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
        _metrics?.AliasMoved(action);
        return (version is null ? null : new AliasInfo(row.Name, alias, version.Value, FromMs(now)), evt);
    }

    // ---------------------------------------------------------------- admin

    /// <summary>Counts for <c>GET /api/v1/status</c>.</summary>
    public async Task<(int Models, int Versions, int Blobs, long Bytes)> CountAsync(CancellationToken cancellationToken)
    {
        await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var models = await db.Models.CountAsync(cancellationToken).ConfigureAwait(false);
        var versions = await db.Versions.CountAsync(cancellationToken).ConfigureAwait(false);
        var blobs = await db.Versions.Where(v => v.Digest != "").Select(v => new { v.Digest, v.Size }).Distinct().ToListAsync(cancellationToken).ConfigureAwait(false);
        return (models, versions, blobs.Count, blobs.Sum(b => b.Size));
    }

    /// <summary>Re-hashes every blob that a version references and reports the ones missing or corrupt.</summary>
    public async Task<VerifyReport> VerifyAsync(CancellationToken cancellationToken)
    {
        List<(string Digest, long Size, string Model, int Version)> refs;
        await using (var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false))
        {
            refs = (await db.Versions.AsNoTracking().Where(v => v.Digest != "").Select(v => new { v.Digest, v.Size, v.Model.Name, v.Version })
                .ToListAsync(cancellationToken).ConfigureAwait(false))
                .Select(x => (x.Digest, x.Size, x.Name, x.Version)).ToList();
        }
        var problems = new List<VerifyProblem>();
        long bytes = 0;
        var groups = refs.GroupBy(r => r.Digest).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        foreach (var group in groups)
        {
            var size = _store.GetSize(group.Key);
            var problem = size is null ? "blob is missing"
                : size != group.First().Size ? $"blob has {size} bytes, the registry recorded {group.First().Size}"
                : await _store.VerifyAsync(group.Key, cancellationToken).ConfigureAwait(false);
            bytes += size ?? 0;
            if (problem is not null)
            {
                problems.Add(new VerifyProblem(group.Key, problem,
                    group.Select(r => $"{r.Model}@{r.Version}").OrderBy(s => s, StringComparer.Ordinal).ToList()));
            }
        }
        return new VerifyReport(groups.Count, bytes, problems);
    }

    /// <summary>
    /// Removes blobs no version references and temporary files older than <see cref="RegistryOptions.TempFileMaxAge"/>,
    /// and marks reservations older than <see cref="RegistryOptions.ReservationTimeout"/> failed.
    /// </summary>
    public async Task<GcReport> CollectGarbageAsync(bool dryRun, CancellationToken cancellationToken)
    {
        return await WriteAsync(async db =>
        {
            if (Volatile.Read(ref _backupsRunning) > 0)
            {
                throw RegistryException.Conflict("a backup is running; run garbage collection after it finishes", ErrorCodes.FailedPrecondition);
            }
            var referenced = (await db.Versions.Select(v => v.Digest).Distinct().ToListAsync(cancellationToken).ConfigureAwait(false))
                .ToHashSet(StringComparer.Ordinal);
            int removed = 0;
            long freed = 0;
            foreach (var (digest, size) in _store.List().ToList())
            {
                if (referenced.Contains(digest))
                {
                    continue;
                }
                removed++;
                freed += dryRun ? size : _store.Delete(digest);
            }
            var (tempFiles, tempBytes) = dryRun ? (0, 0L) : _store.CollectTemporaryFiles(_options.TempFileMaxAge);
            // Reservations whose producer died without saying so would otherwise stay registering forever.
            var cutoff = NowMs - (long)_options.ReservationTimeout.TotalMilliseconds;
            var stale = await db.Versions.Where(v => v.Status == VersionStatus.Registering && v.UpdatedAtMs < cutoff)
                .ToListAsync(cancellationToken).ConfigureAwait(false);
            if (!dryRun)
            {
                foreach (var version in stale)
                {
                    version.Status = VersionStatus.Failed;
                    version.StatusMessage = $"no artifact arrived within {_options.ReservationTimeout} of the reservation";
                    version.UpdatedAtMs = NowMs;
                }
                await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
            }
            return new GcReport(removed, freed, tempFiles, tempBytes, stale.Count, dryRun);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="body"/> under the write gate and holds back blob deletion until <see cref="EndBackup"/>.</summary>
    internal async Task<T> WithBackupSnapshotAsync<T>(Func<RegistryDbContext, Task<T>> body, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _backupsRunning);
        try
        {
            return await WriteAsync(body, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _backupsRunning);
            throw;
        }
    }

    internal void EndBackup() => Interlocked.Decrement(ref _backupsRunning);

    /// <inheritdoc />
    public void Dispose() => _writeGate.Dispose();

    // ---------------------------------------------------------------- helpers

    private async Task<T> WriteAsync<T>(Func<RegistryDbContext, Task<T>> body, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var db = await _db.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            return await body(db).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task DeleteUnreferencedBlobsAsync(List<string> digests, CancellationToken cancellationToken)
    {
        if (digests.Count == 0)
        {
            return;
        }
        await WriteAsync(async db =>
        {
            if (Volatile.Read(ref _backupsRunning) > 0)
            {
                return 0; // a backup may still copy them; garbage collection removes them later
            }
            foreach (var digest in digests)
            {
                if (!await db.Versions.AnyAsync(v => v.Digest == digest, cancellationToken).ConfigureAwait(false))
                {
                    _store.Delete(digest);
                }
            }
            return 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<ModelRow> LoadModelAsync(RegistryDbContext db, string name, CancellationToken cancellationToken) =>
        await db.Models.FirstOrDefaultAsync(m => m.Name == name, cancellationToken).ConfigureAwait(false) ?? throw ModelNotFound(name);

    private static async Task<(ModelRow Model, VersionRow Version)> ResolveAsync(
        RegistryDbContext db, string model, string selector, bool tracking, CancellationToken cancellationToken)
    {
        ValidateModelName(model, "name");
        var models = tracking ? db.Models : db.Models.AsNoTracking();
        var versions = tracking ? db.Versions : db.Versions.AsNoTracking();
        var row = await models.FirstOrDefaultAsync(m => m.Name == model, cancellationToken).ConfigureAwait(false) ?? throw ModelNotFound(model);
        VersionRow? version;
        if (string.Equals(selector, Latest, StringComparison.Ordinal))
        {
            version = await versions.Where(v => v.ModelId == row.Id && v.Status == VersionStatus.Ready).OrderByDescending(v => v.Version)
                .FirstOrDefaultAsync(cancellationToken).ConfigureAwait(false)
                ?? throw RegistryException.NotFound($"model '{model}' has no ready version");
        }
        else if (int.TryParse(selector, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number > 0)
        {
            version = await versions.FirstOrDefaultAsync(v => v.ModelId == row.Id && v.Version == number, cancellationToken).ConfigureAwait(false)
                ?? throw RegistryException.NotFound($"model '{model}' has no version {number}");
        }
        else if (Names.IsValidAlias(selector))
        {
            var alias = await db.Aliases.AsNoTracking().FirstOrDefaultAsync(a => a.ModelId == row.Id && a.Name == selector, cancellationToken).ConfigureAwait(false)
                ?? throw RegistryException.NotFound($"model '{model}' has no alias '{selector}'");
            version = await versions.FirstAsync(v => v.ModelId == row.Id && v.Version == alias.Version, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            throw RegistryException.Invalid("version", $"'{selector}' is neither a version number, an alias nor 'latest'");
        }
        version.Model = row;
        return (row, version);
    }

    private static async Task<Dictionary<int, List<string>>> AliasesByVersionAsync(RegistryDbContext db, long modelId, CancellationToken cancellationToken)
    {
        var aliases = await db.Aliases.AsNoTracking().Where(a => a.ModelId == modelId).ToListAsync(cancellationToken).ConfigureAwait(false);
        return aliases.GroupBy(a => a.Version).ToDictionary(g => g.Key, g => g.Select(a => a.Name).Order(StringComparer.Ordinal).ToList());
    }

    private static async Task<ModelVersionInfo> ToVersionInfoAsync(RegistryDbContext db, ModelRow row, VersionRow version, CancellationToken cancellationToken)
    {
        if (!db.Entry(version).Collection(v => v.Tags).IsLoaded && db.Entry(version).State != EntityState.Detached)
        {
            await db.Entry(version).Collection(v => v.Tags).LoadAsync(cancellationToken).ConfigureAwait(false);
        }
        else if (db.Entry(version).State == EntityState.Detached)
        {
            version.Tags = await db.VersionTags.AsNoTracking().Where(t => t.VersionId == version.Id).ToListAsync(cancellationToken).ConfigureAwait(false);
        }
        var aliases = await AliasesByVersionAsync(db, row.Id, cancellationToken).ConfigureAwait(false);
        return ToVersionInfo(row.Name, version, aliases);
    }

    private static ModelVersionInfo ToVersionInfo(string model, VersionRow v, Dictionary<int, List<string>> aliases) => new(
        model,
        v.Version,
        v.Status,
        v.StatusMessage,
        v.Format,
        v.Digest.Length == 0 ? null : v.Digest,
        v.Size,
        v.SignatureJson is null ? null : JsonSerializer.Deserialize<ModelSignature>(v.SignatureJson, AiMassJson.Options),
        JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(v.ParamsJson, AiMassJson.Options) ?? [],
        JsonSerializer.Deserialize<Dictionary<string, double>>(v.MetricsJson, AiMassJson.Options) ?? [],
        v.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).ToDictionary(t => t.Key, t => t.Value),
        v.Description,
        new Lineage(v.Source, v.DatasetDigest, v.ParentModel is null ? null : $"{v.ParentModel}@{v.ParentVersion}"),
        aliases.TryGetValue(v.Version, out var names) ? names : [],
        FromMs(v.CreatedAtMs),
        FromMs(v.UpdatedAtMs));

    private static ModelInfo ToInfo(ModelRow m) => new(
        m.Name,
        m.Description,
        m.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).ToDictionary(t => t.Key, t => t.Value),
        m.LatestVersion,
        m.VersionCount,
        m.Aliases.OrderBy(a => a.Name, StringComparer.Ordinal).ToDictionary(a => a.Name, a => a.Version),
        FromMs(m.CreatedAtMs),
        FromMs(m.UpdatedAtMs));

    private static AliasEvent ToEvent(AliasEventRow e) =>
        new(e.Id, e.Alias, e.Action, e.Version, e.PreviousVersion, FromMs(e.AtMs), e.Actor, e.Reason, e.UndoneBy);

    private static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private static string Lower(VersionStatus status) => status.ToString().ToLowerInvariant();

    private int PageSize(int? requested)
    {
        var size = requested ?? _options.DefaultPageSize;
        if (size < 1 || size > _options.MaxPageSize)
        {
            throw RegistryException.Invalid("page_size", $"page_size must be between 1 and {_options.MaxPageSize}, not {size}");
        }
        return size;
    }

    private static long ParseLong(string text) =>
        long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw RegistryException.Invalid("page_token", "page_token is damaged (start again without it)");

    private static VersionStatus ParseStatus(string text, string field) =>
        Enum.TryParse<VersionStatus>(text, ignoreCase: true, out var status) && !int.TryParse(text, out _)
            ? status
            : throw RegistryException.Invalid(field, $"{field} '{text}' is not one of registering, ready, failed, archived, all");

    private static (string Key, string? Value) ParseTagFilter(string tag)
    {
        var eq = tag.IndexOf('=', StringComparison.Ordinal);
        var key = eq < 0 ? tag : tag[..eq];
        if (!Names.IsValidTagKey(key))
        {
            throw RegistryException.Invalid("tag", $"tag filter '{tag}' must be KEY or KEY=VALUE with a key matching {Names.TagKeyPattern}");
        }
        return (key, eq < 0 ? null : tag[(eq + 1)..]);
    }

    private static void ValidateModelName(string? name, string field)
    {
        if (!Names.IsValidModelName(name))
        {
            throw RegistryException.Invalid(field,
                $"{field} '{name}' is not a valid model name: it must start with a letter or digit and contain at most 128 letters, digits, '.', '_' or '-'");
        }
    }

    private static void ValidateAliasName(string? alias, string field)
    {
        if (!Names.IsValidAlias(alias))
        {
            throw RegistryException.Invalid(field,
                $"{field} '{alias}' is not a valid alias: it must start with a letter and contain at most 64 letters, digits, '.', '_' or '-'");
        }
        if (alias == Latest)
        {
            throw RegistryException.Invalid(field, $"'{Latest}' is reserved: it always means the newest ready version");
        }
    }

    private static void ValidateTags(IReadOnlyDictionary<string, string>? tags, string field)
    {
        if (tags is null)
        {
            return;
        }
        foreach (var (key, value) in tags)
        {
            ValidateTag(field, key, value);
        }
    }

    private static void ValidateTagChanges(IReadOnlyDictionary<string, string?>? tags, string field)
    {
        if (tags is null)
        {
            return;
        }
        foreach (var (key, value) in tags)
        {
            ValidateTag(field, key, value);
        }
    }

    private static void ValidateTag(string field, string key, string? value)
    {
        if (!Names.IsValidTagKey(key))
        {
            throw RegistryException.Invalid($"{field}.{key}", $"tag key '{key}' is not valid: it must match {Names.TagKeyPattern}");
        }
        if (value is { Length: > 4096 })
        {
            throw RegistryException.Invalid($"{field}.{key}", $"the value of tag '{key}' is longer than 4096 characters");
        }
    }

    private static void ValidateMetrics(IReadOnlyDictionary<string, double>? metrics, string field)
    {
        if (metrics is null)
        {
            return;
        }
        foreach (var (key, value) in metrics)
        {
            if (!Names.IsValidTagKey(key))
            {
                throw RegistryException.Invalid($"{field}.{key}", $"metric name '{key}' is not valid: it must match {Names.TagKeyPattern}");
            }
            if (!double.IsFinite(value))
            {
                throw RegistryException.Invalid($"{field}.{key}", $"metric '{key}' must be a finite number");
            }
        }
    }

    private static void ValidateParams(IReadOnlyDictionary<string, JsonElement>? parameters, string field)
    {
        if (parameters is null)
        {
            return;
        }
        foreach (var key in parameters.Keys)
        {
            if (!Names.IsValidTagKey(key))
            {
                throw RegistryException.Invalid($"{field}.{key}", $"param name '{key}' is not valid: it must match {Names.TagKeyPattern}");
            }
        }
    }

    private static void ApplyTagChanges<TRow>(
        List<TRow> rows, IReadOnlyDictionary<string, string?>? changes, Func<TRow, string> keyOf, Action<TRow, string> setValue, Func<string, string, TRow> create)
    {
        if (changes is null)
        {
            return;
        }
        foreach (var (key, value) in changes)
        {
            var index = rows.FindIndex(r => keyOf(r) == key);
            if (value is null)
            {
                if (index >= 0)
                {
                    rows.RemoveAt(index);
                }
            }
            else if (index >= 0)
            {
                setValue(rows[index], value);
            }
            else
            {
                rows.Add(create(key, value));
            }
        }
    }

    private static RegistryException ModelNotFound(string name) => RegistryException.NotFound($"model '{name}' does not exist");

    [GeneratedRegex("^[a-z0-9][a-z0-9_.+-]{0,31}$", RegexOptions.CultureInvariant)]
    private static partial Regex FormatRegex();
}
