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
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            using (var writer = new StreamWriter(stream, leaveOpen: true))
            {
                writer.Write(Environment.ProcessId);
            }
            stream.Flush();
            return new DataDirectoryLock(stream);
        }
        catch (IOException ex)
        {
            var pid = TryRead(path);
            throw new IOException(
                $"the data directory '{dataDirectory}' is in use by another AI Mass control plane{(pid is null ? "" : $" (process {pid})")}; stop it or choose another --data-dir",
                ex);
        }
    }

    private static string? TryRead(string path)
    {
        try
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(s);
            var text = r.ReadToEnd().Trim();
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
