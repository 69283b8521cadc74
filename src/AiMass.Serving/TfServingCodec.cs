using System.Buffers;
using System.Text;
using System.Text.Json;

namespace AiMass.Serving;

/// <summary>A TensorFlow Serving <c>:predict</c> request turned into protocol tensors.</summary>
/// <param name="Inputs">Input tensors (rows stacked along a new first dimension in the row format).</param>
/// <param name="RowFormat">Whether the request used <c>instances</c> (answer with <c>predictions</c>) or <c>inputs</c> (answer with <c>outputs</c>).</param>
/// <param name="Rows">Number of instances in the row format.</param>
public sealed record TfServingRequest(IReadOnlyList<InferTensor> Inputs, bool RowFormat, int Rows);

/// <summary>
/// The TensorFlow Serving REST API's <c>:predict</c> bodies: the row format (<c>{"instances": [...]}</c>, one entry
/// per example, an object by input name when the model has several) and the columnar format
/// (<c>{"inputs": ...}</c>, whole tensors); answers <c>{"predictions": [...]}</c> or <c>{"outputs": ...}</c>. Values
/// are nested JSON lists whose shape gives the tensor's; element types come from the model.
/// </summary>
public static class TfServingCodec
{
    /// <summary>Parses a <c>:predict</c> body against the model's inputs.</summary>
    public static TfServingRequest ReadPredict(ReadOnlyMemory<byte> body, IReadOnlyList<TensorMetadata> inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        using (var doc = OipCodec.ParseObject(body, "\"instances\" or \"inputs\""))
        {
            var root = doc.RootElement;
            var hasInstances = root.TryGetProperty("instances", out var instances);
            var hasInputs = root.TryGetProperty("inputs", out var columnar);
            if (hasInstances == hasInputs)
            {
                throw new InferenceException("give exactly one of \"instances\" (row format) or \"inputs\" (columnar format)");
            }
            if (hasInstances)
            {
                if (instances.ValueKind != JsonValueKind.Array || instances.GetArrayLength() == 0)
                {
                    throw new InferenceException("\"instances\" must be a non-empty list");
                }
                var rows = instances.GetArrayLength();
                var tensors = new List<InferTensor>();
                foreach (var input in inputs)
                {
                    var values = new List<JsonElement>(rows);
                    foreach (var instance in instances.EnumerateArray())
                    {
                        values.Add(Pick(instance, input, inputs.Count));
                    }
                    tensors.Add(Stack(input, values));
                }
                return new TfServingRequest(tensors, true, rows);
            }
            var columns = inputs.Select(input => ToTensor(input, Pick(columnar, input, inputs.Count), input.Name)).ToList();
            return new TfServingRequest(columns, false, 0);
        }
    }

    /// <summary>Writes the answer: <c>predictions</c> (a list per instance) or <c>outputs</c>.</summary>
    public static byte[] WritePredict(TfServingRequest request, IReadOnlyList<InferTensor> outputs)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(outputs);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            if (request.RowFormat)
            {
                writer.WriteStartArray("predictions");
                for (var row = 0; row < request.Rows; row++)
                {
                    if (outputs.Count == 1)
                    {
                        WriteRow(writer, outputs[0], row, request.Rows);
                    }
                    else
                    {
                        writer.WriteStartObject();
                        foreach (var o in outputs)
                        {
                            writer.WritePropertyName(o.Name);
                            WriteRow(writer, o, row, request.Rows);
                        }
                        writer.WriteEndObject();
                    }
                }
                writer.WriteEndArray();
            }
            else
            {
                writer.WritePropertyName("outputs");
                if (outputs.Count == 1)
                {
                    WriteNested(writer, outputs[0], 0, 0, outputs[0].Data.Length);
                }
                else
                {
                    writer.WriteStartObject();
                    foreach (var o in outputs)
                    {
                        writer.WritePropertyName(o.Name);
                        WriteNested(writer, o, 0, 0, o.Data.Length);
                    }
                    writer.WriteEndObject();
                }
            }
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static JsonElement Pick(JsonElement value, TensorMetadata input, int inputCount)
    {
        if (value.ValueKind == JsonValueKind.Object)
        {
            return value.TryGetProperty(input.Name, out var named) ? named : throw new InferenceException($"input '{input.Name}' is missing from the request");
        }
        if (inputCount > 1)
        {
            throw new InferenceException($"the model has {inputCount} inputs: give each as an object {{\"{input.Name}\": ...}}");
        }
        return value;
    }

    private static InferTensor Stack(TensorMetadata input, List<JsonElement> rows)
    {
        var first = Shape(rows[0], input.Name);
        var flat = new List<JsonElement>();
        for (var i = 0; i < rows.Count; i++)
        {
            var shape = Shape(rows[i], input.Name);
            if (!shape.SequenceEqual(first))
            {
                throw new InferenceException($"input '{input.Name}': instance {i} has shape {ModelSession.Format(shape)}, instance 0 has {ModelSession.Format(first)}");
            }
            Flatten(rows[i], flat);
        }
        return new InferTensor(input.Name, input.DataType, [rows.Count, .. first], Values(input, flat));
    }

