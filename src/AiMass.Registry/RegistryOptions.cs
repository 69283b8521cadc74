using System.ComponentModel.DataAnnotations;

namespace AiMass.Registry;

/// <summary>Settings of the model registry (configuration section <c>Registry</c>).</summary>
public sealed class RegistryOptions
{
    /// <summary>The configuration section name.</summary>
    public const string Section = "Registry";

    /// <summary>Largest artifact accepted, in bytes (413 above it). Default 16 GiB.</summary>
    [Range(1, long.MaxValue)]
    public long MaxUploadBytes { get; set; } = 16L << 30;

    /// <summary>Temporary upload files older than this are removed by garbage collection.</summary>
    public TimeSpan TempFileMaxAge { get; set; } = TimeSpan.FromHours(6);

    /// <summary>A reserved (registering) version whose artifact has not arrived after this long is marked failed by garbage collection.</summary>
    public TimeSpan ReservationTimeout { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Page size when a listing names none.</summary>
    [Range(1, 1000)]
    public int DefaultPageSize { get; set; } = 100;

    /// <summary>Largest page size a listing may ask for.</summary>
    [Range(1, 10000)]
    public int MaxPageSize { get; set; } = 1000;
}

/// <summary>Filters and order of a model listing.</summary>
/// <param name="NamePrefix">Only models whose name starts with this.</param>
/// <param name="Tag"><c>key</c> (has the tag) or <c>key=value</c>.</param>
/// <param name="Alias">Only models that have this alias.</param>
/// <param name="OrderBy"><c>name</c> (default), <c>created</c> or <c>updated</c>.</param>
/// <param name="Descending">Reverse order.</param>
public sealed record ModelQuery(
    string? NamePrefix = null,
    string? Tag = null,
    string? Alias = null,
    string? OrderBy = null,
    bool Descending = false,
    int? PageSize = null,
    string? PageToken = null);

/// <summary>Filters and order of a version listing (newest first by default).</summary>
/// <param name="Status">One status, or <c>all</c>; by default every status but <c>archived</c>.</param>
public sealed record VersionQuery(
    string? Status = null,
    string? Tag = null,
    string? Alias = null,
    bool Ascending = false,
    int? PageSize = null,
    string? PageToken = null);
