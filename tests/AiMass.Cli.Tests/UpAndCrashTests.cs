using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using AiMass.Client;
using AiMass.Registry;
using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

/// <summary>The real <c>aimass up</c> process: start, stop on SIGTERM, and SIGKILL in the middle of an upload.</summary>
public sealed partial class UpAndCrashTests
{
    [Fact]
    public async Task Up_PrintsAddressAndDataDir_StopsCleanlyOnSigterm()
    {
        using var data = new TempDirectory();
        await using var server = await UpProcess.StartAsync(data.Path);

        Assert.Contains(data.Path, server.Banner, StringComparison.Ordinal);
        using var client = new AiMassClient(server.Address);
        Assert.Equal(data.Path, (await client.GetStatusAsync()).DataDirectory);

        var exit = await server.StopAsync(signal: 15);

        Assert.Equal(0, exit);
        Assert.Contains("stopped", server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Up_SecondInstanceOnSameDataDir_RefusedWithReason()
    {
        using var data = new TempDirectory();
        await using var first = await UpProcess.StartAsync(data.Path);

        var second = await CliRunner.RunWithEnvAsync(new Dictionary<string, string>(), null, "up", "--data-dir", data.Path, "--port", "0");

        Assert.Equal(1, second.ExitCode);
        Assert.Contains("in use by another AI Mass control plane", second.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Up_PortTaken_Exit1()
    {
        using var data = new TempDirectory();
        await using var first = await UpProcess.StartAsync(data.Path);
        using var other = new TempDirectory();

        var second = await CliRunner.RunWithEnvAsync(new Dictionary<string, string>(), null, "up", "--data-dir", other.Path, "--port", first.Address.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(1, second.ExitCode);
        Assert.Contains("already in use", second.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Up_ConfigurationFromEnvironment_AppliesAndIsValidated()
    {
        using var data = new TempDirectory();
        await using (var server = await UpProcess.StartAsync(data.Path, new Dictionary<string, string> { ["AIMASS__Registry__MaxUploadBytes"] = "1000" }))
        {
            var file = Path.Combine(data.Path, "..", $"{Guid.NewGuid():N}.bin");
            await File.WriteAllBytesAsync(file, new byte[2000]);
            try
            {
                var r = await CliRunner.RunAsync(server.Address, "models", "register", file, "--name", "m", "--format", "raw");
                Assert.Equal(1, r.ExitCode);
                Assert.Contains("payload_too_large", r.Stderr, StringComparison.Ordinal);
            }
            finally
            {
                File.Delete(file);
            }
        }

        using var other = new TempDirectory();
        var invalid = await CliRunner.RunWithEnvAsync(new Dictionary<string, string> { ["AIMASS__Registry__MaxPageSize"] = "0" }, null,
            "up", "--data-dir", other.Path, "--port", "0");
        Assert.NotEqual(0, invalid.ExitCode);
        Assert.Contains("MaxPageSize", invalid.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SigkillDuringLargeUpload_RestartLeavesNoPartialVersion_AndCollectsTempFiles()
    {
        using var data = new TempDirectory();
        var good = OnnxModels.Linear(seed: 1);
        await using (var server = await UpProcess.StartAsync(data.Path))
        {
            using var client = new AiMassClient(server.Address);
            await client.RegisterVersionAsync("big", new MemoryStream(good));

            // Stream 256 MiB; once the server has written part of it to its temporary file, kill it.
            var tmp = Path.Combine(data.Path, "tmp");
            var upload = client.RegisterVersionAsync("big", new EndlessStream(256L << 20), new RegisterVersionRequest { Format = "raw" });
            await Poll.UntilAsync(() => Task.FromResult(Directory.EnumerateFiles(tmp).Any(f => new FileInfo(f).Length > (8 << 20))),
                TimeSpan.FromSeconds(60), "the upload to reach the server's temporary file");
            await server.KillAsync();
            await Assert.ThrowsAnyAsync<Exception>(() => upload);
            Assert.NotEmpty(Directory.EnumerateFiles(tmp));
        }

        await using (var restarted = await UpProcess.StartAsync(data.Path))
        {
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(data.Path, "tmp")));
            using var client = new AiMassClient(restarted.Address);
            var versions = await client.ListVersionsAsync("big", status: "all");
            var only = Assert.Single(versions.Items);
            Assert.Equal(VersionStatus.Ready, only.Status);
            Assert.Empty((await client.VerifyAsync()).Problems);
            // Numbering continues without a gap.
            Assert.Equal(2, (await client.RegisterVersionAsync("big", new MemoryStream(OnnxModels.Linear(seed: 2)))).Version);
        }
    }

    /// <summary>Deterministic bytes of a given length, produced as they are read (never held in memory).</summary>
    private sealed class EndlessStream(long length) : ReadOnlyStream
    {
        private long _position;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = (int)Math.Min(buffer.Length, length - _position);
            var span = buffer.Span;
            for (var i = 0; i < n; i++)
            {
                span[i] = (byte)((_position + i) * 31);
            }
            _position += n;
            return ValueTask.FromResult(n);
        }
    }

    /// <summary>A running <c>aimass up --port 0</c> child process.</summary>
    private sealed partial class UpProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly System.Text.StringBuilder _output = new();

        private UpProcess(Process process) => _process = process;

        public Uri Address { get; private set; } = null!;

        public string Banner { get; private set; } = "";

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public static async Task<UpProcess> StartAsync(string dataDir, IReadOnlyDictionary<string, string>? env = null)
        {
            var process = Process.Start(CliRunner.StartInfo(["up", "--data-dir", dataDir, "--port", "0"], env))!;
            var up = new UpProcess(process);
            var address = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    return;
                }
                lock (up._output)
                {
                    up._output.AppendLine(e.Data);
                }
                if (ListeningRegex().Match(e.Data) is { Success: true } m)
                {
                    address.TrySetResult(new Uri(m.Groups[1].Value + "/"));
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (up._output)
                    {
                        up._output.AppendLine(e.Data);
                    }
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var exited = process.WaitForExitAsync();
            var done = await Task.WhenAny(address.Task, exited, Task.Delay(TimeSpan.FromSeconds(60)));
            if (done != address.Task)
            {
                await up.KillAsync();
                throw new InvalidOperationException($"aimass up did not report its address:\n{up.Output}");
            }
            up.Address = await address.Task;
            up.Banner = up.Output;
            return up;
        }

        public async Task<int> StopAsync(int signal)
        {
            _ = Kill(_process.Id, signal);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(cts.Token);
            _process.WaitForExit(); // flush the redirected output
            return _process.ExitCode;
        }

        public async Task KillAsync()
        {
            if (!_process.HasExited)
            {
                _ = Kill(_process.Id, 9);
                await _process.WaitForExitAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await KillAsync();
            _process.Dispose();
        }

        [LibraryImport("libc", EntryPoint = "kill")]
        private static partial int Kill(int pid, int signal);

        [GeneratedRegex(@"listening on (http://[0-9.]+:\d+)")]
        private static partial Regex ListeningRegex();
    }
}
