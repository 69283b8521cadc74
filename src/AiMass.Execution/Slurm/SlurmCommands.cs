using System.ComponentModel;
using System.Diagnostics;

namespace AiMass.Execution.Slurm;

/// <summary>Runs Slurm's commands; a seam so that tests can count or replace the calls.</summary>
public interface ISlurmCommands
{
    /// <summary>
    /// Runs <paramref name="tool"/> (<c>sbatch</c>, <c>squeue</c>, ...) and returns its standard output. Throws
    /// <see cref="ExecutorUnavailableException"/> when Slurm cannot be reached (controller down, command timed out,
    /// command missing) and <see cref="SlurmCommandException"/> when Slurm refused the request.
    /// </summary>
    string Run(string tool, IReadOnlyList<string> arguments);
}

/// <summary>Slurm answered, and refused: an invalid partition, an impossible request, an unknown job.</summary>
public sealed class SlurmCommandException : InvalidOperationException
{
    /// <summary>Creates the exception with Slurm's own message.</summary>
    public SlurmCommandException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public SlurmCommandException()
    {
    }

    /// <summary>Creates the exception with an inner exception.</summary>
    public SlurmCommandException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>Runs Slurm's command-line tools as child processes, each bounded by a timeout.</summary>
public sealed class SlurmProcessCommands : ISlurmCommands
{
    // What Slurm's tools print when the controller cannot be reached (src/common/slurm_protocol_api.c, slurm_errno.c).
    private static readonly string[] Unreachable =
    [
        "Unable to contact slurm controller",
        "Socket timed out",
        "Connection refused",
        "Communication connection failure",
        "Zero Bytes were transmitted or received",
        "Slurm controller not responding",
        "Unable to establish control machine",
        "Munge encode failed",
        "Protocol authentication error",
    ];

    private readonly SlurmOptions _options;

    /// <summary>Creates the runner.</summary>
    public SlurmProcessCommands(SlurmOptions options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <inheritdoc />
    public string Run(string tool, IReadOnlyList<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var path = _options.BinDirectory.Length == 0 ? tool : Path.Combine(_options.BinDirectory, tool);
        var info = new ProcessStartInfo(path)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        if (_options.Conf.Length > 0)
        {
            info.Environment["SLURM_CONF"] = _options.Conf;
        }
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new ExecutorUnavailableException($"{tool} did not start");
        }
        catch (Win32Exception e)
        {
            throw new ExecutorUnavailableException($"cannot run {path}: {e.Message} (is slurm-client installed, or Slurm:BinDirectory set?)", e);
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(_options.CommandTimeout))
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }
                throw new ExecutorUnavailableException($"{tool} did not answer within {_options.CommandTimeout.TotalSeconds:0.#} s (is slurmctld running?)");
            }
            process.WaitForExit();
            var output = stdout.GetAwaiter().GetResult();
            var error = stderr.GetAwaiter().GetResult().Trim();
            if (process.ExitCode == 0)
            {
                return output;
            }
            var message = $"{tool} failed (exit {process.ExitCode}): {(error.Length > 0 ? error : output.Trim())}";
            if (Unreachable.Any(u => error.Contains(u, StringComparison.OrdinalIgnoreCase)))
            {
                throw new ExecutorUnavailableException(message);
            }
            throw new SlurmCommandException(message);
        }
    }
}
