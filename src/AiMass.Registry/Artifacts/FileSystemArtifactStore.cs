using System.Security.Cryptography;
using AiMass.IO;

namespace AiMass.Registry.Artifacts;

/// <summary>
/// Blobs as files under <c>ROOT/blobs/sha256/ab/abcdef…</c>. Uploads go to <c>ROOT/tmp</c>, are fsynced, then renamed
/// into place and the directory fsynced: a crash leaves either no blob or a complete one, plus temporary files that
/// <see cref="CollectTemporaryFiles"/> removes.
/// </summary>
public sealed class FileSystemArtifactStore : IArtifactStore
{
    private const int BufferSize = 1 << 20;
    private const string TempSuffix = ".part";
    private readonly string _blobRoot;
    private readonly string _tempRoot;
    private readonly TimeProvider _time;

    /// <summary>Creates a store rooted at <paramref name="root"/>; its directories are created when missing unless <paramref name="readOnly"/>.</summary>
    public FileSystemArtifactStore(string root, TimeProvider time, bool readOnly = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        Root = Path.GetFullPath(root);
        _blobRoot = Path.Combine(Root, "blobs", "sha256");
        _tempRoot = Path.Combine(Root, "tmp");
        _time = time;
        if (!readOnly)
        {
            System.IO.Directory.CreateDirectory(_blobRoot);
            System.IO.Directory.CreateDirectory(_tempRoot);
        }
    }

    /// <summary>The store's root directory.</summary>
    public string Root { get; }

    /// <inheritdoc />
    public async Task<StagedArtifact> StageAsync(Stream content, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        var path = Path.Combine(_tempRoot, $"{Guid.NewGuid():N}{TempSuffix}");
        var ok = false;
        try
        {
            string digest;
            long size;
            using (var sink = FileSink.CreateNew(path))
            {
                (digest, size) = await DigestingCopy.CopyAsync(content, sink, total =>
                {
                    if (total > maxBytes)
                    {
                        throw new RegistryException(413, ErrorCodes.PayloadTooLarge,
                            $"the artifact is larger than the upload limit of {maxBytes} bytes (Registry:MaxUploadBytes)");
                    }
                }, cancellationToken).ConfigureAwait(false);
                sink.Flush();
            }
            var staged = new StagedArtifact(path, digest, size);
            ok = true;
            return staged;
        }
        finally
        {
            if (!ok)
            {
                TryDelete(path);
            }
        }
    }

    /// <inheritdoc />
    public void Commit(StagedArtifact staged)
    {
        ArgumentNullException.ThrowIfNull(staged);
        var target = GetPath(staged.Digest);
        var dir = Path.GetDirectoryName(target)!;
        var created = !System.IO.Directory.Exists(dir);
        System.IO.Directory.CreateDirectory(dir);
        // When the blob exists (same content registered again) the verified new copy replaces it: still one blob, and a
        // stored copy damaged on disk since is healed. Readers of the old file keep their open handle.
        File.Move(staged.TempPath, target, overwrite: true);
        staged.Committed = true;
        NativeFile.SyncDirectory(dir);
        if (created)
        {
            NativeFile.SyncDirectory(_blobRoot);
        }
    }

    /// <inheritdoc />
    public bool Exists(string digest) => File.Exists(GetPath(digest));

    /// <inheritdoc />
    public long? GetSize(string digest)
    {
        var info = new FileInfo(GetPath(digest));
        return info.Exists ? info.Length : null;
    }

    /// <inheritdoc />
    public string GetPath(string digest)
    {
        if (!Digests.IsValid(digest))
        {
            throw new ArgumentException($"'{digest}' is not a sha256 digest", nameof(digest));
        }
        var hex = Digests.Hex(digest);
        return Path.Combine(_blobRoot, hex[..2], hex);
    }

    /// <inheritdoc />
    public Stream OpenRead(string digest) =>
        new FileStream(GetPath(digest), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferSize, FileOptions.SequentialScan | FileOptions.Asynchronous);

    /// <inheritdoc />
    public long Delete(string digest)
    {
        var info = new FileInfo(GetPath(digest));
        if (!info.Exists)
        {
            return 0;
        }
        var size = info.Length;
        info.Delete();
        return size;
    }

    /// <inheritdoc />
    public IEnumerable<(string Digest, long Size)> List()
    {
        if (!System.IO.Directory.Exists(_blobRoot))
        {
            yield break;
        }
        foreach (var dir in System.IO.Directory.EnumerateDirectories(_blobRoot))
        {
            foreach (var file in new DirectoryInfo(dir).EnumerateFiles())
            {
                var digest = Digests.Sha256Prefix + file.Name;
                if (Digests.IsValid(digest))
                {
                    yield return (digest, file.Length);
                }
            }
        }
    }

    /// <inheritdoc />
    public async Task<string?> VerifyAsync(string digest, CancellationToken cancellationToken)
    {
        var path = GetPath(digest);
        if (!File.Exists(path))
        {
            return "blob is missing";
        }
        await using var stream = OpenRead(digest);
        var actual = Digests.FromHash(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
        return actual == digest ? null : $"content hashes to {actual}";
    }

    /// <inheritdoc />
    public (int Files, long Bytes) CollectTemporaryFiles(TimeSpan olderThan)
    {
        var cutoff = _time.GetUtcNow().UtcDateTime - olderThan;
        int files = 0;
        long bytes = 0;
        if (!System.IO.Directory.Exists(_tempRoot))
        {
            return (0, 0);
        }
        foreach (var file in new DirectoryInfo(_tempRoot).EnumerateFiles())
        {
            if (olderThan > TimeSpan.Zero && file.LastWriteTimeUtc > cutoff)
            {
                continue;
            }
            var length = file.Length;
            if (TryDelete(file.FullName))
            {
                files++;
                bytes += length;
            }
        }
        return (files, bytes);
    }

    private static bool TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
