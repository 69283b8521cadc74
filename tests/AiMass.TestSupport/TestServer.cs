using AiMass.Client;
using AiMass.Server;
using Microsoft.AspNetCore.Builder;

namespace AiMass.TestSupport;

/// <summary>A real control plane on Kestrel, port 0, with a fresh SQLite data directory; disposed with its directory.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private TestServer(WebApplication app, TempDirectory directory, Uri address)
    {
        App = app;
        Directory = directory;
        Address = address;
        Client = new AiMassClient(address, "tester");
    }

    public WebApplication App { get; }

    public TempDirectory Directory { get; }

    public string DataDirectory => Directory.Path;

    public Uri Address { get; }

    public AiMassClient Client { get; }

    public static async Task<TestServer> StartAsync(IReadOnlyDictionary<string, string?>? settings = null, TimeProvider? time = null, TempDirectory? directory = null)
    {
        directory ??= new TempDirectory();
        var overrides = new Dictionary<string, string?>
        {
            ["Storage:DataDirectory"] = directory.Path,
            ["Server:Port"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            overrides[k] = v;
        }
        var app = AiMassServer.Build(overrides, time);
        await app.StartAsync();
        return new TestServer(app, directory, app.GetListeningAddress());
    }

    private bool _stopped;

    /// <summary>Stops the control plane and keeps its data directory (to start another server on it).</summary>
    public async Task ShutdownAsync()
    {
        if (_stopped)
        {
            return;
        }
        _stopped = true;
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await ShutdownAsync();
        Directory.Dispose();
    }
}

/// <summary>A directory under the system temp folder, removed on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
        : this(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "aimass-tests", Guid.NewGuid().ToString("N")))
    {
    }

    private TempDirectory(string path)
    {
        Path = path;
        System.IO.Directory.CreateDirectory(Path);
    }

    /// <summary>Takes ownership of an existing directory (removed on dispose).</summary>
    public static TempDirectory Existing(string path) => new(path);

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Waits for a condition by polling until a deadline; never sleeps a guessed time.</summary>
public static class Poll
{
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0}s waiting for {what}");
            }
            await Task.Delay(25);
        }
    }
}
