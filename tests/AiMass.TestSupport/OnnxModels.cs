using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace AiMass.TestSupport;

/// <summary>
/// Writes small valid ONNX models with a hand-rolled protobuf encoder (field numbers from onnx.proto), so tests and
/// benchmarks need no Python. The model is <c>Y = MatMul(X, W) + B</c> with X of shape [batch, inputs].
/// </summary>
public static class OnnxModels
{
    private const int FloatType = 1; // TensorProto.DataType.FLOAT

    /// <summary>A linear model whose weights make the file about <paramref name="inputs"/> x <paramref name="outputs"/> x 4 bytes.</summary>
    public static byte[] Linear(int inputs = 4, int outputs = 2, int seed = 1, string inputName = "X", string outputName = "Y")
    {
        var rng = new Random(seed);
        var weights = new float[inputs * outputs];
        for (var i = 0; i < weights.Length; i++)
        {
            weights[i] = (float)(rng.NextDouble() - 0.5);
        }
        var bias = new float[outputs];
        var graph = new ProtoWriter();
        graph.Message(1, Node([inputName, "W"], ["XW"], "matmul", "MatMul"));
        graph.Message(1, Node(["XW", "B"], [outputName], "add", "Add"));
        graph.String(2, "linear");
        graph.Message(5, Tensor("W", [inputs, outputs], weights));
        graph.Message(5, Tensor("B", [outputs], bias));
        graph.Message(11, ValueInfo(inputName, ["batch", inputs]));
        graph.Message(12, ValueInfo(outputName, ["batch", outputs]));

        return Model(graph);
    }

    /// <summary>A model (IR 8, opset 13) around <paramref name="graph"/>.</summary>
    private static byte[] Model(ProtoWriter graph)
    {
        var model = new ProtoWriter();
        model.Varint(1, 8); // ir_version 8
        model.String(2, "aimass-tests");
        model.String(3, "0.1");
        model.Message(7, graph);
        var opset = new ProtoWriter();
        opset.String(1, "");
        opset.Varint(2, 13);
        model.Message(8, opset);
        return model.ToArray();
    }

    /// <summary>
    /// A model with two inputs and two outputs of ONNX element type <paramref name="elementType"/> (TensorProto.DataType:
    /// 1 float, 7 int64, 8 string, 9 bool, 10 float16, ...): <c>A → Identity → A_out</c> and <c>B → Identity → B_out</c>,
    /// each of shape [batch, <paramref name="width"/>].
    /// </summary>
    public static byte[] Identity(int elementType, int width = 3)
    {
        var graph = new ProtoWriter();
        graph.Message(1, Node(["A"], ["A_out"], "a", "Identity"));
        graph.Message(1, Node(["B"], ["B_out"], "b", "Identity"));
        graph.String(2, "identity");
        graph.Message(11, ValueInfo("A", ["batch", width], elementType));
        graph.Message(11, ValueInfo("B", ["batch", width], elementType));
        graph.Message(12, ValueInfo("A_out", ["batch", width], elementType));
        graph.Message(12, ValueInfo("B_out", ["batch", width], elementType));
        return Model(graph);
    }

    /// <summary>A linear model of about <paramref name="bytes"/> bytes (weights dominate).</summary>
    public static byte[] OfSize(int bytes, int seed = 1)
    {
        var inputs = Math.Max(1, (int)Math.Sqrt(bytes / 4.0));
        var outputs = Math.Max(1, bytes / 4 / inputs);
        return Linear(inputs, outputs, seed);
    }

    private static ProtoWriter Node(string[] inputs, string[] outputs, string name, string op)
    {
        var node = new ProtoWriter();
        foreach (var i in inputs)
        {
            node.String(1, i);
        }
        foreach (var o in outputs)
        {
            node.String(2, o);
        }
        node.String(3, name);
        node.String(4, op);
        return node;
    }

    private static ProtoWriter Tensor(string name, long[] dims, float[] data)
    {
        var t = new ProtoWriter();
        foreach (var d in dims)
        {
            t.Varint(1, (ulong)d);
        }
        t.Varint(2, FloatType);
        t.String(8, name);
        var raw = new byte[data.Length * 4];
        for (var i = 0; i < data.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), data[i]);
        }
        t.Bytes(9, raw);
        return t;
    }

    private static ProtoWriter ValueInfo(string name, object[] dims, int elementType = FloatType)
    {
        var shape = new ProtoWriter();
        foreach (var d in dims)
        {
            var dim = new ProtoWriter();
            if (d is string s)
            {
                dim.String(2, s);
            }
            else
            {
                dim.Varint(1, (ulong)Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture));
            }
            shape.Message(1, dim);
        }
        var tensorType = new ProtoWriter();
        tensorType.Varint(1, (ulong)elementType);
        tensorType.Message(2, shape);
        var type = new ProtoWriter();
        type.Message(1, tensorType);
        var vi = new ProtoWriter();
        vi.String(1, name);
        vi.Message(2, type);
        return vi;
    }

    private sealed class ProtoWriter
    {
        private readonly System.Buffers.ArrayBufferWriter<byte> _buffer = new();

        public void Varint(int field, ulong value)
        {
            Key(field, 0);
            Raw(value);
        }

        public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public void Bytes(int field, byte[] value)
        {
            Key(field, 2);
            Raw((ulong)value.Length);
            _buffer.Write(value.AsSpan());
        }

        public void Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

        public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

        private void Key(int field, int wireType) => Raw((ulong)((field << 3) | wireType));

        private void Raw(ulong value)
        {
            while (value >= 0x80)
            {
                _buffer.Write([(byte)(value | 0x80)]);
                value >>= 7;
            }
            _buffer.Write([(byte)value]);
        }
    }
}
