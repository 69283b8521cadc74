using AiMass.Registry;
using AiMass.Registry.Artifacts;
using AiMass.Registry.Inspection;
using AiMass.Registry.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace AiMass.TestSupport;

/// <summary>A <see cref="ModelRegistry"/> over a real SQLite file and file-system store in a temporary directory.</summary>
public sealed class RegistryHarness : IDisposable
{
    private RegistryHarness(TempDirectory directory, ModelRegistry registry, FileSystemArtifactStore store)
    {
        Directory = directory;
        Registry = registry;
        Store = store;
    }

    public TempDirectory Directory { get; }

    public ModelRegistry Registry { get; }

    public FileSystemArtifactStore Store { get; }

    public static async Task<RegistryHarness> CreateAsync(TimeProvider time, RegistryOptions? options = null, TempDirectory? directory = null)
    {
        directory ??= new TempDirectory();
        var db = new DbContextOptionsBuilder<RegistryDbContext>()
            .UseSqlite(new SqliteConnectionStringBuilder { DataSource = directory.Combine(RegistryBackup.DatabaseFile), Pooling = false }.ToString())
            .AddInterceptors(new SqlitePragmas())
            .Options;
        var store = new FileSystemArtifactStore(directory.Path, time);
        var registry = new ModelRegistry(new PooledDbContextFactory<RegistryDbContext>(db), store, [new OnnxInspector()], options ?? new RegistryOptions(), time);
        await registry.InitializeAsync(CancellationToken.None);
        return new RegistryHarness(directory, registry, store);
    }

    public Task<ModelVersionInfo> RegisterAsync(string model, byte[] content, RegisterVersionRequest? request = null) =>
        Registry.RegisterVersionAsync(model, new MemoryStream(content), request ?? new RegisterVersionRequest(), "tester", CancellationToken.None);

    public void Dispose()
    {
        Registry.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Dispose();
    }
}
