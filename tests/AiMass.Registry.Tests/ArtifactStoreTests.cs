using System.Security.Cryptography;
using AiMass.IO;
using AiMass.Registry.Artifacts;
using AiMass.TestSupport;
using Microsoft.Extensions.Time.Testing;

namespace AiMass.Registry.Tests;

public sealed class ArtifactStoreTests
{
    public static TheoryData<int, bool> Sizes()
    {
        var data = new TheoryData<int, bool>();
        foreach (var size in new[] { 0, 1, 4095, 4096, 4097, DigestingCopy.ChunkSize - 1, DigestingCopy.ChunkSize, DigestingCopy.ChunkSize + 1, 3 * DigestingCopy.ChunkSize + 12345 })
        {
            data.Add(size, false);
            data.Add(size, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task StageAndCommit_AnySize_ContentAndDigestExact(int size, bool onTmpfs)
    {
        // /dev/shm (tmpfs) refuses O_DIRECT, so it exercises the buffered fallback; the temp directory uses O_DIRECT.
        if (onTmpfs && !Directory.Exists("/dev/shm"))
        {
            Assert.Fail("/dev/shm is missing on this machine");
        }
        var root = onTmpfs ? Path.Combine("/dev/shm", "aimass-tests-" + Guid.NewGuid().ToString("N")) : new TempDirectory().Path;
        try
        {
            var store = new FileSystemArtifactStore(root, new FakeTimeProvider());
            var bytes = new byte[size];
            new Random(size).NextBytes(bytes);

            using var staged = await store.StageAsync(new MemoryStream(bytes), long.MaxValue, default);
            store.Commit(staged);

            Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)), staged.Digest);
            Assert.Equal(size, staged.Size);
            Assert.Equal(bytes, await File.ReadAllBytesAsync(store.GetPath(staged.Digest)));
            Assert.Null(await store.VerifyAsync(staged.Digest, default));
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(root, "tmp")));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task Stage_SourceFailsMidway_NoTempFileLeft()
    {
        using var dir = new TempDirectory();
        var store = new FileSystemArtifactStore(dir.Path, new FakeTimeProvider());

        await Assert.ThrowsAsync<IOException>(() => store.StageAsync(new FailingStream(10 << 20), long.MaxValue, default));

        Assert.Empty(Directory.EnumerateFiles(dir.Combine("tmp")));
    }

    [Fact]
    public async Task DigestingCopy_ToStream_MatchesSha256()
    {
        var bytes = new byte[DigestingCopy.ChunkSize * 2 + 7];
        new Random(3).NextBytes(bytes);
        using var target = new MemoryStream();
        var totals = new List<long>();

        var (digest, length) = await DigestingCopy.CopyAsync(new MemoryStream(bytes), target, totals.Add, default);

        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)), digest);
        Assert.Equal(bytes.Length, length);
        Assert.Equal(bytes, target.ToArray());
        Assert.Equal([DigestingCopy.ChunkSize, DigestingCopy.ChunkSize * 2, bytes.Length], totals);
    }

    /// <summary>Produces some bytes, then fails like a dropped connection.</summary>
    private sealed class FailingStream(int failAfter) : ReadOnlyStream
    {
        private int _position;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= failAfter)
            {
                throw new IOException("connection reset");
            }
            var n = Math.Min(buffer.Length, failAfter - _position);
            _position += n;
            return ValueTask.FromResult(n);
        }
    }
}
