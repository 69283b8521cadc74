namespace AiMass.Registry.Storage;

// Times are Unix milliseconds: SQLite has no native timestamp type that sorts and compares correctly in EF Core.

internal sealed class ModelRow
{
    public long Id { get; set; }
    public string Name { get; set; } = "";
    public string? Description { get; set; }
    /// <summary>The highest version number ever assigned; versions are never reused.</summary>
    public int LatestVersion { get; set; }
    public int VersionCount { get; set; }
    public long CreatedAtMs { get; set; }
    public long UpdatedAtMs { get; set; }
    public List<ModelTagRow> Tags { get; set; } = [];
    public List<AliasRow> Aliases { get; set; } = [];
}

internal sealed class ModelTagRow
{
    public long ModelId { get; set; }
    public string Key { get; set; } = "";
    public string Value { get; set; } = "";
}

internal sealed class VersionRow
{
    public long Id { get; set; }
    public long ModelId { get; set; }
    public ModelRow Model { get; set; } = null!;
    public int Version { get; set; }
    public VersionStatus Status { get; set; }
    public string? StatusMessage { get; set; }
    public string Format { get; set; } = "";
    public string Digest { get; set; } = "";
    public long Size { get; set; }
    public string? SignatureJson { get; set; }
    public string ParamsJson { get; set; } = "{}";
    public string MetricsJson { get; set; } = "{}";
    public string? Description { get; set; }
    public string? Source { get; set; }
    public string? DatasetDigest { get; set; }
    public string? ParentModel { get; set; }
    public int? ParentVersion { get; set; }
    public long CreatedAtMs { get; set; }
    public long UpdatedAtMs { get; set; }
    public List<VersionTagRow> Tags { get; set; } = [];
}

internal sealed class VersionTagRow
{
    public long VersionId { get; set; }
    public string Key { get; set; } = "";
    public string Value { get; set; } = "";
}

internal sealed class AliasRow
{
    public long ModelId { get; set; }
    public string Name { get; set; } = "";
    public int Version { get; set; }
    public long UpdatedAtMs { get; set; }
}

internal sealed class AliasEventRow
{
    public long Id { get; set; }
    public long ModelId { get; set; }
    public string Alias { get; set; } = "";
    public AliasAction Action { get; set; }
    public int? Version { get; set; }
    public int? PreviousVersion { get; set; }
    public long AtMs { get; set; }
    public string? Actor { get; set; }
    public string? Reason { get; set; }
    /// <summary>The rollback event that undid this move, so repeated rollbacks walk further back.</summary>
    public long? UndoneBy { get; set; }
}
