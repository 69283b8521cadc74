namespace AiMass.Registry.Artifacts;

/// <summary>Immutable blobs addressed by their SHA-256 digest. Writes are staged and committed atomically.</summary>
public interface IArtifactStore
{
    /// <summary>Streams <paramref name="content"/> to a durable temporary file, computing its digest and size on the way.</summary>
    /// <param name="content">The bytes; read once, never held in memory whole.</param>
    /// <param name="maxBytes">Refuse (413) beyond this many bytes.</param>
    /// <param name="cancellationToken">Aborts the upload; the temporary file is removed.</param>
    Task<StagedArtifact> StageAsync(Stream content, long maxBytes, CancellationToken cancellationToken);

    /// <summary>Moves a staged file to its content address (a no-op when that blob already exists) and makes the move durable.</summary>
    void Commit(StagedArtifact staged);

    /// <summary>True when the blob exists.</summary>
    bool Exists(string digest);

    /// <summary>The size of a blob, or null when it does not exist.</summary>
    long? GetSize(string digest);

    /// <summary>The local file that holds a blob (lets the host use sendfile and range requests).</summary>
    string GetPath(string digest);

    /// <summary>Opens a blob for reading.</summary>
    Stream OpenRead(string digest);

    /// <summary>Deletes a blob; returns the bytes freed (0 when it did not exist).</summary>
    long Delete(string digest);

    /// <summary>Every stored blob with its size.</summary>
    IEnumerable<(string Digest, long Size)> List();

    /// <summary>Recomputes the digest of a blob; returns null when it matches, else what is wrong.</summary>
    Task<string?> VerifyAsync(string digest, CancellationToken cancellationToken);

    /// <summary>Removes temporary files older than <paramref name="olderThan"/> (all of them when zero).</summary>
    (int Files, long Bytes) CollectTemporaryFiles(TimeSpan olderThan);
}

/// <summary>An upload written to a temporary file and not yet committed; disposing discards it unless committed.</summary>
public sealed class StagedArtifact : IDisposable
{
    internal StagedArtifact(string path, string digest, long size)
    {
        TempPath = path;
        Digest = digest;
        Size = size;
    }

    /// <summary>Where the staged bytes are (readable for inspection before commit).</summary>
    public string TempPath { get; }

    /// <summary>The SHA-256 digest of the content.</summary>
    public string Digest { get; }

    /// <summary>Content length in bytes.</summary>
    public long Size { get; }

    internal bool Committed { get; set; }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!Committed)
        {
            try
            {
                File.Delete(TempPath);
            }
            catch (IOException)
            {
                // Left for garbage collection of temporary files.
            }
        }
    }
}
