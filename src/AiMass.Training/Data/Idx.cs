using System.Buffers.Binary;
using System.IO.Compression;

namespace AiMass.Training.Data;

/// <summary>An array read from an IDX file: its dimensions and its values as floats.</summary>
/// <param name="Shape">Dimensions, outermost first (images: count, rows, columns).</param>
/// <param name="Values">Values in row-major order, converted to float.</param>
public sealed record IdxArray(int[] Shape, float[] Values)
{
    /// <summary>Number of items (the first dimension).</summary>
    public int Count => Shape.Length == 0 ? 0 : Shape[0];

    /// <summary>Values per item.</summary>
    public int ItemSize => Count == 0 ? 0 : Values.Length / Count;
}

/// <summary>
/// Reads the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed, as Debian's
/// <c>dataset-fashion-mnist</c> ships it in <c>/usr/share/datasets/fashion-mnist/</c>).
/// </summary>
public static class Idx
{
    /// <summary>Reads an IDX file; a <c>.gz</c> file is decompressed on the fly.</summary>
    public static IdxArray Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var file = File.OpenRead(path);
        using var stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
        return Read(stream, path);
    }

    /// <summary>Reads IDX from a stream; <paramref name="source"/> names it in errors.</summary>
    public static IdxArray Read(Stream stream, string source = "IDX data")
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[4];
        ReadExactly(stream, header, source, "its header");
        if (header[0] != 0 || header[1] != 0)
        {
            throw new InvalidDataException($"{source} is not IDX: it must start with two zero bytes");
        }
        var type = header[2];
        var rank = header[3];
        var width = type switch
        {
            0x08 or 0x09 => 1,
            0x0B => 2,
            0x0C or 0x0D => 4,
            0x0E => 8,
            _ => throw new InvalidDataException($"{source}: unknown IDX element type 0x{type:X2}"),
        };
        var shape = new int[rank];
        Span<byte> dim = stackalloc byte[4];
        long count = 1;
        for (var i = 0; i < rank; i++)
        {
            ReadExactly(stream, dim, source, $"dimension {i}");
            shape[i] = BinaryPrimitives.ReadInt32BigEndian(dim);
            if (shape[i] < 0)
            {
                throw new InvalidDataException($"{source}: dimension {i} is negative");
            }
            count *= shape[i];
        }
        if (count * width > Array.MaxLength)
        {
            throw new InvalidDataException($"{source}: {count} values are too many for one array");
        }
        var raw = new byte[count * width];
        ReadExactly(stream, raw, source, $"its {count} values (the file is truncated)");
        var values = new float[count];
        for (var i = 0; i < values.Length; i++)
        {
            var span = raw.AsSpan(i * width, width);
            values[i] = type switch
            {
                0x08 => span[0],
                0x09 => (sbyte)span[0],
                0x0B => BinaryPrimitives.ReadInt16BigEndian(span),
                0x0C => BinaryPrimitives.ReadInt32BigEndian(span),
                0x0D => BinaryPrimitives.ReadSingleBigEndian(span),
                _ => (float)BinaryPrimitives.ReadDoubleBigEndian(span),
            };
        }
        return new IdxArray(shape, values);
    }

    /// <summary>Reads labels as integers.</summary>
    public static int[] ReadLabels(string path)
    {
        var array = Read(path);
        if (array.Shape.Length != 1)
        {
            throw new InvalidDataException($"{path}: labels must be one-dimensional, got {array.Shape.Length} dimensions");
        }
        return array.Values.Select(v => (int)v).ToArray();
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string source, string what)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{source} ends before {what}", e);
        }
    }
}
