using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace AiMass.Serving;

/// <summary>An output the client asks for, and whether it wants it in the binary section.</summary>
/// <param name="Name">Output name.</param>
/// <param name="Binary">Return it as raw bytes after the JSON header (the binary tensor extension).</param>
public sealed record RequestedOutput(string Name, bool Binary);

/// <summary>An inference request as the Open Inference Protocol v2 (KServe, Triton) defines it.</summary>
public sealed record InferenceRequest
{
    /// <summary>Request id, echoed in the response.</summary>
    public string? Id { get; init; }

    /// <summary>Input tensors.</summary>
    public required IReadOnlyList<InferTensor> Inputs { get; init; }

    /// <summary>Requested outputs; empty means every output, in JSON unless <see cref="BinaryOutputs"/>.</summary>
    public IReadOnlyList<RequestedOutput> Outputs { get; init; } = [];

    /// <summary>Outputs not named in <see cref="Outputs"/> come back binary (parameter <c>binary_data_output</c>).</summary>
    public bool BinaryOutputs { get; init; }

    /// <summary>Priority (parameter <c>priority</c>): a higher-priority request is served before queued lower ones; 0 is the default.</summary>
    public int Priority { get; init; }

    /// <summary>Time the request may wait in the queue (parameter <c>timeout</c>, microseconds, as Triton's).</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Where the batcher records how long this request queued and how long its batch ran (null: not recorded).</summary>
    public InferenceTiming? Timing { get; init; }
}

/// <summary>How long a request waited in the queue and how long the execution that answered it took.</summary>
public sealed class InferenceTiming
{
    /// <summary>Time in the batcher's queue.</summary>
    public TimeSpan Queue { get; internal set; }

    /// <summary>Time of the model execution (the whole batch's).</summary>
    public TimeSpan Compute { get; internal set; }
}

/// <summary>An inference response.</summary>
/// <param name="ModelName">Model that answered.</param>
/// <param name="ModelVersion">Its version.</param>
/// <param name="Id">The request's id.</param>
/// <param name="Outputs">Output tensors with whether each goes binary.</param>
public sealed record InferenceResponse(string ModelName, string ModelVersion, string? Id, IReadOnlyList<(InferTensor Tensor, bool Binary)> Outputs);

/// <summary>A request the server refuses or cannot serve; <see cref="Status"/> is the HTTP status.</summary>
public sealed class InferenceException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InferenceException(int status, string message) : base(message) => Status = status;

    /// <summary>Creates a 400 exception.</summary>
    public InferenceException(string message) : this(400, message)
    {
    }

    /// <summary>Creates a 400 exception with a cause.</summary>
    public InferenceException(string message, Exception inner) : base(message, inner) => Status = 400;

    /// <summary>Creates a 500 exception.</summary>
    public InferenceException() : this(500, "inference failed")
    {
    }

    /// <summary>HTTP status: 400 bad request, 404 unknown model, 429 queue full, 503 not ready, 504 timed out.</summary>
    public int Status { get; }

    /// <summary>When the client may retry (429, 503).</summary>
    public TimeSpan? RetryAfter { get; init; }
}

/// <summary>
/// Reads and writes Open Inference Protocol v2 REST bodies: JSON tensors (data flat or nested, every datatype) and the
/// binary tensor extension (a JSON header of <c>Inference-Header-Content-Length</c> bytes followed by raw tensors).
/// </summary>
public static class OipCodec
{
    /// <summary>The HTTP header that gives the JSON part's length when binary tensors follow it.</summary>
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";

    /// <summary>
    /// Parses a request body; <paramref name="headerLength"/> is the JSON part's length when binary data follows.
    /// Requests in the form client libraries write are read by <see cref="OipFastReader"/>, which puts numeric data
    /// straight into the tensors; any other (fields in another order, escapes, and every request that is wrong) by
    /// <see cref="ReadJson"/>, through a JSON document, whose errors say what is wrong.
    /// </summary>
    public static InferenceRequest ReadRequest(ReadOnlyMemory<byte> body, int? headerLength = null)
    {
        if (headerLength is { } h && (h < 0 || h > body.Length))
        {
            throw new InferenceException($"{HeaderLengthHeader} is {h}, but the body has {body.Length} bytes");
        }
        var json = body[..(headerLength ?? body.Length)];
        var binary = body[(headerLength ?? body.Length)..];
        return OipFastReader.TryRead(json.Span, binary) ?? ReadJson(json, binary);
    }

