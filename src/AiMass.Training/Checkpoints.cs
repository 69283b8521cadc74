using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiMass.Training;

/// <summary>Everything needed to continue a training run exactly where it stopped.</summary>
public sealed record Checkpoint
{
    /// <summary>Optimizer steps taken.</summary>
    public required long Step { get; init; }

    /// <summary>Completed epochs.</summary>
    public int Epoch { get; init; }

    /// <summary>Position in the input of the current epoch (batches already consumed).</summary>
    public long InputPosition { get; init; }

    /// <summary>Model parameters and buffers by name.</summary>
    public required IReadOnlyDictionary<string, float[]> Model { get; init; }

    /// <summary>Optimizer state by name.</summary>
    public IReadOnlyDictionary<string, float[]> Optimizer { get; init; } = new Dictionary<string, float[]>();

    /// <summary>States of the run's random generators by name (shuffling, dropout).</summary>
    public IReadOnlyDictionary<string, ulong[]> Random { get; init; } = new Dictionary<string, ulong[]>();

    /// <summary>Anything else worth keeping (metrics, the spec's digest).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// Checkpoint files in a model directory: <c>ckpt-0000001000.aimass</c>. Each is written to a temporary file,
/// fsynced and renamed, so a crash leaves the previous checkpoint intact; each ends with a SHA-256 of its content,
/// so a truncated or damaged one is detected and skipped in favour of the newest valid one.
/// </summary>
/// <remarks>
/// Format: the 8 bytes <c>AIMASSCK</c>, a little-endian int32 format version (1), an int32 header length, the header
/// (UTF-8 JSON: step, epoch, input position, random states, metadata, and for each tensor its section, name and
/// length), the tensors' float32 values little-endian in header order, then the SHA-256 of everything before it.
/// </remarks>
public sealed class CheckpointStore
{
    private const string Magic = "AIMASSCK";
    private const int Version = 1;
    private const string Prefix = "ckpt-";
    private const string Suffix = ".aimass";

    /// <summary>Creates a store in <paramref name="directory"/> that keeps the newest <paramref name="keepLast"/> checkpoints.</summary>
    public CheckpointStore(string directory, int keepLast = 5)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(keepLast, 1);
        Directory = System.IO.Path.GetFullPath(directory);
        KeepLast = keepLast;
    }

    /// <summary>The directory.</summary>
    public string Directory { get; }

    /// <summary>How many checkpoints are kept.</summary>
    public int KeepLast { get; }

    /// <summary>Checkpoint files, oldest first.</summary>
    public IReadOnlyList<string> List() => !System.IO.Directory.Exists(Directory)
        ? []
        : System.IO.Directory.EnumerateFiles(Directory, Prefix + "*" + Suffix).Order(StringComparer.Ordinal).ToList();

    /// <summary>Writes a checkpoint atomically, then removes the oldest beyond <see cref="KeepLast"/>; returns its path.</summary>
    public string Save(Checkpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        System.IO.Directory.CreateDirectory(Directory);
        var path = System.IO.Path.Combine(Directory, $"{Prefix}{checkpoint.Step.ToString("D10", CultureInfo.InvariantCulture)}{Suffix}");
        var temporary = path + $".{Environment.ProcessId}.tmp";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Write(checkpoint, file);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
        var all = List();
        foreach (var old in all.Take(Math.Max(0, all.Count - KeepLast)))
        {
            File.Delete(old);
        }
        return path;
    }

    /// <summary>The newest checkpoint that reads back intact, and the files skipped on the way with the reason.</summary>
    public (Checkpoint? Checkpoint, string? Path, IReadOnlyList<string> Skipped) LoadLatest()
    {
        var skipped = new List<string>();
        foreach (var path in List().Reverse())
        {
            try
            {
                return (Read(path), path, skipped);
            }
            catch (InvalidDataException e)
            {
                skipped.Add($"{System.IO.Path.GetFileName(path)}: {e.Message}");
            }
            catch (IOException e)
            {
                skipped.Add($"{System.IO.Path.GetFileName(path)}: {e.Message}");
            }
        }
        return (null, null, skipped);
    }

