using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AiMass.IO;

/// <summary>
/// Writes an upload to a new file. On Linux it uses O_DIRECT, so a multi-gigabyte upload goes from the network
/// buffers to the disk without filling (and later flushing) the page cache: steady throughput, little CPU, and a cheap
/// fsync. Where O_DIRECT is refused (tmpfs, other systems) it falls back to ordinary writes with early write-back.
/// </summary>
public sealed partial class FileSink : IChunkSink, IDisposable
{
    private const int WriteOnly = 0x1, Create = 0x40, Exclusive = 0x80, CloseOnExec = 0x80000;
    private const int GetFlags = 3, SetFlags = 4;
    private const int Block = 4096;
    private const long WritebackChunk = 16L << 20;
    private readonly SafeFileHandle _handle;
    private bool _direct;
    private long _writebackFrom;

    private FileSink(SafeFileHandle handle, bool direct)
    {
        _handle = handle;
        _direct = direct;
    }

    /// <summary>O_DIRECT of this platform (its value differs between x86-64 and arm64), or 0 where it is not used.</summary>
    private static int DirectFlag { get; } = !OperatingSystem.IsLinux() ? 0 : RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => 0,
    };

    /// <summary>True when writes bypass the page cache.</summary>
    public bool IsDirect => _direct;

    /// <summary>Creates the file (it must not exist) for writing.</summary>
    public static FileSink CreateNew(string path)
    {
        if (DirectFlag != 0)
        {
            var fd = Open(path, WriteOnly | Create | Exclusive | CloseOnExec | DirectFlag, Convert.ToInt32("644", 8));
            if (fd >= 0)
            {
                return new FileSink(new SafeFileHandle(fd, ownsHandle: true), direct: true);
            }
        }
        return new FileSink(File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.Asynchronous), direct: false);
    }

    /// <inheritdoc />
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, long offset, CancellationToken cancellationToken)
    {
        if (_direct && chunk.Length % Block != 0)
        {
            // The last, partial chunk: its whole blocks still go direct, the tail through the page cache.
            var aligned = chunk.Length / Block * Block;
            if (aligned > 0)
            {
                await RandomAccess.WriteAsync(_handle, chunk[..aligned], offset, cancellationToken).ConfigureAwait(false);
            }
            LeaveDirectMode();
            await RandomAccess.WriteAsync(_handle, chunk[aligned..], offset + aligned, cancellationToken).ConfigureAwait(false);
            return;
        }
        await RandomAccess.WriteAsync(_handle, chunk, offset, cancellationToken).ConfigureAwait(false);
        var end = offset + chunk.Length;
        if (!_direct && end - _writebackFrom >= WritebackChunk)
        {
            // Start write-back of what is written so far, so the final fsync waits for the tail only.
            if (OperatingSystem.IsLinux())
            {
                // Best effort: a failure only means the final fsync has more to do.
                _ = SyncFileRange((int)_handle.DangerousGetHandle(), _writebackFrom, end - _writebackFrom, SyncFileRangeWrite);
            }
            _writebackFrom = end;
        }
    }

    /// <summary>Makes the written content durable (fsync).</summary>
    public void Flush() => RandomAccess.FlushToDisk(_handle);

    private void LeaveDirectMode()
    {
        var fd = (int)_handle.DangerousGetHandle();
        var flags = Fcntl(fd, GetFlags, 0);
        if (flags < 0 || Fcntl(fd, SetFlags, flags & ~DirectFlag) < 0)
        {
            throw new IOException($"cannot leave O_DIRECT mode (errno {Marshal.GetLastPInvokeError()})");
        }
        _direct = false;
    }

    /// <inheritdoc />
    public void Dispose() => _handle.Dispose();

    private const uint SyncFileRangeWrite = 2;

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);
}
