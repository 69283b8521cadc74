using System.Security.Cryptography;
using System.Text.Json;
using AiMass.Registry.Artifacts;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;

namespace AiMass.Registry;

/// <summary>The manifest a completed backup ends with (<c>backup.json</c>); its presence marks the backup complete.</summary>
public sealed record BackupManifest(string Format, DateTimeOffset CreatedAt, int Models, int Versions, int Blobs, long Bytes, string Database);

/// <summary>
/// Online backup and offline restore of an embedded data directory. A backup directory has the layout of a data
/// directory (<c>aimass.db</c>, <c>blobs/</c>) plus <c>backup.json</c>, written last.
/// </summary>
public static class RegistryBackup
{
    /// <summary>The manifest format written by this version.</summary>
    public const string FormatName = "aimass-backup/1";

    /// <summary>The manifest file name.</summary>
    public const string ManifestFile = "backup.json";

    /// <summary>The database file name inside a data directory and a backup.</summary>
    public const string DatabaseFile = "aimass.db";

    /// <summary>
    /// Writes a consistent snapshot while the registry keeps serving: the database is copied with SQLite's online
    /// backup API under the write gate, then the blobs it references are copied while blob deletion is held back.
    /// Re-running into the same directory copies only new blobs and drops the ones the snapshot no longer needs.
    /// </summary>
    public static async Task<BackupReport> BackupAsync(this ModelRegistry registry, string directory, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(time);
        if (string.IsNullOrWhiteSpace(directory) || !Path.IsPathFullyQualified(directory))
        {
            throw RegistryException.Invalid("path", $"backup path '{directory}' must be an absolute directory path on the server");
        }
        var target = Path.GetFullPath(directory);
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any() && !File.Exists(Path.Combine(target, ManifestFile)))
        {
            throw RegistryException.Conflict($"'{target}' is not empty and holds no AI Mass backup; choose an empty or new directory", ErrorCodes.FailedPrecondition);
        }
        if (registry.Store is not FileSystemArtifactStore store)
        {
            throw RegistryException.Conflict("backup needs the file-system artifact store", ErrorCodes.FailedPrecondition);
        }
        if (IsInside(target, store.Root))
        {
            throw RegistryException.Invalid("path", $"backup path '{target}' is inside the data directory '{store.Root}'");
        }
        Directory.CreateDirectory(target);
        var dbPart = Path.Combine(target, DatabaseFile + ".part");

