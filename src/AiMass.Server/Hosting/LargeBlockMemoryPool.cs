using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace AiMass.Server.Hosting;

/// <summary>
/// Kestrel's memory pool with 64 KiB blocks instead of 4 KiB. The socket transport receives at most one block per
/// system call, so multi-gigabyte artifact uploads take 16 times fewer receive calls (less kernel time per byte), and a
/// model host receives an inference request of up to 64 KiB in one call and one wake-up of its handler.
/// Blocks are pinned (the sockets use them directly) and reused; at most <see cref="MaxPooledBlocks"/> are kept.
/// </summary>
internal sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool();

    internal const int MaxPooledBlocks = 1024;
}

internal sealed class LargeBlockMemoryPool : MemoryPool<byte>
{
    private const int BlockSize = 64 * 1024;
    private readonly ConcurrentQueue<Block> _free = new();
    private int _pooled;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > BlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), $"blocks are {BlockSize} bytes");
        }
        if (_free.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _pooled);
            return block;
        }
        return new Block(this);
    }

    private void Return(Block block)
    {
        if (Interlocked.Increment(ref _pooled) <= LargeBlockMemoryPoolFactory.MaxPooledBlocks)
        {
            _free.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _pooled);
        }
    }

    protected override void Dispose(bool disposing) => _free.Clear();

    private sealed class Block(LargeBlockMemoryPool pool) : IMemoryOwner<byte>
    {
        public Memory<byte> Memory { get; } = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true), 0, BlockSize);

        public void Dispose() => pool.Return(this);
    }
}
