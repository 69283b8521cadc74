using System.Diagnostics;
using System.Text;

namespace AiMass.Cli.Tests;

/// <summary>Runs the real <c>aimass</c> program (the built aimass.dll) as a child process.</summary>
internal static class CliRunner
{
    public static string Dll { get; } = Path.Combine(AppContext.BaseDirectory, "aimass.dll");

    public static ProcessStartInfo StartInfo(IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
        };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment.Remove("AIMASS_SERVER");
        psi.Environment.Remove("AIMASS_DATA_DIR");
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        return psi;
    }

    public static async Task<CliResult> RunAsync(Uri server, params string[] args) =>
        await RunWithEnvAsync(new Dictionary<string, string> { ["AIMASS_SERVER"] = server.ToString() }, null, args);

    public static async Task<CliResult> RunWithEnvAsync(IReadOnlyDictionary<string, string> env, string? workingDirectory, params string[] args)
    {
        using var process = Process.Start(StartInfo(args, env, workingDirectory))!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"aimass {string.Join(' ', args)} did not finish in 2 minutes");
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }
}

internal sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => new StringBuilder().Append("exit ").Append(ExitCode).AppendLine()
        .AppendLine("stdout:").AppendLine(Stdout).AppendLine("stderr:").AppendLine(Stderr).ToString();
}