        var snapshot = await registry.WithBackupSnapshotAsync(async db =>
        {
            if (!db.Database.IsSqlite())
            {
                throw RegistryException.Conflict("online backup is implemented for the embedded SQLite store", ErrorCodes.FailedPrecondition);
            }
            var connection = (SqliteConnection)db.Database.GetDbConnection();
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            File.Delete(dbPart);
            using (var destination = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = dbPart, Pooling = false }.ToString()))
            {
                destination.Open();
                connection.BackupDatabase(destination);
            }
            var blobs = await db.Versions.Where(v => v.Digest != "").Select(v => new { v.Digest, v.Size }).Distinct().ToListAsync(cancellationToken).ConfigureAwait(false);
            var models = await db.Models.CountAsync(cancellationToken).ConfigureAwait(false);
            var versions = await db.Versions.CountAsync(cancellationToken).ConfigureAwait(false);
            return (Blobs: blobs.Select(b => (b.Digest, b.Size)).ToList(), Models: models, Versions: versions);
        }, cancellationToken).ConfigureAwait(false);

        try
        {
            var wanted = snapshot.Blobs.Select(b => b.Digest).ToHashSet(StringComparer.Ordinal);
            var backupStore = new FileSystemArtifactStore(target, time, readOnly: true);
            foreach (var (digest, size) in snapshot.Blobs)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (backupStore.GetSize(digest) == size)
                {
                    continue; // already copied by an earlier backup into this directory; blobs are immutable
                }
                await CopyDurablyAsync(store.GetPath(digest), backupStore.GetPath(digest), expectedDigest: null, cancellationToken).ConfigureAwait(false);
            }
            foreach (var (digest, _) in backupStore.List().ToList())
            {
                if (!wanted.Contains(digest))
                {
                    backupStore.Delete(digest);
                }
            }
            SyncFile(dbPart);
            File.Move(dbPart, Path.Combine(target, DatabaseFile), overwrite: true);
            var at = time.GetUtcNow();
            var manifest = new BackupManifest(FormatName, at, snapshot.Models, snapshot.Versions, snapshot.Blobs.Count, snapshot.Blobs.Sum(b => b.Size), DatabaseFile);
            var manifestPart = Path.Combine(target, ManifestFile + ".part");
            await File.WriteAllTextAsync(manifestPart, JsonSerializer.Serialize(manifest, AiMassJson.Options), cancellationToken).ConfigureAwait(false);
            SyncFile(manifestPart);
            File.Move(manifestPart, Path.Combine(target, ManifestFile), overwrite: true);
            NativeFile.SyncDirectory(target);
            return new BackupReport(target, manifest.Models, manifest.Versions, manifest.Blobs, manifest.Bytes, at);
        }
        finally
        {
            registry.EndBackup();
        }
    }

    /// <summary>
    /// Restores a backup into a new (missing or empty) data directory: everything is copied and every blob re-hashed
    /// into a sibling staging directory, which is renamed into place only when complete.
    /// </summary>
    public static async Task<BackupManifest> RestoreAsync(string backupDirectory, string dataDirectory, CancellationToken cancellationToken)
    {
        var source = Path.GetFullPath(backupDirectory);
        var target = Path.GetFullPath(dataDirectory);
        var manifestPath = Path.Combine(source, ManifestFile);
        if (!File.Exists(manifestPath))
        {
            throw RegistryException.Invalid("backup", $"'{source}' is not a complete AI Mass backup: it has no {ManifestFile}");
        }
        var manifest = JsonSerializer.Deserialize<BackupManifest>(await File.ReadAllTextAsync(manifestPath, cancellationToken).ConfigureAwait(false), AiMassJson.Options)
            ?? throw RegistryException.Invalid("backup", $"{manifestPath} is empty");
        if (manifest.Format != FormatName)
        {
            throw RegistryException.Invalid("backup", $"{manifestPath} has format '{manifest.Format}', this version reads '{FormatName}'");
        }
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            throw RegistryException.Conflict($"data directory '{target}' is not empty; restore needs a new or empty directory", ErrorCodes.FailedPrecondition);
        }
        var parent = Path.GetDirectoryName(target) ?? throw RegistryException.Invalid("data_dir", $"'{target}' has no parent directory");
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.restoring-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            await CopyDurablyAsync(Path.Combine(source, manifest.Database), Path.Combine(staging, DatabaseFile), null, cancellationToken).ConfigureAwait(false);
            var backupStore = new FileSystemArtifactStore(source, TimeProvider.System, readOnly: true);
            var restoredStore = new FileSystemArtifactStore(staging, TimeProvider.System, readOnly: true);
            foreach (var (digest, _) in backupStore.List())
            {
                await CopyDurablyAsync(backupStore.GetPath(digest), restoredStore.GetPath(digest), digest, cancellationToken).ConfigureAwait(false);
            }
            var missing = await MissingBlobsAsync(Path.Combine(staging, DatabaseFile), restoredStore, cancellationToken).ConfigureAwait(false);
            if (missing.Count > 0)
            {
                throw RegistryException.Invalid("backup", $"the backup lacks {missing.Count} blob(s) its database references, e.g. {missing[0]}");
            }
            if (Directory.Exists(target))
            {
                Directory.Delete(target);
            }
            Directory.Move(staging, target);
            NativeFile.SyncDirectory(parent);
            return manifest;
        }
        catch
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
            throw;
        }
    }

    // Opened read-write on purpose: closing the last connection then checkpoints and removes the -wal and -shm files.
    private static async Task<List<string>> MissingBlobsAsync(string databasePath, FileSystemArtifactStore store, CancellationToken cancellationToken)
    {
        var missing = new List<string>();
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString());
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT DISTINCT digest FROM model_versions WHERE digest <> ''";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var digest = reader.GetString(0);
            if (!store.Exists(digest))
            {
                missing.Add(digest);
            }
        }
        return missing;
    }

    /// <summary>Copies to a temporary sibling, fsyncs, renames; optionally checks the SHA-256 of what was copied.</summary>
    private static async Task CopyDurablyAsync(string from, string to, string? expectedDigest, CancellationToken cancellationToken)
    {
        var dir = Path.GetDirectoryName(to)!;
        Directory.CreateDirectory(dir);
        var part = to + ".part";
        await using (var input = new FileStream(from, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 20, FileOptions.SequentialScan | FileOptions.Asynchronous))
        await using (var output = new FileStream(part, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous))
        {
            if (expectedDigest is null)
            {
                await input.CopyToAsync(output, 1 << 20, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 20];
                int n;
                while ((n = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    await output.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }
                var actual = Digests.FromHash(hash.GetHashAndReset());
                if (actual != expectedDigest)
                {
                    throw RegistryException.Invalid("backup", $"blob {expectedDigest} in the backup is corrupt: its content hashes to {actual}");
                }
            }
            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            output.Flush(flushToDisk: true);
        }
        File.Move(part, to, overwrite: true);
        NativeFile.SyncDirectory(dir);
    }

    private static void SyncFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        stream.Flush(flushToDisk: true);
    }

    private static bool IsInside(string path, string root)
    {
        var r = Path.TrimEndingDirectorySeparator(root) + Path.DirectorySeparatorChar;
        return (Path.TrimEndingDirectorySeparator(path) + Path.DirectorySeparatorChar).StartsWith(r, StringComparison.Ordinal);
    }
}
