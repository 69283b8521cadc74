namespace AiMass.Server.Hosting;

/// <summary>An exclusive lock on a data directory, so two control planes never share one SQLite file and blob store.</summary>
public sealed class DataDirectoryLock : IDisposable
{
    private readonly FileStream _stream;

    private DataDirectoryLock(FileStream stream) => _stream = stream;

    /// <summary>Takes the lock or throws <see cref="IOException"/> saying who to stop.</summary>
    public static DataDirectoryLock Acquire(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, "aimass.lock");
        // The process id goes to a separate file: the locked file cannot be read by the process that is refused.
        var pidPath = Path.Combine(dataDirectory, "aimass.pid");
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            File.WriteAllText(pidPath, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return new DataDirectoryLock(stream);
        }
        catch (IOException ex)
        {
            var pid = TryRead(pidPath);
            throw new IOException(
                $"the data directory '{dataDirectory}' is in use by another AI Mass control plane{(pid is null ? "" : $" (process {pid})")}; stop it or choose another --data-dir",
                ex);
        }
    }

    private static string? TryRead(string path)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return text.Length == 0 ? null : text;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();
}
