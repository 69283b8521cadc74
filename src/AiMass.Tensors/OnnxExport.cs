using Google.Protobuf;
using Onnx;

namespace AiMass.Tensors;

/// <summary>Options of an ONNX export.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Name of the graph input.</summary>
    public string InputName { get; init; } = "input";

    /// <summary>Name of the graph output.</summary>
    public string OutputName { get; init; } = "output";

    /// <summary>Default-domain opset, 17 to 21 (17 is what ONNX 1.12's checker, Debian 12's, validates).</summary>
    public int Opset { get; init; } = 17;

    /// <summary>IR version, 8 to 10.</summary>
    public int IrVersion { get; init; } = 8;

    /// <summary>The graph's name.</summary>
    public string GraphName { get; init; } = "aimass";

    /// <summary>Written to the model's doc string and metadata.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// Writes a model as ONNX by tracing one forward pass in inference mode: every recorded operator becomes the ONNX
/// node of the same name, parameters and buffers become initializers under their dotted names, the batch dimension
/// of the input and output is symbolic. Dropout is absent (it records nothing in inference mode) and batch norm uses
/// its running statistics.
/// </summary>
public static class OnnxExport
{
    private const int TraceBatch = 3; // any batch works; 3 is unlikely to equal another dimension by accident

    /// <summary>Exports <paramref name="model"/> for inputs shaped [batch, <paramref name="sampleShape"/>...].</summary>
    public static byte[] Export(Module model, int[] sampleShape, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sampleShape);
        options ??= new OnnxExportOptions();
        if (options.Opset is < 17 or > 21)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"opset {options.Opset} is not supported; use 17 to 21");
        }
        if (options.IrVersion is < 8 or > 10)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"IR version {options.IrVersion} is not supported; use 8 to 10");
        }
        var wasTraining = model.Training;
        model.Eval();
        try
        {
            var input = Tensor.Zeros([TraceBatch, .. sampleShape]);
            Tensor output;
            using (Autograd.Trace())
            {
                output = model.Forward(input);
            }
            var names = new Dictionary<Tensor, string>(ReferenceEqualityComparer.Instance);
            foreach (var (name, tensor) in model.NamedParameters().Concat(model.NamedBuffers()))
            {
                names[tensor] = name;
            }
            return new Writer(options, input, output, names).Build().ToByteArray();
        }
        finally
        {
            model.Train(wasTraining);
        }
    }

    private sealed class Writer(OnnxExportOptions options, Tensor input, Tensor output, Dictionary<Tensor, string> parameterNames)
    {
        private readonly GraphProto _graph = new() { Name = options.GraphName };
        private readonly Dictionary<Tensor, string> _names = new(ReferenceEqualityComparer.Instance);
        private int _counter;

        public ModelProto Build()
        {
            _names[input] = options.InputName;
            foreach (var node in Order())
            {
                Emit(node);
            }
            if (!_names.TryGetValue(output, out var last))
            {
                throw new InvalidOperationException("the model's output does not depend on its input; nothing to export");
            }
            if (last != options.OutputName)
            {
                // Rename the last node's output to the requested name.
                foreach (var node in _graph.Node)
                {
                    for (var i = 0; i < node.Output.Count; i++)
                    {
                        if (node.Output[i] == last)
                        {
                            node.Output[i] = options.OutputName;
                        }
                    }
                }
            }
            _graph.Input.Add(ValueInfo(options.InputName, input.Shape));
            _graph.Output.Add(ValueInfo(options.OutputName, output.Shape));
            var model = new ModelProto
            {
                IrVersion = options.IrVersion,
                ProducerName = "AI Mass",
                ProducerVersion = typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "0",
                Graph = _graph,
                DocString = "Exported by AI Mass from an inference-mode trace.",
            };
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
            foreach (var (key, value) in options.Metadata)
            {
                model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
            }
            return model;
        }

        /// <summary>The recorded nodes between the input and the output, in execution order.</summary>
        private List<Tensor> Order() => Autograd.TopologicalOrder(output, _ => true).Where(t => t.Creator is not null).ToList();

        private string NameOf(Tensor t)
        {
            if (_names.TryGetValue(t, out var name))
            {
                return name;
            }
            // A leaf other than the input: a parameter, a buffer, or a constant of an operator.
            name = parameterNames.TryGetValue(t, out var p) ? p : $"const_{_counter++}";
            _graph.Initializer.Add(Initializer(name, t.Shape, t.ToArray()));
            _names[t] = name;
            return name;
        }

        private string Fresh(string op) => $"{op.ToLowerInvariant()}_{_counter++}";

        private string Constant(long[] values)
        {
            var name = $"const_{_counter++}";
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            tensor.Dims.Add(values.Length);
            tensor.Int64Data.AddRange(values);
            _graph.Initializer.Add(tensor);
            return name;
        }

        private string ScalarConstant(float value)
        {
            var name = $"const_{_counter++}";
            _graph.Initializer.Add(Initializer(name, [], [value]));
            return name;
        }

        private NodeProto Add(string op, IEnumerable<string> inputs, string outputName)
        {
            var node = new NodeProto { OpType = op, Name = outputName + "_node" };
            node.Input.AddRange(inputs);
            node.Output.Add(outputName);
            _graph.Node.Add(node);
            return node;
        }

        private void Emit(Tensor result)
        {
            var node = result.Creator!;
            var a = node.Attributes;
            var inputs = node.Inputs.Select(NameOf).ToList();
            var outName = Fresh(node.OpType);
            _names[result] = outName;
            switch (node.OpType)
            {
                case "Add" or "Sub" or "Mul" or "Div" or "Neg" or "Pow" or "Exp" or "Log" or "Sqrt" or "Relu" or "Sigmoid" or "Tanh"
                    or "MatMul" or "GlobalAveragePool":
                    Add(node.OpType, inputs, outName);
                    break;
                case "LeakyRelu":
                    Add("LeakyRelu", inputs, outName).Attribute.Add(Float("alpha", (float)a["alpha"]));
                    break;
                case "Gelu" when options.Opset >= 20:
                    Add("Gelu", inputs, outName).Attribute.Add(Text("approximate", "none"));
                    break;
                case "Gelu":
                    {
                        // 0.5 · x · (1 + erf(x / √2)), the exact GELU, in opset-17 operators.
                        var scaled = Fresh("div");
                        Add("Div", [inputs[0], ScalarConstant(MathF.Sqrt(2))], scaled);
                        var erf = Fresh("erf");
                        Add("Erf", [scaled], erf);
                        var plus = Fresh("add");
                        Add("Add", [erf, ScalarConstant(1)], plus);
                        var times = Fresh("mul");
                        Add("Mul", [inputs[0], plus], times);
                        Add("Mul", [times, ScalarConstant(0.5f)], outName);
                        break;
                    }
                case "Softmax" or "LogSoftmax" or "Flatten" or "Concat":
                    Add(node.OpType, inputs, outName).Attribute.Add(Int("axis", (long)a["axis"]));
                    break;
                case "Gemm":
                    {
                        var gemm = Add("Gemm", inputs, outName);
                        gemm.Attribute.Add(Float("alpha", (float)a["alpha"]));
                        gemm.Attribute.Add(Float("beta", (float)a["beta"]));
                        gemm.Attribute.Add(Int("transA", (long)a["transA"]));
                        gemm.Attribute.Add(Int("transB", (long)a["transB"]));
                        break;
                    }
                case "ReduceSum" or "ReduceMean" or "ReduceMax":
                    {
                        var axes = (long[])a["axes"];
                        var axesAsInput = node.OpType == "ReduceSum" || options.Opset >= 18;
                        var reduce = Add(node.OpType, axesAsInput ? [inputs[0], Constant(axes)] : [inputs[0]], outName);
                        if (!axesAsInput)
                        {
                            reduce.Attribute.Add(Ints("axes", axes));
                        }
                        reduce.Attribute.Add(Int("keepdims", (long)a["keepdims"]));
                        break;
                    }
                case "Reshape":
                    {
                        // The traced batch size becomes 0 ("copy the input's dimension"), so the batch stays dynamic.
                        var shape = ((long[])a["shape"]).ToArray();
                        if (shape.Length > 0 && shape[0] == TraceBatch && node.Inputs[0].Shape.Length > 0 && node.Inputs[0].Shape[0] == TraceBatch)
                        {
                            shape[0] = 0;
                        }
                        Add("Reshape", [inputs[0], Constant(shape)], outName);
                        break;
                    }
                case "Transpose":
                    Add("Transpose", inputs, outName).Attribute.Add(Ints("perm", (long[])a["perm"]));
                    break;
                case "Slice":
                    Add("Slice", [inputs[0], Constant((long[])a["starts"]), Constant(((long[])a["ends"]).Select((e, i) =>
                        i == 0 && e == TraceBatch ? long.MaxValue : e).ToArray()), Constant((long[])a["axes"])], outName);
                    break;
                case "Conv":
                    {
                        var conv = Add("Conv", inputs, outName);
                        conv.Attribute.Add(Ints("kernel_shape", (long[])a["kernel_shape"]));
                        conv.Attribute.Add(Ints("strides", (long[])a["strides"]));
                        conv.Attribute.Add(Ints("pads", (long[])a["pads"]));
                        conv.Attribute.Add(Ints("dilations", (long[])a["dilations"]));
                        conv.Attribute.Add(Int("group", (long)a["group"]));
                        break;
                    }
                case "MaxPool" or "AveragePool":
                    {
                        var pool = Add(node.OpType, inputs, outName);
                        pool.Attribute.Add(Ints("kernel_shape", (long[])a["kernel_shape"]));
                        pool.Attribute.Add(Ints("strides", (long[])a["strides"]));
                        pool.Attribute.Add(Ints("pads", (long[])a["pads"]));
                        break;
                    }
                case "BatchNormalization":
                    {
                        var bn = Add("BatchNormalization", inputs, outName);
                        bn.Attribute.Add(Float("epsilon", (float)a["epsilon"]));
                        bn.Attribute.Add(Float("momentum", (float)a["momentum"]));
                        break;
                    }
                case "LayerNormalization":
                    {
                        var ln = Add("LayerNormalization", inputs, outName);
                        ln.Attribute.Add(Int("axis", (long)a["axis"]));
                        ln.Attribute.Add(Float("epsilon", (float)a["epsilon"]));
                        break;
                    }
                default:
                    throw new NotSupportedException($"'{node.OpType}' cannot be exported to ONNX: it is a training-time operation (a loss or dropout in training mode); export the model, not the loss");
            }
        }

        private static TensorProto Initializer(string name, int[] shape, float[] values)
        {
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            tensor.Dims.AddRange(shape.Select(d => (long)d));
            var bytes = new byte[values.Length * 4];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            tensor.RawData = ByteString.CopyFrom(bytes);
            return tensor;
        }

        private static ValueInfoProto ValueInfo(string name, int[] shape)
        {
            var tensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto() };
            for (var i = 0; i < shape.Length; i++)
            {
                tensorType.Shape.Dim.Add(i == 0 ? new TensorShapeProto.Types.Dimension { DimParam = "batch" } : new TensorShapeProto.Types.Dimension { DimValue = shape[i] });
            }
            return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
        }

        private static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

        private static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

        private static AttributeProto Text(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

        private static AttributeProto Ints(string name, long[] values)
        {
            var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            attribute.Ints.AddRange(values);
            return attribute;
        }
    }
}

/// <summary>Preprocessing that belongs in the exported graph: (x · scale − mean) / std per feature or channel.</summary>
public sealed class Normalize : Module
{
    private readonly Tensor _scale;
    private readonly Tensor _mean;
    private readonly Tensor _std;

    /// <summary>
    /// Creates the layer; <paramref name="mean"/> and <paramref name="std"/> broadcast against the input (a scalar, one
    /// value per feature, or [C, 1, 1] per channel); <paramref name="scale"/> first scales raw values (1/255 for pixels).
    /// </summary>
    public Normalize(float scale, Tensor mean, Tensor std)
    {
        _scale = Tensor.Scalar(scale);
        _mean = Buffer("mean", mean);
        _std = Buffer("std", std);
    }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.Div(Ops.Sub(Ops.Mul(input, _scale), _mean), _std);
}