    private static InferTensor ToTensor(TensorMetadata input, JsonElement value, string name)
    {
        var shape = Shape(value, name);
        var flat = new List<JsonElement>();
        Flatten(value, flat);
        return new InferTensor(name, input.DataType, shape.ToArray(), Values(input, flat));
    }

    /// <summary>The shape of a nested list; ragged lists are an error.</summary>
    private static List<long> Shape(JsonElement value, string name)
    {
        var shape = new List<long>();
        var probe = value;
        while (probe.ValueKind == JsonValueKind.Array)
        {
            shape.Add(probe.GetArrayLength());
            if (probe.GetArrayLength() == 0)
            {
                break;
            }
            probe = probe[0];
        }
        Check(value, shape, 0, name);
        return shape;
    }

    private static void Check(JsonElement value, List<long> shape, int depth, string name)
    {
        if (depth == shape.Count)
        {
            if (value.ValueKind == JsonValueKind.Array)
            {
                throw new InferenceException($"input '{name}': the nested lists are ragged (deeper than {ModelSession.Format(shape)} somewhere)");
            }
            return;
        }
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() != shape[depth])
        {
            throw new InferenceException($"input '{name}': the nested lists are ragged (expected {shape[depth]} items at depth {depth})");
        }
        foreach (var item in value.EnumerateArray())
        {
            Check(item, shape, depth + 1, name);
        }
    }

    private static void Flatten(JsonElement value, List<JsonElement> flat)
    {
        if (value.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in value.EnumerateArray())
            {
                Flatten(item, flat);
            }
            return;
        }
        flat.Add(value);
    }

    private static Array Values(TensorMetadata input, List<JsonElement> flat) =>
        input.DataType == InferDataType.Bytes && flat.Exists(v => v.ValueKind == JsonValueKind.Object)
            ? Base64Strings(input.Name, flat)
            : OipCodec.FromJson(input.Name, input.DataType, flat);

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>BYTES values given as TensorFlow Serving's <c>{"b64": "..."}</c> objects (or plain strings).</summary>
    private static string[] Base64Strings(string name, List<JsonElement> flat)
    {
        var strings = new string[flat.Count];
        for (var i = 0; i < flat.Count; i++)
        {
            var v = flat[i];
            if (v.ValueKind == JsonValueKind.String)
            {
                strings[i] = v.GetString()!;
                continue;
            }
            if (v.ValueKind != JsonValueKind.Object || !v.TryGetProperty("b64", out var b64) || b64.ValueKind != JsonValueKind.String)
            {
                throw new InferenceException($"input '{name}': value {i} must be a string or {{\"b64\": \"BASE64\"}}");
            }
            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(b64.GetString()!);
            }
            catch (FormatException)
            {
                throw new InferenceException($"input '{name}': value {i} is not valid base64");
            }
            try
            {
                strings[i] = StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw new InferenceException($"input '{name}': value {i} decodes to bytes that are not UTF-8 text; string tensors reach ONNX Runtime as text");
            }
        }
        return strings;
    }

    private static void WriteRow(Utf8JsonWriter writer, InferTensor tensor, int row, int rows)
    {
        if (tensor.Shape.Length == 0 || tensor.Shape[0] != rows)
        {
            throw new InferenceException(500, $"output '{tensor.Name}' has shape {ModelSession.Format(tensor.Shape)}, not one row per instance ({rows})");
        }
        var perRow = tensor.Data.Length / rows;
        WriteNested(writer, tensor, 1, row * perRow, perRow);
    }

    /// <summary>Writes values [offset, offset + count) as lists nested by the shape from <paramref name="depth"/> on.</summary>
    private static void WriteNested(Utf8JsonWriter writer, InferTensor tensor, int depth, int offset, int count)
    {
        if (depth == tensor.Shape.Length)
        {
            // TensorFlow Serving's convention: string outputs named *_bytes come back base64-encoded as {"b64": ...}.
            if (tensor.Data is string[] strings && tensor.Name.EndsWith("_bytes", StringComparison.Ordinal))
            {
                writer.WriteStartObject();
                writer.WriteString("b64", Convert.ToBase64String(Encoding.UTF8.GetBytes(strings[offset])));
                writer.WriteEndObject();
                return;
            }
            WriteValue(writer, tensor.Data.GetValue(offset));
            return;
        }
        writer.WriteStartArray();
        var size = (int)tensor.Shape[depth];
        var step = size == 0 ? 0 : count / size;
        for (var i = 0; i < size; i++)
        {
            WriteNested(writer, tensor, depth + 1, offset + i * step, step);
        }
        writer.WriteEndArray();
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case float f when float.IsFinite(f):
                writer.WriteNumberValue(f);
                break;
            case double d when double.IsFinite(d):
                writer.WriteNumberValue(d);
                break;
            case Half h when Half.IsFinite(h):
                writer.WriteNumberValue((float)h);
                break;
            case float or double or Half:
                writer.WriteStringValue(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture) is var x && double.IsNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case ulong ul:
                writer.WriteNumberValue(ul);
                break;
            default:
                writer.WriteNumberValue(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
                break;
        }
    }
}
