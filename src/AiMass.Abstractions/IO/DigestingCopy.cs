using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Threading.Channels;

namespace AiMass.IO;

/// <summary>Where <see cref="DigestingCopy"/> writes: chunks arrive in order with their offset.</summary>
public interface IChunkSink
{
    /// <summary>Writes one chunk. Every chunk but the last is exactly <see cref="DigestingCopy.ChunkSize"/> bytes.</summary>
    ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, long offset, CancellationToken cancellationToken);
}

/// <summary>
/// Copies a stream while computing its SHA-256. Three things overlap: reading chunk k+1 from the source, writing
/// chunk k to the sink and hashing chunk k. Large artifacts therefore move at close to the speed of the slowest of
/// the network, the disk and the hash, in a fixed amount of memory (a few page-aligned 4 MiB buffers).
/// </summary>
public static class DigestingCopy
{
    /// <summary>Size of every chunk but the last; a multiple of the 4 KiB block size, as O_DIRECT writes need.</summary>
    public const int ChunkSize = 4 << 20;

    private const int Buffers = 3;

    /// <summary>Copies into a stream; see <see cref="CopyAsync(Stream, IChunkSink, Action{long}, CancellationToken)"/>.</summary>
    public static Task<(string Digest, long Length)> CopyAsync(Stream source, Stream destination, Action<long>? beforeWrite, CancellationToken cancellationToken) =>
        CopyAsync(source, new StreamChunkSink(destination), beforeWrite, cancellationToken);

    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="sink"/>; returns the digest (<c>sha256:&lt;hex&gt;</c>) and the
    /// byte count. <paramref name="beforeWrite"/> gets the running total before each chunk is written and may throw to
    /// abort (size limits, progress).
    /// </summary>
    public static async Task<(string Digest, long Length)> CopyAsync(Stream source, IChunkSink sink, Action<long>? beforeWrite, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(sink);
        using var pool = new AlignedBufferPool(Buffers, ChunkSize);
        var free = Channel.CreateBounded<AlignedBuffer>(Buffers);
        foreach (var b in pool.All)
        {
            free.Writer.TryWrite(b);
        }
        var filled = Channel.CreateBounded<(AlignedBuffer Buffer, int Count, long Offset)>(new BoundedChannelOptions(Buffers) { SingleReader = true, SingleWriter = true });
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var consumer = Task.Run(async () =>
        {
            await foreach (var (buffer, count, offset) in filled.Reader.ReadAllAsync(abort.Token).ConfigureAwait(false))
            {
                var chunk = buffer.Memory[..count];
                // Not cancellable: a chunk hashes in milliseconds, and a cancelled hash would hide the sink's own error.
                var hashing = Task.Run(() => hash.AppendData(chunk.Span), CancellationToken.None);
                try
                {
                    await sink.WriteAsync(chunk, offset, abort.Token).ConfigureAwait(false);
                }
                finally
                {
                    await hashing.ConfigureAwait(false);
                }
                await free.Writer.WriteAsync(buffer, abort.Token).ConfigureAwait(false);
            }
        }, abort.Token);

        long total = 0;
        try
        {
            while (true)
            {
                var buffer = await ReadOrFailAsync(free.Reader, consumer, abort.Token).ConfigureAwait(false);
                var read = await FillAsync(source, buffer.Memory, abort.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                beforeWrite?.Invoke(total + read);
                await filled.Writer.WriteAsync((buffer, read, total), abort.Token).ConfigureAwait(false);
                total += read;
                if (read < ChunkSize)
                {
                    break;
                }
            }
            filled.Writer.Complete();
            await consumer.ConfigureAwait(false);
        }
        catch
        {
            filled.Writer.TryComplete();
            await abort.CancelAsync().ConfigureAwait(false);
            try
            {
                await consumer.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopped because of the failure rethrown below.
            }
            throw;
        }
        return ("sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset()), total);
    }

    /// <summary>Waits for a free buffer, surfacing a sink failure instead of waiting forever.</summary>
    private static async Task<AlignedBuffer> ReadOrFailAsync(ChannelReader<AlignedBuffer> free, Task consumer, CancellationToken cancellationToken)
    {
        if (free.TryRead(out var ready))
        {
            return ready;
        }
        var next = free.ReadAsync(cancellationToken).AsTask();
        if (await Task.WhenAny(next, consumer).ConfigureAwait(false) == consumer)
        {
            await consumer.ConfigureAwait(false); // throws the sink's exception
            throw new InvalidOperationException("the copy consumer stopped early");
        }
        return await next.ConfigureAwait(false);
    }

    /// <summary>Reads until the buffer is full or the source ends.</summary>
    private static async Task<int> FillAsync(Stream source, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await source.ReadAsync(buffer[total..], cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }
}

/// <summary>An <see cref="IChunkSink"/> over a plain stream (chunks are written in order, offsets ignored).</summary>
public sealed class StreamChunkSink(Stream destination) : IChunkSink
{
    /// <inheritdoc />
    public ValueTask WriteAsync(ReadOnlyMemory<byte> chunk, long offset, CancellationToken cancellationToken) =>
        destination.WriteAsync(chunk, cancellationToken);
}

/// <summary>Native memory aligned to 4 KiB (as O_DIRECT needs), exposed as <see cref="Memory{T}"/>.</summary>
public sealed unsafe class AlignedBuffer : MemoryManager<byte>
{
    private readonly byte* _pointer;
    private readonly int _length;
    private bool _freed;

    internal AlignedBuffer(int length)
    {
        _length = length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, 4096);
    }

    /// <inheritdoc />
    public override Span<byte> GetSpan() => new(_pointer, _length);

    /// <inheritdoc />
    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    /// <inheritdoc />
    public override void Unpin()
    {
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!_freed)
        {
            NativeMemory.AlignedFree(_pointer);
            _freed = true;
        }
    }
}

internal sealed class AlignedBufferPool : IDisposable
{
    public AlignedBufferPool(int count, int size) => All = Enumerable.Range(0, count).Select(_ => new AlignedBuffer(size)).ToArray();

    public AlignedBuffer[] All { get; }

    public void Dispose()
    {
        foreach (var b in All)
        {
            ((IDisposable)b).Dispose();
        }
    }
}