    /// <summary>The general reader: any valid request, fields in any order, through a JSON document; errors say what is wrong.</summary>
    internal static InferenceRequest ReadJson(ReadOnlyMemory<byte> json, ReadOnlyMemory<byte> binary)
    {
        using var doc = ParseObject(json, "\"inputs\"");
        var root = doc.RootElement;
        var id = root.TryGetProperty("id", out var idElement) ? idElement.ValueKind == JsonValueKind.String ? idElement.GetString() : idElement.GetRawText() : null;
        root.TryGetProperty("parameters", out var parameters);
        List<InferTensor>? inputs = null;
        var offset = 0;
        if (root.TryGetProperty("inputs", out var inputsElement) && inputsElement.ValueKind == JsonValueKind.Array)
        {
            inputs = [];
            foreach (var input in inputsElement.EnumerateArray())
            {
                inputs.Add(ReadInput(input, binary, ref offset));
            }
        }
        var outputs = root.TryGetProperty("outputs", out var outputsElement) && outputsElement.ValueKind == JsonValueKind.Array ? ReadOutputs(outputsElement) : [];
        return Assemble(id, parameters, inputs, outputs, offset, binary);
    }

    /// <summary>Checks what the inputs add up to and builds the request (both readers end here).</summary>
    internal static InferenceRequest Assemble(string? id, JsonElement parameters, List<InferTensor>? inputs, List<RequestedOutput> outputs, int offset, ReadOnlyMemory<byte> binary)
    {
        if (inputs is null || inputs.Count == 0)
        {
            throw new InferenceException("the request needs \"inputs\": a non-empty list of tensors");
        }
        if (offset != binary.Length)
        {
            throw new InferenceException($"the binary section has {binary.Length} bytes but the inputs' binary_data_size add up to {offset}");
        }
        var hasParameters = parameters.ValueKind == JsonValueKind.Object;
        return new InferenceRequest
        {
            Id = id,
            Inputs = inputs,
            Outputs = outputs,
            BinaryOutputs = hasParameters && parameters.TryGetProperty("binary_data_output", out var bo) && bo.ValueKind == JsonValueKind.True,
            Priority = hasParameters && parameters.TryGetProperty("priority", out var pr) && pr.TryGetInt32(out var prio) ? prio : 0,
            Timeout = hasParameters && parameters.TryGetProperty("timeout", out var to) && to.TryGetInt64(out var us) && us > 0
                ? TimeSpan.FromMicroseconds(us) : null,
        };
    }

    internal static List<RequestedOutput> ReadOutputs(JsonElement outputsElement)
    {
        var outputs = new List<RequestedOutput>();
        foreach (var output in outputsElement.EnumerateArray())
        {
            var name = output.ValueKind == JsonValueKind.Object && output.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                ? n.GetString()! : throw new InferenceException("every requested output needs a \"name\"");
            var wantsBinary = output.TryGetProperty("parameters", out var op) && op.ValueKind == JsonValueKind.Object
                && op.TryGetProperty("binary_data", out var b) && b.ValueKind == JsonValueKind.True;
            outputs.Add(new RequestedOutput(name, wantsBinary));
        }
        return outputs;
    }