    /// <summary>Reads one checkpoint file, verifying its digest.</summary>
    public static Checkpoint Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < Magic.Length + 8 + 32 || Encoding.ASCII.GetString(bytes, 0, Magic.Length) != Magic)
        {
            throw new InvalidDataException("not an AI Mass checkpoint (or truncated before its header)");
        }
        var body = bytes.AsSpan(0, bytes.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
        {
            throw new InvalidDataException("its SHA-256 does not match: the file is truncated or damaged");
        }
        var version = BinaryPrimitives.ReadInt32LittleEndian(body[Magic.Length..]);
        if (version != Version)
        {
            throw new InvalidDataException($"format version {version} is not supported (this build reads {Version})");
        }
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(body[(Magic.Length + 4)..]);
        var offset = Magic.Length + 8;
        var header = JsonSerializer.Deserialize(body.Slice(offset, headerLength), CheckpointJson.Default.Header)
            ?? throw new InvalidDataException("empty header");
        offset += headerLength;
        var model = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var optimizer = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in header.Tensors)
        {
            var values = new float[t.Length];
            var span = body.Slice(offset, t.Length * 4);
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = BinaryPrimitives.ReadSingleLittleEndian(span[(i * 4)..]);
            }
            offset += t.Length * 4;
            (t.Section == "optimizer" ? optimizer : model)[t.Name] = values;
        }
        if (offset != body.Length)
        {
            throw new InvalidDataException("its tensors do not fill the file as the header says");
        }
        return new Checkpoint
        {
            Step = header.Step,
            Epoch = header.Epoch,
            InputPosition = header.InputPosition,
            Model = model,
            Optimizer = optimizer,
            Random = header.Random,
            Metadata = header.Metadata,
        };
    }

    private static void Write(Checkpoint checkpoint, Stream stream)
    {
        var tensors = checkpoint.Model.Select(p => (Section: "model", p.Key, p.Value))
            .Concat(checkpoint.Optimizer.Select(p => (Section: "optimizer", p.Key, p.Value)))
            .ToList();
        var header = new Header
        {
            Step = checkpoint.Step,
            Epoch = checkpoint.Epoch,
            InputPosition = checkpoint.InputPosition,
            Random = checkpoint.Random.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal),
            Metadata = checkpoint.Metadata.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal),
            Tensors = tensors.Select(t => new TensorEntry { Section = t.Section, Name = t.Key, Length = t.Value.Length }).ToList(),
        };
        var headerBytes = JsonSerializer.SerializeToUtf8Bytes(header, CheckpointJson.Default.Header);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Put(ReadOnlySpan<byte> data)
        {
            sha.AppendData(data);
            stream.Write(data);
        }
        Put(Encoding.ASCII.GetBytes(Magic));
        Span<byte> number = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(number, Version);
        Put(number);
        BinaryPrimitives.WriteInt32LittleEndian(number, headerBytes.Length);
        Put(number);
        Put(headerBytes);
        var buffer = new byte[1 << 16];
        foreach (var (_, _, values) in tensors)
        {
            for (var start = 0; start < values.Length; start += buffer.Length / 4)
            {
                var n = Math.Min(buffer.Length / 4, values.Length - start);
                for (var i = 0; i < n; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(i * 4), values[start + i]);
                }
                Put(buffer.AsSpan(0, n * 4));
            }
        }
        stream.Write(sha.GetHashAndReset());
    }

    internal sealed class Header
    {
        public long Step { get; set; }

        public int Epoch { get; set; }

        public long InputPosition { get; set; }

        public Dictionary<string, ulong[]> Random { get; set; } = [];

        public Dictionary<string, string> Metadata { get; set; } = [];

        public List<TensorEntry> Tensors { get; set; } = [];
    }

    internal sealed class TensorEntry
    {
        public string Section { get; set; } = "";

        public string Name { get; set; } = "";

        public int Length { get; set; }
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(CheckpointStore.Header))]
internal sealed partial class CheckpointJson : JsonSerializerContext;

/// <summary>
/// A seeded random generator (xoshiro256**) whose state can be saved in a checkpoint and restored, so shuffling and
/// dropout continue the same sequence after a restart.
/// </summary>
public sealed class CheckpointableRandom : Random
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>Seeds the generator (SplitMix64 expands the seed into the state).</summary>
    public CheckpointableRandom(ulong seed)
    {
        var x = seed;
        _s0 = SplitMix(ref x);
        _s1 = SplitMix(ref x);
        _s2 = SplitMix(ref x);
        _s3 = SplitMix(ref x);
    }

    /// <summary>The four state words.</summary>
    public ulong[] State
    {
        get => [_s0, _s1, _s2, _s3];
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.Length != 4 || value.All(v => v == 0))
            {
                throw new ArgumentException("the state is four words, not all zero");
            }
            (_s0, _s1, _s2, _s3) = (value[0], value[1], value[2], value[3]);
        }
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        var result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <inheritdoc />
    protected override double Sample() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <inheritdoc />
    public override double NextDouble() => Sample();

    /// <inheritdoc />
    public override float NextSingle() => (NextUInt64() >> 40) * (1f / (1 << 24));

    /// <inheritdoc />
    public override int Next() => (int)(NextUInt64() >> 33);

    /// <inheritdoc />
    public override int Next(int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return (int)((NextUInt64() >> 32) * (ulong)maxValue >> 32);
    }

    /// <inheritdoc />
    public override int Next(int minValue, int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minValue, maxValue);
        return minValue + (int)((NextUInt64() >> 32) * (ulong)((long)maxValue - minValue) >> 32);
    }

    /// <inheritdoc />
    public override long NextInt64() => (long)(NextUInt64() >> 1);

    /// <inheritdoc />
    public override void NextBytes(Span<byte> buffer)
    {
        for (var i = 0; i < buffer.Length; i += 8)
        {
            var v = NextUInt64();
            for (var k = 0; k < 8 && i + k < buffer.Length; k++)
            {
                buffer[i + k] = (byte)(v >> (8 * k));
            }
        }
    }

    /// <inheritdoc />
    public override void NextBytes(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        NextBytes(buffer.AsSpan());
    }

    private static ulong SplitMix(ref ulong x)
    {
        var z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
