using System.Runtime.InteropServices;

namespace AiMass.Registry.Artifacts;

/// <summary>fsync of directories, which .NET does not expose: a rename is durable only once its directory is synced.</summary>
internal static partial class NativeFile
{
    private const int ReadOnly = 0;

    public static void SyncDirectory(string path)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return;
        }
        var fd = Open(path, ReadOnly);
        if (fd < 0)
        {
            throw new IOException($"cannot open directory '{path}' to sync it (errno {Marshal.GetLastPInvokeError()})");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{path}' failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
