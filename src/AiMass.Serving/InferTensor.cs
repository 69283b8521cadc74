using System.Text;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AiMass.Serving;

/// <summary>Element types of the Open Inference Protocol (v2), named as on the wire.</summary>
#pragma warning disable CA1720 // the members are the protocol's type names (UINT8, INT64...)
public enum InferDataType
{
    /// <summary>Boolean, one byte.</summary>
    Bool,

    /// <summary>Unsigned 8-bit integer.</summary>
    Uint8,

    /// <summary>Unsigned 16-bit integer.</summary>
    Uint16,

    /// <summary>Unsigned 32-bit integer.</summary>
    Uint32,

    /// <summary>Unsigned 64-bit integer.</summary>
    Uint64,

    /// <summary>Signed 8-bit integer.</summary>
    Int8,

    /// <summary>Signed 16-bit integer.</summary>
    Int16,

    /// <summary>Signed 32-bit integer.</summary>
    Int32,

    /// <summary>Signed 64-bit integer.</summary>
    Int64,

    /// <summary>IEEE half precision.</summary>
    Fp16,

    /// <summary>IEEE single precision.</summary>
    Fp32,

    /// <summary>IEEE double precision.</summary>
    Fp64,

    /// <summary>Variable-length bytes (ONNX strings); UTF-8 text in JSON, length-prefixed in binary.</summary>
    Bytes,
}
#pragma warning restore CA1720

/// <summary>Names, sizes and ONNX Runtime equivalents of <see cref="InferDataType"/>.</summary>
public static class InferDataTypes
{
    private static readonly Dictionary<string, InferDataType> ByName = Enum.GetValues<InferDataType>()
        .ToDictionary(Name, t => t, StringComparer.Ordinal);

    /// <summary>The wire name: <c>BOOL</c>, <c>UINT8</c>, ..., <c>FP32</c>, <c>BYTES</c>.</summary>
    public static string Name(InferDataType type) => type.ToString().ToUpperInvariant();

    /// <summary>Parses a wire name (exact, upper case).</summary>
    public static bool TryParse(string? name, out InferDataType type) => ByName.TryGetValue(name ?? "", out type);

    /// <summary>All wire names, for error messages.</summary>
    public static string AllNames => string.Join(", ", ByName.Keys);

    /// <summary>Bytes per element in the binary encoding (0 for BYTES, which is length-prefixed).</summary>
    public static int Size(InferDataType type) => type switch
    {
        InferDataType.Bool or InferDataType.Uint8 or InferDataType.Int8 => 1,
        InferDataType.Uint16 or InferDataType.Int16 or InferDataType.Fp16 => 2,
        InferDataType.Uint32 or InferDataType.Int32 or InferDataType.Fp32 => 4,
        InferDataType.Uint64 or InferDataType.Int64 or InferDataType.Fp64 => 8,
        _ => 0,
    };

    /// <summary>The ONNX Runtime element type.</summary>
    public static TensorElementType ToOrt(InferDataType type) => type switch
    {
        InferDataType.Bool => TensorElementType.Bool,
        InferDataType.Uint8 => TensorElementType.UInt8,
        InferDataType.Uint16 => TensorElementType.UInt16,
        InferDataType.Uint32 => TensorElementType.UInt32,
        InferDataType.Uint64 => TensorElementType.UInt64,
        InferDataType.Int8 => TensorElementType.Int8,
        InferDataType.Int16 => TensorElementType.Int16,
        InferDataType.Int32 => TensorElementType.Int32,
        InferDataType.Int64 => TensorElementType.Int64,
        InferDataType.Fp16 => TensorElementType.Float16,
        InferDataType.Fp32 => TensorElementType.Float,
        InferDataType.Fp64 => TensorElementType.Double,
        _ => TensorElementType.String,
    };

    /// <summary>The protocol type of an ONNX Runtime element type, when there is one.</summary>
    public static InferDataType? FromOrt(TensorElementType type) => type switch
    {
        TensorElementType.Bool => InferDataType.Bool,
        TensorElementType.UInt8 => InferDataType.Uint8,
        TensorElementType.UInt16 => InferDataType.Uint16,
        TensorElementType.UInt32 => InferDataType.Uint32,
        TensorElementType.UInt64 => InferDataType.Uint64,
        TensorElementType.Int8 => InferDataType.Int8,
        TensorElementType.Int16 => InferDataType.Int16,
        TensorElementType.Int32 => InferDataType.Int32,
        TensorElementType.Int64 => InferDataType.Int64,
        TensorElementType.Float16 => InferDataType.Fp16,
        TensorElementType.Float => InferDataType.Fp32,
        TensorElementType.Double => InferDataType.Fp64,
        TensorElementType.String => InferDataType.Bytes,
        _ => null,
    };

    /// <summary>An empty array of the element type's CLR representation.</summary>
    public static Array NewArray(InferDataType type, int length) => type switch
    {
        InferDataType.Bool => new bool[length],
        InferDataType.Uint8 => new byte[length],
        InferDataType.Uint16 => new ushort[length],
        InferDataType.Uint32 => new uint[length],
        InferDataType.Uint64 => new ulong[length],
        InferDataType.Int8 => new sbyte[length],
        InferDataType.Int16 => new short[length],
        InferDataType.Int32 => new int[length],
        InferDataType.Int64 => new long[length],
        InferDataType.Fp16 => new Half[length],
        InferDataType.Fp32 => new float[length],
        InferDataType.Fp64 => new double[length],
        _ => new string[length],
    };
}

/// <summary>
/// A named tensor of a request or response: protocol element type, shape, and the values in row-major order as an
/// array of the type's CLR representation (<c>float[]</c> for FP32, <c>string[]</c> for BYTES, ...).
/// </summary>
public sealed class InferTensor
{
    /// <summary>Creates a tensor; the array must be of <paramref name="dataType"/>'s CLR type and fill the shape.</summary>
    public InferTensor(string name, InferDataType dataType, long[] shape, Array data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        if (data.GetType() != InferDataTypes.NewArray(dataType, 0).GetType())
        {
            throw new ArgumentException($"tensor '{name}': {InferDataTypes.Name(dataType)} values must be a {InferDataTypes.NewArray(dataType, 0).GetType().Name}, not a {data.GetType().Name}");
        }
        var count = ElementCount(shape);
        if (count != data.Length)
        {
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] holds {count} values, got {data.Length}");
        }
        Name = name;
        DataType = dataType;
        Shape = shape;
        Data = data;
    }

    /// <summary>The tensor's name (a model input or output).</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public InferDataType DataType { get; }

    /// <summary>Dimensions.</summary>
    public long[] Shape { get; }

    /// <summary>Values, row-major.</summary>
    public Array Data { get; }

    /// <summary>Number of elements of a shape (1 for a scalar); -1 when a dimension is negative.</summary>
    public static long ElementCount(IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                return -1;
            }
            count = checked(count * d);
        }
        return count;
    }

    /// <summary>The values as floats (FP32 only).</summary>
    public float[] AsFloats() => Data as float[] ?? throw new InvalidOperationException($"tensor '{Name}' is {InferDataTypes.Name(DataType)}, not FP32");

    /// <summary>Size of the values in the binary encoding (BYTES: 4-byte little-endian length before each element).</summary>
    public long BinarySize() => DataType == InferDataType.Bytes
        ? ((string[])Data).Sum(s => 4L + Encoding.UTF8.GetByteCount(s))
        : (long)Data.Length * InferDataTypes.Size(DataType);
}
