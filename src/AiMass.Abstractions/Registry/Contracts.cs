using System.Text.Json;

namespace AiMass.Registry;

/// <summary>Lifecycle of a model version.</summary>
public enum VersionStatus
{
    /// <summary>Reserved; its artifact has not arrived or is being checked.</summary>
    Registering,
    /// <summary>Artifact stored and verified; usable.</summary>
    Ready,
    /// <summary>Registration failed; <c>status_message</c> says why.</summary>
    Failed,
    /// <summary>Kept for history, hidden from default listings and not servable.</summary>
    Archived,
}

/// <summary>A registered model.</summary>
public sealed record ModelInfo(
    string Name,
    string? Description,
    IReadOnlyDictionary<string, string> Tags,
    int LatestVersion,
    int VersionCount,
    IReadOnlyDictionary<string, int> Aliases,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

/// <summary>Body of <c>POST /api/v1/models</c>.</summary>
public sealed record CreateModelRequest(string Name, string? Description = null, IReadOnlyDictionary<string, string>? Tags = null);

/// <summary>Body of <c>PATCH /api/v1/models/{name}</c>; a tag set to null is removed.</summary>
public sealed record UpdateModelRequest(string? Description = null, IReadOnlyDictionary<string, string?>? Tags = null);

/// <summary>One input or output tensor of a model: name, element type and shape (-1 for a dynamic dimension).</summary>
public sealed record TensorSpec(string Name, string ElementType, IReadOnlyList<long> Shape, IReadOnlyList<string?>? DimNames = null);

/// <summary>The inputs and outputs of a model, as read from its artifact.</summary>
public sealed record ModelSignature(IReadOnlyList<TensorSpec> Inputs, IReadOnlyList<TensorSpec> Outputs);

/// <summary>Where a version came from.</summary>
/// <param name="Source">The job or run that produced it (e.g. <c>job:42</c>).</param>
/// <param name="DatasetDigest">Digest of the training data set.</param>
/// <param name="Parent">The version it was derived from, as <c>NAME@VERSION</c>.</param>
public sealed record Lineage(string? Source = null, string? DatasetDigest = null, string? Parent = null);

/// <summary>A model version; <c>Digest</c> is null (and <c>Size</c> 0) until its artifact has arrived.</summary>
public sealed record ModelVersionInfo(
    string Name,
    int Version,
    VersionStatus Status,
    string? StatusMessage,
    string Format,
    string? Digest,
    long Size,
    ModelSignature? Signature,
    IReadOnlyDictionary<string, JsonElement> Params,
    IReadOnlyDictionary<string, double> Metrics,
    IReadOnlyDictionary<string, string> Tags,
    string? Description,
    Lineage Lineage,
    IReadOnlyList<string> Aliases,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

/// <summary>Metadata sent with an artifact upload (as query parameters of <c>POST .../versions</c>).</summary>
public sealed record RegisterVersionRequest
{
    /// <summary>Artifact format; <c>onnx</c> artifacts are loaded with ONNX Runtime and their signature recorded.</summary>
    public string Format { get; init; } = "onnx";
    /// <summary>Expected digest (<c>sha256:&lt;hex&gt;</c>); the upload is refused when the content differs.</summary>
    public string? ExpectedDigest { get; init; }
    public string? Description { get; init; }
    public IReadOnlyDictionary<string, string>? Tags { get; init; }
    public IReadOnlyDictionary<string, JsonElement>? Params { get; init; }
    public IReadOnlyDictionary<string, double>? Metrics { get; init; }
    public Lineage? Lineage { get; init; }
    /// <summary>Alias to point at the new version once it is ready.</summary>
    public string? Alias { get; init; }
}

/// <summary>Body of <c>PATCH /api/v1/models/{name}/versions/{v}</c>; null fields are left alone, null tag values remove the tag.</summary>
/// <param name="Status"><c>archived</c> (from ready), <c>ready</c> (from archived) or <c>failed</c> (from registering).</param>
/// <param name="StatusMessage">Why, when the status becomes <c>failed</c>.</param>
public sealed record UpdateVersionRequest(
    string? Description = null,
    IReadOnlyDictionary<string, string?>? Tags = null,
    IReadOnlyDictionary<string, JsonElement>? Params = null,
    IReadOnlyDictionary<string, double>? Metrics = null,
    VersionStatus? Status = null,
    string? StatusMessage = null);

/// <summary>Body of <c>PUT /api/v1/models/{name}/aliases/{alias}</c>.</summary>
public sealed record SetAliasRequest(int Version, string? Reason = null);

/// <summary>Where an alias points.</summary>
public sealed record AliasInfo(string Model, string Alias, int Version, DateTimeOffset UpdatedAt);

/// <summary>What happened to an alias.</summary>
public enum AliasAction
{
    /// <summary>Pointed at a version.</summary>
    Set,
    /// <summary>Removed.</summary>
    Remove,
    /// <summary>Returned to the version before an earlier move.</summary>
    Rollback,
}

/// <summary>One entry of an alias history: the alias moved from <c>PreviousVersion</c> to <c>Version</c>.</summary>
public sealed record AliasEvent(
    long Id,
    string Alias,
    AliasAction Action,
    int? Version,
    int? PreviousVersion,
    DateTimeOffset At,
    string? Actor,
    string? Reason,
    long? UndoneBy);

/// <summary>A page of a listing; pass <c>NextPageToken</c> as <c>page_token</c> to get the next one.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextPageToken);

/// <summary>Result of <c>aimass admin verify</c>.</summary>
public sealed record VerifyReport(int BlobsChecked, long BytesChecked, IReadOnlyList<VerifyProblem> Problems);

/// <summary>A blob that is missing or whose content does not match its digest.</summary>
public sealed record VerifyProblem(string Digest, string Problem, IReadOnlyList<string> Versions);

/// <summary>Result of <c>aimass admin gc</c>; <c>ReservationsExpired</c> counts registering versions marked failed.</summary>
public sealed record GcReport(int BlobsRemoved, long BytesFreed, int TempFilesRemoved, long TempBytesFreed, int ReservationsExpired, bool DryRun);

/// <summary>Body of <c>POST /api/v1/admin/backup</c>: a directory on the server's file system.</summary>
public sealed record BackupRequest(string Path);

/// <summary>What a backup wrote.</summary>
public sealed record BackupReport(string Path, int Models, int Versions, int Blobs, long Bytes, DateTimeOffset At);

/// <summary>Body of <c>GET /api/v1/status</c>.</summary>
public sealed record ServerStatus(
    string Status,
    string Version,
    string DataDirectory,
    DateTimeOffset StartedAt,
    int Models,
    int Versions,
    int Blobs,
    long ArtifactBytes);

/// <summary>HTTP headers of the REST API.</summary>
public static class ApiHeaders
{
    /// <summary>Names who acts; recorded in alias history (<c>anonymous</c> when absent).</summary>
    public const string Actor = "X-AiMass-Actor";
}

/// <summary>Stable error codes of the REST API (<c>code</c> field of problem details).</summary>
public static class ErrorCodes
{
    public const string InvalidArgument = "invalid_argument";
    public const string NotFound = "not_found";
    public const string AlreadyExists = "already_exists";
    public const string Conflict = "conflict";
    public const string PayloadTooLarge = "payload_too_large";
    public const string InvalidArtifact = "invalid_artifact";
    public const string DigestMismatch = "digest_mismatch";
    public const string FailedPrecondition = "failed_precondition";
    public const string Internal = "internal";
}
