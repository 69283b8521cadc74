using System.Text;
using System.Text.Json;

namespace AiMass.Serving;

/// <summary>
/// The quick reader of Open Inference Protocol JSON requests. It scans the bytes itself and reads an input's numeric
/// data straight into the tensor's array — a general JSON tokenizer spends most of a request's time on the data's
/// numbers (a 784-float request: 41–54 µs of tokens on this VM; our scan and parse of its numbers 12–15 µs). It
/// accepts a strict subset: the fields the protocol defines, each once, with names and datatypes of printable ASCII
/// without escapes. Anything
/// else, and anything wrong, it returns null for, and <see cref="OipCodec"/>'s general reader reads the request (and
/// explains what is wrong with it). Numeric data that comes after its input's name, datatype and shape (the order
/// every client library writes) goes straight into the array; other values (<c>parameters</c>, <c>outputs</c>, an
/// <c>id</c> that is not a plain string, BYTES data, data before its datatype) are parsed by <see cref="JsonElement"/>
/// from exactly their bytes, so they are validated and converted as the general reader does.
/// </summary>
internal ref struct OipFastReader
{
    private const int MaxDepth = 64;
    private readonly ReadOnlySpan<byte> _s;
    private int _i;

    private OipFastReader(ReadOnlySpan<byte> json)
    {
        _s = json;
        _i = 0;
    }

    /// <summary>The request, or null when it steps outside what this reader takes (the general reader then reads it).</summary>
    public static InferenceRequest? TryRead(ReadOnlySpan<byte> json, ReadOnlyMemory<byte> binary)
    {
        var reader = new OipFastReader(json);
        return reader.TryRequest(binary);
    }

    private InferenceRequest? TryRequest(ReadOnlyMemory<byte> binary)
    {
        string? id = null;
        JsonElement parameters = default;
        List<InferTensor>? inputs = null;
        var outputs = new List<RequestedOutput>();
        var offset = 0;
        var seen = 0;
        Ws();
        if (!Eat((byte)'{'))
        {
            return null;
        }
        Ws();
        if (!Eat((byte)'}'))
        {
            while (true)
            {
                if (!TryKey(out var key))
                {
                    return null;
                }
                var field = key.SequenceEqual("inputs"u8) ? 1 : key.SequenceEqual("id"u8) ? 2 : key.SequenceEqual("parameters"u8) ? 4 : key.SequenceEqual("outputs"u8) ? 8 : 0;
                if (field == 0 || (seen & field) != 0)
                {
                    return null;
                }
                seen |= field;
                switch (field)
                {
                    case 1:
                        if (!TryInputs(binary, ref offset, out inputs))
                        {
                            return null;
                        }
                        break;
                    case 2:
                        if (!TryString(out id))
                        {
                            if (!TryElement(out var idElement))
                            {
                                return null;
                            }
                            id = idElement.ValueKind == JsonValueKind.String ? idElement.GetString() : idElement.GetRawText();
                        }
                        break;
                    case 4:
                        if (!TryElement(out parameters))
                        {
                            return null;
                        }
                        break;
                    default:
                        if (!TryElement(out var outputsElement) || outputsElement.ValueKind != JsonValueKind.Array)
                        {
                            return null;
                        }
                        outputs = OipCodec.ReadOutputs(outputsElement);
                        break;
                }
                if (!TryNext((byte)'}', out var more))
                {
                    return null;
                }
                if (!more)
                {
                    break;
                }
            }
        }
        Ws();
        return _i == _s.Length ? OipCodec.Assemble(id, parameters, inputs, outputs, offset, binary) : null;
    }

    private bool TryInputs(ReadOnlyMemory<byte> binary, ref int offset, out List<InferTensor>? inputs)
    {
        inputs = [];
        if (!Eat((byte)'['))
        {
            return false;
        }
        Ws();
        if (Eat((byte)']'))
        {
            return true;
        }
        while (true)
        {
            if (!TryInput(binary, ref offset, out var tensor))
            {
                return false;
            }
            inputs.Add(tensor);
            if (!TryNext((byte)']', out var more))
            {
                return false;
            }
            if (!more)
            {
                return true;
            }
        }
    }

    private bool TryInput(ReadOnlyMemory<byte> binary, ref int offset, out InferTensor tensor)
    {
        tensor = null!;
        string? name = null;
        string? datatype = null;
        long[]? shape = null;
        JsonElement parameters = default;
        JsonElement data = default;
        Array? read = null;
        var seen = 0;
        Ws();
        if (!Eat((byte)'{'))
        {
            return false;
        }
        Ws();
        if (Eat((byte)'}'))
        {
            return false; // no name: the general reader says so
        }
        while (true)
        {
            if (!TryKey(out var key))
            {
                return false;
            }
            var field = key.SequenceEqual("name"u8) ? 1 : key.SequenceEqual("datatype"u8) ? 2 : key.SequenceEqual("shape"u8) ? 4
                : key.SequenceEqual("parameters"u8) ? 8 : key.SequenceEqual("data"u8) ? 16 : 0;
            if (field == 0 || (seen & field) != 0)
            {
                return false;
            }
            seen |= field;
            var ok = field switch
            {
                1 => TryString(out name),
                2 => TryString(out datatype),
                4 => TryShape(out shape),
                8 => TryElement(out parameters),
                _ => name is not null && InferDataTypes.TryParse(datatype, out var type) && type != InferDataType.Bytes && shape is not null
                    && InferTensor.ElementCount(shape) is var count && count <= _s.Length - _i // each value takes a byte: no array for a shape the body cannot fill
                    ? TryData(type, (int)count, out read)
                    : TryElement(out data),
            };
            if (!ok || !TryNext((byte)'}', out var more))
            {
                return false;
            }
            if (!more)
            {
                break;
            }
        }
        if (name is null || !InferDataTypes.TryParse(datatype, out var dataType) || shape is null)
        {
            return false;
        }
        tensor = OipCodec.Complete(name, dataType, shape, parameters, read, data, binary, ref offset);
        return true;
    }

    /// <summary>A shape: a list of non-negative whole numbers.</summary>
    private bool TryShape(out long[]? shape)
    {
        shape = null;
        if (!Eat((byte)'['))
        {
            return false;
        }
        Span<long> dims = stackalloc long[16];
        var rank = 0;
        Ws();
        if (!Eat((byte)']'))
        {
            while (true)
            {
                Ws();
                var start = _i;
                if (!Utf8Float.Scan(_s, ref _i, out _, out _, out var isWhole) || !isWhole || rank == dims.Length
                    || !OipCodec.Whole(_s[start.._i], out long dim) || dim < 0)
                {
                    return false;
                }
                dims[rank++] = dim;
                if (!TryNext((byte)']', out var more))
                {
                    return false;
                }
                if (!more)
                {
                    break;
                }
            }
        }
        shape = dims[..rank].ToArray();
        return true;
    }

    /// <summary>An input's data — one value or nested lists, flattened in order — straight into a new array.</summary>
    private bool TryData(InferDataType type, int count, out Array? array)
    {
        array = InferDataTypes.NewArray(type, count);
        var floats = array as float[];
        var n = 0;
        var depth = 0;
        while (true)
        {
            // A value: an opening bracket, or a number or boolean.
            Ws();
            if (Eat((byte)'['))
            {
                if (++depth > MaxDepth)
                {
                    return false;
                }
                Ws();
                if (!Eat((byte)']'))
                {
                    continue;
                }
                depth--;
            }
            else
            {
                if (n == count)
                {
                    return false;
                }
                var start = _i;
                if (Literal("true"u8) || Literal("false"u8))
                {
                    if (!OipCodec.TryConvert(type, _s[start] == (byte)'t' ? JsonTokenType.True : JsonTokenType.False, default, array, n))
                    {
                        return false;
                    }
                }
                else if (floats is not null)
                {
                    if (!Utf8Float.TryParseAt(_s, ref _i, out var f) || !float.IsFinite(f))
                    {
                        return false;
                    }
                    floats[n] = f;
                }
                else if (!Utf8Float.Scan(_s, ref _i, out _, out _, out _) || !OipCodec.TryConvert(type, JsonTokenType.Number, _s[start.._i], array, n))
                {
                    return false;
                }
                n++;
            }
            // After a value: close lists, then a comma before the next value, or the end.
            while (true)
            {
                if (depth == 0)
                {
                    return n == count;
                }
                Ws();
                if (Eat((byte)','))
                {
                    break;
                }
                if (!Eat((byte)']'))
                {
                    return false;
                }
                depth--;
            }
        }
    }

    /// <summary>A property name of printable ASCII without escapes, and its colon.</summary>
    private bool TryKey(out ReadOnlySpan<byte> key)
    {
        Ws();
        if (!TryPlainString(out key))
        {
            return false;
        }
        Ws();
        if (!Eat((byte)':'))
        {
            return false;
        }
        Ws();
        return true;
    }

    /// <summary>A string value of printable ASCII without escapes.</summary>
    private bool TryString(out string? value)
    {
        var start = _i;
        if (!TryPlainString(out var raw))
        {
            _i = start;
            value = null;
            return false;
        }
        value = Encoding.ASCII.GetString(raw);
        return true;
    }

    private bool TryPlainString(out ReadOnlySpan<byte> raw)
    {
        raw = default;
        if (!Eat((byte)'"'))
        {
            return false;
        }
        var start = _i;
        while (_i < _s.Length && _s[_i] is >= 0x20 and < 0x7F and not (byte)'"' and not (byte)'\\')
        {
            _i++;
        }
        if (!Eat((byte)'"'))
        {
            return false;
        }
        raw = _s[start..(_i - 1)];
        return true;
    }

    /// <summary>Any JSON value, parsed (and so validated) by <see cref="JsonElement"/> from exactly its bytes.</summary>
    private bool TryElement(out JsonElement element)
    {
        element = default;
        var start = _i;
        if (!SkipValue())
        {
            return false;
        }
        var slice = _s[start.._i];
        try
        {
            var reader = new Utf8JsonReader(slice);
            element = JsonElement.ParseValue(ref reader);
            return reader.BytesConsumed == slice.Length;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Moves past one value by its brackets and strings alone; <see cref="TryElement"/> checks the rest.</summary>
    private bool SkipValue()
    {
        var depth = 0;
        do
        {
            if (_i >= _s.Length)
            {
                return false;
            }
            var c = _s[_i];
            if (c == (byte)'"')
            {
                _i++;
                while (_i < _s.Length && _s[_i] != (byte)'"')
                {
                    _i += _s[_i] == (byte)'\\' ? 2 : 1;
                }
                if (!Eat((byte)'"'))
                {
                    return false;
                }
            }
            else if (c is (byte)'{' or (byte)'[')
            {
                if (++depth > MaxDepth)
                {
                    return false;
                }
                _i++;
            }
            else if (c is (byte)'}' or (byte)']')
            {
                if (--depth < 0)
                {
                    return false;
                }
                _i++;
            }
            else if (depth == 0)
            {
                // A number or literal at the top of the value: up to the next separator.
                var start = _i;
                while (_i < _s.Length && _s[_i] is not ((byte)',' or (byte)'}' or (byte)']' or (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r'))
                {
                    _i++;
                }
                return _i > start;
            }
            else
            {
                _i++;
            }
        }
        while (depth > 0);
        return true;
    }

    /// <summary>After a member or element: a comma (<paramref name="more"/>) or the closing bracket.</summary>
    private bool TryNext(byte close, out bool more)
    {
        Ws();
        more = Eat((byte)',');
        if (more)
        {
            Ws();
            return true;
        }
        return Eat(close);
    }

    private bool Literal(ReadOnlySpan<byte> rest)
    {
        if (!_s[_i..].StartsWith(rest))
        {
            return false;
        }
        _i += rest.Length;
        return true;
    }

    private bool Eat(byte c)
    {
        if (_i < _s.Length && _s[_i] == c)
        {
            _i++;
            return true;
        }
        return false;
    }

    private void Ws()
    {
        while (_i < _s.Length && _s[_i] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            _i++;
        }
    }
}