    /// <summary>Parses a request body that must be a JSON object; the error names <paramref name="expected"/>, the fields it needs.</summary>
    internal static JsonDocument ParseObject(ReadOnlyMemory<byte> json, string expected)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InferenceException($"the request is not valid JSON: {e.Message}", e);
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new InferenceException($"the request must be a JSON object with {expected}");
        }
        return doc;
    }

    private static InferTensor ReadInput(JsonElement input, ReadOnlyMemory<byte> binary, ref int offset)
    {
        if (input.ValueKind != JsonValueKind.Object)
        {
            throw new InferenceException("every input must be an object with name, shape, datatype and data");
        }
        var name = input.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : throw new InferenceException("an input has no \"name\"");
        if (!input.TryGetProperty("datatype", out var dt) || !InferDataTypes.TryParse(dt.ValueKind == JsonValueKind.String ? dt.GetString() : null, out var type))
        {
            throw new InferenceException($"input '{name}': \"datatype\" must be one of {InferDataTypes.AllNames}");
        }
        if (!input.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new InferenceException($"input '{name}': \"shape\" must be a list of dimensions");
        }
        var shape = TryShape(shapeElement) ?? throw new InferenceException($"input '{name}': shape {shapeElement.GetRawText()} must hold non-negative whole numbers");
        input.TryGetProperty("parameters", out var parameters);
        input.TryGetProperty("data", out var data);
        return Complete(name, type, shape, parameters, null, data, binary, ref offset);
    }

    /// <summary>
    /// The tensor of an input whose name, datatype and shape are known: from the binary section when its parameters
    /// give a binary_data_size, else from the data read in place (<paramref name="read"/>) or the JSON values.
    /// </summary>
    internal static InferTensor Complete(string name, InferDataType type, long[] shape, JsonElement parameters, Array? read, JsonElement data, ReadOnlyMemory<byte> binary, ref int offset)
    {
        var count = InferTensor.ElementCount(shape);
        if (count > int.MaxValue)
        {
            throw new InferenceException($"input '{name}': shape [{string.Join(", ", shape)}] is too large");
        }
        if (parameters.ValueKind == JsonValueKind.Object && parameters.TryGetProperty("binary_data_size", out var sizeElement))
        {
            if (!sizeElement.TryGetInt32(out var size) || size < 0 || offset + size > binary.Length)
            {
                throw new InferenceException($"input '{name}': binary_data_size {sizeElement.GetRawText()} does not fit the {binary.Length - offset} binary bytes left");
            }
            var tensor = FromBinary(name, type, shape, (int)count, binary.Span.Slice(offset, size));
            offset += size;
            return tensor;
        }
        if (read is not null)
        {
            return new InferTensor(name, type, shape, read);
        }
        if (data.ValueKind == JsonValueKind.Undefined)
        {
            throw new InferenceException($"input '{name}' has no \"data\" (nor binary_data_size)");
        }
        var values = new List<JsonElement>((int)Math.Min(count, 1024)); // grows with the values given, not the shape claimed
        Flatten(data, values);
        if (values.Count != count)
        {
            throw new InferenceException($"input '{name}': shape [{string.Join(", ", shape)}] needs {count} values, got {values.Count}");
        }
        return new InferTensor(name, type, shape, FromJson(name, type, values));
    }

    /// <summary>The dimensions of a shape, or null when it is not a list of non-negative whole numbers.</summary>
    private static long[]? TryShape(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            return null;
        }
        var shape = new long[element.GetArrayLength()];
        var k = 0;
        foreach (var d in element.EnumerateArray())
        {
            if (!d.TryGetInt64(out shape[k]) || shape[k] < 0)
            {
                return null;
            }
            k++;
        }
        return shape;
    }

    private static void Flatten(JsonElement element, List<JsonElement> values)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray())
            {
                Flatten(item, values);
            }
            return;
        }
        values.Add(element);
    }

    /// <summary>Converts JSON values to the CLR array of <paramref name="type"/>; a value that does not fit names the input and its index.</summary>
    internal static Array FromJson(string name, InferDataType type, List<JsonElement> values)
    {
        var array = InferDataTypes.NewArray(type, values.Count);
        for (var i = 0; i < values.Count; i++)
        {
            var v = values[i];
            var ok = v.ValueKind switch
            {
                JsonValueKind.String => type == InferDataType.Bytes && Set(array, i, v.GetString()!),
                JsonValueKind.Number => TryConvert(type, JsonTokenType.Number, JsonMarshal.GetRawUtf8Value(v), array, i),
                JsonValueKind.True => TryConvert(type, JsonTokenType.True, default, array, i),
                JsonValueKind.False => TryConvert(type, JsonTokenType.False, default, array, i),
                _ => false,
            };
            if (!ok)
            {
                var raw = v.GetRawText();
                throw NotA(name, type, i, raw.Length > 40 ? raw[..40] + "..." : raw);
            }
        }
        return array;
    }

    private static InferenceException NotA(string name, InferDataType type, int index, string raw) =>
        new($"input '{name}': value {index} ({(raw.Length > 40 ? raw[..40] + "..." : raw)}) is not a valid {InferDataTypes.Name(type)}");

    /// <summary>
    /// Stores a JSON number or boolean (<paramref name="token"/>, its text <paramref name="raw"/>) at
    /// <paramref name="index"/> of an array of <paramref name="type"/>; false when it is not a value of that type
    /// (a fraction for an integer type, out of range, not finite, a boolean for a number or the reverse).
    /// </summary>
    internal static bool TryConvert(InferDataType type, JsonTokenType token, ReadOnlySpan<byte> raw, Array array, int index)
    {
        if (token != JsonTokenType.Number)
        {
            return type == InferDataType.Bool && token is JsonTokenType.True or JsonTokenType.False && Set(array, index, token == JsonTokenType.True);
        }
        return type switch
        {
            InferDataType.Fp32 => Utf8Float.TryParse(raw, out float f) && float.IsFinite(f) && Set(array, index, f),
            InferDataType.Fp64 => Utf8Float.TryParse(raw, out double d) && double.IsFinite(d) && Set(array, index, d),
            InferDataType.Fp16 => Utf8Float.TryParse(raw, out double h) && double.IsFinite(h) && Set(array, index, (Half)h),
            InferDataType.Uint8 => Whole(raw, out byte u8) && Set(array, index, u8),
            InferDataType.Uint16 => Whole(raw, out ushort u16) && Set(array, index, u16),
            InferDataType.Uint32 => Whole(raw, out uint u32) && Set(array, index, u32),
            InferDataType.Uint64 => Whole(raw, out ulong u64) && Set(array, index, u64),
            InferDataType.Int8 => Whole(raw, out sbyte i8) && Set(array, index, i8),
            InferDataType.Int16 => Whole(raw, out short i16) && Set(array, index, i16),
            InferDataType.Int32 => Whole(raw, out int i32) && Set(array, index, i32),
            InferDataType.Int64 => Whole(raw, out long i64) && Set(array, index, i64),
            _ => false,
        };
    }

    /// <summary>A whole JSON number of an integer type, as <c>Utf8JsonReader.TryGetInt32</c> and the others read it.</summary>
    internal static bool Whole<T>(ReadOnlySpan<byte> raw, out T value)
        where T : struct, IBinaryInteger<T>
    {
        foreach (var b in raw)
        {
            if (b is (byte)'.' or (byte)'e' or (byte)'E')
            {
                value = default;
                return false;
            }
        }
        return T.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }

    private static bool Set<T>(Array array, int index, T value)
    {
        ((T[])array)[index] = value;
        return true;
    }

    private static InferTensor FromBinary(string name, InferDataType type, long[] shape, int count, ReadOnlySpan<byte> bytes)
    {
        if (type == InferDataType.Bytes)
        {
            var strings = new string[count];
            var at = 0;
            for (var i = 0; i < count; i++)
            {
                if (at + 4 > bytes.Length)
                {
                    throw new InferenceException($"input '{name}': binary BYTES data ends before element {i}");
                }
                var length = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
                if (length < 0 || at + 4 + length > bytes.Length)
                {
                    throw new InferenceException($"input '{name}': binary BYTES element {i} claims {length} bytes, more than remain");
                }
                strings[i] = Encoding.UTF8.GetString(bytes.Slice(at + 4, length));
                at += 4 + length;
            }
            if (at != bytes.Length)
            {
                throw new InferenceException($"input '{name}': {bytes.Length - at} bytes left over after {count} BYTES elements");
            }
            return new InferTensor(name, type, shape, strings);
        }
        var expected = (long)count * InferDataTypes.Size(type);
        if (bytes.Length != expected)
        {
            throw new InferenceException($"input '{name}': shape [{string.Join(", ", shape)}] of {InferDataTypes.Name(type)} needs {expected} bytes, binary_data_size is {bytes.Length}");
        }
        var array = InferDataTypes.NewArray(type, count);
        // Little-endian wire format on little-endian hosts: a plain copy.
        bytes.CopyTo(MemoryMarshal.AsBytes(AsSpan(array)));
        return new InferTensor(name, type, shape, array);
    }

    /// <summary>
    /// A tensor from its raw form (gRPC's <c>raw_input_contents</c>, the binary extension): little-endian values in
    /// row-major order, BYTES elements each preceded by a 4-byte little-endian length. Errors name the tensor.
    /// </summary>
    public static InferTensor FromRaw(string name, string datatype, IReadOnlyList<long> shape, ReadOnlySpan<byte> bytes)
    {
        var (type, dims, count) = Header(name, datatype, shape);
        return FromBinary(name, type, dims, count, bytes);
    }

    /// <summary>Checks a tensor's name, datatype and shape; returns the type, the shape and its element count.</summary>
    public static (InferDataType Type, long[] Shape, int Count) Header(string name, string datatype, IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (string.IsNullOrEmpty(name))
        {
            throw new InferenceException("every input tensor needs a name");
        }
        if (!InferDataTypes.TryParse(datatype, out var type))
        {
            throw new InferenceException($"input '{name}': datatype '{datatype}' is not one of {InferDataTypes.AllNames}");
        }
        var count = InferTensor.ElementCount(shape);
        if (count < 0 || count > int.MaxValue)
        {
            throw new InferenceException($"input '{name}': shape [{string.Join(", ", shape)}] must have non-negative dimensions and fewer than 2^31 elements");
        }
        return (type, [.. shape], (int)count);
    }

    /// <summary>The raw form of a tensor (see <see cref="FromRaw"/>).</summary>
    public static byte[] ToRaw(InferTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(int.MaxValue, Math.Max(1, tensor.BinarySize())));
        WriteBinary(buffer, tensor);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes a response; returns the body and, when any output is binary, the JSON part's length.</summary>
    public static (byte[] Body, int? HeaderLength) WriteResponse(InferenceResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name", response.ModelName);
            writer.WriteString("model_version", response.ModelVersion);
            if (response.Id is not null)
            {
                writer.WriteString("id", response.Id);
            }
            writer.WriteStartArray("outputs");
            foreach (var (tensor, binary) in response.Outputs)
            {
                writer.WriteStartObject();
                writer.WriteString("name", tensor.Name);
                writer.WriteString("datatype", InferDataTypes.Name(tensor.DataType));
                writer.WriteStartArray("shape");
                foreach (var d in tensor.Shape)
                {
                    writer.WriteNumberValue(d);
                }
                writer.WriteEndArray();
                if (binary)
                {
                    writer.WriteStartObject("parameters");
                    writer.WriteNumber("binary_data_size", tensor.BinarySize());
                    writer.WriteEndObject();
                }
                else
                {
                    writer.WritePropertyName("data");
                    WriteData(writer, tensor);
                }
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        if (!response.Outputs.Any(o => o.Binary))
        {
            return (buffer.WrittenSpan.ToArray(), null);
        }
        var headerLength = buffer.WrittenCount;
        foreach (var (tensor, binary) in response.Outputs.Where(o => o.Binary))
        {
            WriteBinary(buffer, tensor);
        }
        return (buffer.WrittenSpan.ToArray(), headerLength);
    }

    private static void WriteData(Utf8JsonWriter writer, InferTensor tensor)
    {
        writer.WriteStartArray();
        switch (tensor.Data)
        {
            case float[] f:
                foreach (var v in f)
                {
                    WriteFloat(writer, v);
                }
                break;
            case double[] d:
                foreach (var v in d)
                {
                    WriteFloat(writer, v);
                }
                break;
            case Half[] h:
                foreach (var v in h)
                {
                    WriteFloat(writer, (float)v);
                }
                break;
            case bool[] b:
                foreach (var v in b)
                {
                    writer.WriteBooleanValue(v);
                }
                break;
            case string[] s:
                foreach (var v in s)
                {
                    writer.WriteStringValue(v);
                }
                break;
            case long[] l:
                foreach (var v in l)
                {
                    writer.WriteNumberValue(v);
                }
                break;
            case ulong[] ul:
                foreach (var v in ul)
                {
                    writer.WriteNumberValue(v);
                }
                break;
            default:
                foreach (var v in tensor.Data)
                {
                    writer.WriteNumberValue(Convert.ToInt64(v, CultureInfo.InvariantCulture));
                }
                break;
        }
        writer.WriteEndArray();
    }

    private static void WriteFloat(Utf8JsonWriter writer, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            // JSON has no NaN or infinity; Triton writes them as strings too.
            writer.WriteStringValue(double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
        }
    }

    private static void WriteFloat(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(float.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
        }
    }

    private static void WriteBinary(ArrayBufferWriter<byte> buffer, InferTensor tensor)
    {
        if (tensor.Data is string[] strings)
        {
            foreach (var s in strings)
            {
                var length = Encoding.UTF8.GetByteCount(s);
                BinaryPrimitives.WriteInt32LittleEndian(buffer.GetSpan(4), length);
                buffer.Advance(4);
                buffer.Advance(Encoding.UTF8.GetBytes(s, buffer.GetSpan(length)));
            }
            return;
        }
        var bytes = MemoryMarshal.AsBytes(AsSpan(tensor.Data));
        bytes.CopyTo(buffer.GetSpan(bytes.Length));
        buffer.Advance(bytes.Length);
    }

    /// <summary>The values of a fixed-size array as a span of its element type.</summary>
    private static Span<byte> AsSpan(Array array) => array switch
    {
        bool[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        byte[] a => a,
        sbyte[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        short[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        ushort[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        int[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        uint[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        long[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        ulong[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        Half[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        float[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        double[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        _ => throw new ArgumentException($"{array.GetType().Name} has no fixed-size binary form"),
    };
}
