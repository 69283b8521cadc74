using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace AiMass.Bench.Registry;

/// <summary>An <c>aimass up --port 0</c> child process whose resident memory can be sampled.</summary>
internal sealed partial class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ServerProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<ServerProcess> StartAsync(string dll, string dataDir)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { dll, "up", "--data-dir", dataDir, "--port", "0" })
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["AIMASS__Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(psi)!;
        var address = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null && Listening().Match(e.Data) is { Success: true } m)
            {
                address.TrySetResult(new Uri(m.Groups[1].Value + "/"));
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"[server] {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (await Task.WhenAny(address.Task, Task.Delay(TimeSpan.FromSeconds(60))) != address.Task)
        {
            process.Kill();
            throw new InvalidOperationException("aimass up did not start");
        }
        return new ServerProcess(process, await address.Task);
    }

    /// <summary>Runs <paramref name="action"/> and returns its wall time and the largest growth of the server's RSS during it.</summary>
    public async Task<(double Seconds, long RssGrowth)> MeasureAsync(Action action)
    {
        var baseline = Rss();
        var peak = baseline;
        using var done = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                peak = Math.Max(peak, Rss());
                await Task.Delay(10);
            }
        });
        var sw = Stopwatch.StartNew();
        await Task.Run(action);
        var seconds = sw.Elapsed.TotalSeconds;
        await done.CancelAsync();
        await sampler;
        return (seconds, Math.Max(0, peak - baseline));
    }

    private long Rss()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    [GeneratedRegex(@"listening on (http://[0-9.]+:\d+)")]
    private static partial Regex Listening();
}
