using AiMass.TestSupport;
using Microsoft.Extensions.Time.Testing;

namespace AiMass.Registry.Tests;

public sealed class BackupTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 1, 8, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task BackupThenRestore_NewDataDirectoryHasExactlyTheSnapshot()
    {
        using var h = await RegistryHarness.CreateAsync(_time);
        await h.RegisterAsync("m", OnnxModels.Linear(seed: 1));
        await h.RegisterAsync("m", OnnxModels.Linear(seed: 2), new RegisterVersionRequest { Alias = "production" });
        await h.RegisterAsync("other", OnnxModels.Linear(seed: 1));
        using var backup = new TempDirectory();
        var target = backup.Combine("b");

        var report = await h.Registry.BackupAsync(target, _time, default);

        Assert.Equal(2, report.Models);
        Assert.Equal(3, report.Versions);
        Assert.Equal(2, report.Blobs);
        // Changes after the snapshot are not in it.
        await h.RegisterAsync("m", OnnxModels.Linear(seed: 9));
        await h.Registry.DeleteVersionAsync("m", "1", false, null, default);

        using var restoredDir = new TempDirectory();
        var dataDir = restoredDir.Combine("data");
        var manifest = await RegistryBackup.RestoreAsync(target, dataDir, default);
        Assert.Equal(3, manifest.Versions);
        Assert.Equal(["aimass.db", "blobs"], Directory.EnumerateFileSystemEntries(dataDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        using var restored = await RegistryHarness.CreateAsync(_time, directory: new TempDirectoryAt(dataDir).Directory);
        var versions = await restored.Registry.ListVersionsAsync("m", new VersionQuery(Ascending: true), default);
        Assert.Equal([1, 2], versions.Items.Select(v => v.Version));
        Assert.Equal(2, (await restored.Registry.GetVersionAsync("m", "production", default)).Version);
        Assert.Empty((await restored.Registry.VerifyAsync(default)).Problems);
        Assert.Equal(2, restored.Store.List().Count());
    }

    [Fact]
    public async Task Backup_Again_IntoSameDirectory_UpdatesIt()
    {
        using var h = await RegistryHarness.CreateAsync(_time);
        var first = await h.RegisterAsync("m", OnnxModels.Linear(seed: 1));
        using var backup = new TempDirectory();
        await h.Registry.BackupAsync(backup.Path, _time, default);
        await h.Registry.DeleteVersionAsync("m", "1", false, null, default);
        await h.RegisterAsync("m", OnnxModels.Linear(seed: 2));

        var report = await h.Registry.BackupAsync(backup.Path, _time, default);

        Assert.Equal(1, report.Blobs);
        var store = new Artifacts.FileSystemArtifactStore(backup.Path, _time, readOnly: true);
        Assert.DoesNotContain(store.List(), b => b.Digest == first.Digest);
    }

    [Fact]
    public async Task Backup_IntoForeignNonEmptyDirectory_Refused_RestoreIntoNonEmpty_Refused()
    {
        using var h = await RegistryHarness.CreateAsync(_time);
        using var foreign = new TempDirectory();
        await File.WriteAllTextAsync(foreign.Combine("notes.txt"), "mine");

        var ex = await Assert.ThrowsAsync<RegistryException>(() => h.Registry.BackupAsync(foreign.Path, _time, default));
        Assert.Equal(409, ex.Status);
        Assert.Equal("path", (await Assert.ThrowsAsync<RegistryException>(() => h.Registry.BackupAsync("relative/dir", _time, default))).Field);

        using var backup = new TempDirectory();
        await h.Registry.BackupAsync(backup.Path, _time, default);
        var restore = await Assert.ThrowsAsync<RegistryException>(() => RegistryBackup.RestoreAsync(backup.Path, foreign.Path, default));
        Assert.Equal(409, restore.Status);
        Assert.Equal(400, (await Assert.ThrowsAsync<RegistryException>(() => RegistryBackup.RestoreAsync(foreign.Path, backup.Combine("x"), default))).Status);
    }

    [Fact]
    public async Task Restore_CorruptBlobInBackup_Refused_NothingLeftBehind()
    {
        using var h = await RegistryHarness.CreateAsync(_time);
        var v = await h.RegisterAsync("m", OnnxModels.Linear());
        using var backup = new TempDirectory();
        await h.Registry.BackupAsync(backup.Path, _time, default);
        var blob = new Artifacts.FileSystemArtifactStore(backup.Path, _time, readOnly: true).GetPath(v.Digest!);
        var bytes = await File.ReadAllBytesAsync(blob);
        bytes[0] ^= 1;
        await File.WriteAllBytesAsync(blob, bytes);
        using var parent = new TempDirectory();

        var ex = await Assert.ThrowsAsync<RegistryException>(() => RegistryBackup.RestoreAsync(backup.Path, parent.Combine("data"), default));

        Assert.Contains("corrupt", ex.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(parent.Path));
    }

    [Fact]
    public async Task Backup_WhileRegistrationsRun_IsConsistent()
    {
        using var h = await RegistryHarness.CreateAsync(_time);
        await h.RegisterAsync("m", OnnxModels.Linear(seed: 0));
        using var backup = new TempDirectory();
        var writers = Task.Run(async () =>
        {
            for (var i = 1; i < 15; i++)
            {
                await h.RegisterAsync("m", OnnxModels.OfSize(64 * 1024, seed: i));
            }
        });

        var report = await h.Registry.BackupAsync(backup.Path, _time, default);
        await writers;

        using var restoredDir = new TempDirectory();
        var data = restoredDir.Combine("data");
        await RegistryBackup.RestoreAsync(backup.Path, data, default);
        using var restored = await RegistryHarness.CreateAsync(_time, directory: new TempDirectoryAt(data).Directory);
        var versions = await restored.Registry.ListVersionsAsync("m", new VersionQuery(Ascending: true), default);
        Assert.Equal(report.Versions, versions.Items.Count);
        Assert.Equal(Enumerable.Range(1, report.Versions), versions.Items.Select(v => v.Version));
        Assert.Empty((await restored.Registry.VerifyAsync(default)).Problems);
    }

    [Fact]
    public async Task DeletionDuringBackup_KeepsBlobUntilBackupEnds_GcRemovesItAfter()
    {
        using var h = await RegistryHarness.CreateAsync(_time);
        var v = await h.RegisterAsync("m", OnnxModels.Linear());
        await h.Registry.WithBackupSnapshotAsync(_ => Task.FromResult(0), default);
        try
        {
            await h.Registry.DeleteVersionAsync("m", "1", false, null, default);
            Assert.True(h.Store.Exists(v.Digest!));
            var gc = await Assert.ThrowsAsync<RegistryException>(() => h.Registry.CollectGarbageAsync(false, default));
            Assert.Equal(409, gc.Status);
        }
        finally
        {
            h.Registry.EndBackup();
        }

        var report = await h.Registry.CollectGarbageAsync(false, default);

        Assert.Equal(1, report.BlobsRemoved);
        Assert.False(h.Store.Exists(v.Digest!));
    }

    /// <summary>Wraps an existing directory as a <see cref="TempDirectory"/> owner for the harness.</summary>
    private sealed class TempDirectoryAt(string path)
    {
        public TempDirectory Directory { get; } = TempDirectory.Existing(path);
    }
}
