using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AiMass.Serving;

/// <summary>A model input or output as clients see it: name, protocol type, shape with -1 for dynamic dimensions.</summary>
/// <param name="Name">Name.</param>
/// <param name="DataType">Element type.</param>
/// <param name="Shape">Dimensions; -1 where any size is accepted.</param>
public sealed record TensorMetadata(string Name, InferDataType DataType, long[] Shape);

/// <summary>How a session runs.</summary>
public sealed record ModelSessionOptions
{
    /// <summary>Threads inside one operator (0: ONNX Runtime's default).</summary>
    public int IntraOpThreads { get; init; } = 1;

    /// <summary>Let idle ONNX Runtime threads spin between runs (lower latency when the model has the cores to itself).</summary>
    public bool SpinWait { get; init; }

    /// <summary>Threads across independent operators.</summary>
    public int InterOpThreads { get; init; } = 1;
}

/// <summary>
/// One ONNX model loaded into ONNX Runtime: its metadata in protocol terms, validation of requests against it (errors
/// name the input and what was expected), and inference from protocol tensors to protocol tensors. Thread-safe: ONNX
/// Runtime sessions may run concurrently.
/// </summary>
public sealed class ModelSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly Dictionary<string, TensorMetadata> _inputs;
    private readonly Dictionary<string, TensorMetadata> _outputs;

    private ModelSession(InferenceSession session, string name, string version)
    {
        _session = session;
        Name = name;
        Version = version;
        _inputs = session.InputMetadata.ToDictionary(kv => kv.Key, kv => Describe(kv.Key, kv.Value), StringComparer.Ordinal);
        _outputs = session.OutputMetadata.ToDictionary(kv => kv.Key, kv => Describe(kv.Key, kv.Value), StringComparer.Ordinal);
        Inputs = session.InputNames.Select(n => _inputs[n]).ToList();
        Outputs = session.OutputNames.Select(n => _outputs[n]).ToList();
        _outputNames = [.. session.OutputNames];
        Batchable = Inputs.Concat(Outputs).All(t => t.Shape.Length > 0 && t.Shape[0] == -1);
    }

    private readonly string[] _outputNames;
    // Run options are only read by a run, so one set serves every run of the session.
    private readonly RunOptions _runOptions = new();

    /// <summary>The model's name.</summary>
    public string Name { get; }

    /// <summary>The version served.</summary>
    public string Version { get; }

    /// <summary>Inputs in the model's order.</summary>
    public IReadOnlyList<TensorMetadata> Inputs { get; }

    /// <summary>Outputs in the model's order.</summary>
    public IReadOnlyList<TensorMetadata> Outputs { get; }

    /// <summary>Whether every input and output has a dynamic first dimension, so requests can be batched along it.</summary>
    public bool Batchable { get; }

    /// <summary>Loads a model from its bytes; a file ONNX Runtime cannot load is an <see cref="InferenceException"/> (400).</summary>
    public static ModelSession Load(byte[] model, string name, string version, ModelSessionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new ModelSessionOptions();
        using var sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = options.InterOpThreads,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        if (!options.SpinWait)
        {
            // Idle ONNX Runtime threads otherwise spin for a while after each run, taking the cores the server needs to
            // read, parse and answer requests (and other models' runs) on a machine it shares.
            sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            sessionOptions.AddSessionConfigEntry("session.inter_op.allow_spinning", "0");
        }
        try
        {
            return new ModelSession(new InferenceSession(model, sessionOptions), name, version);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InferenceException($"model {name} version {version}: ONNX Runtime cannot load it: {e.Message}", e);
        }
    }

    /// <summary>Checks inputs against the model: names, types, ranks, fixed dimensions. Throws a 400 naming what is wrong.</summary>
    public void Validate(IReadOnlyList<InferTensor> inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        foreach (var tensor in inputs)
        {
            if (!_inputs.TryGetValue(tensor.Name, out var meta))
            {
                throw new InferenceException($"model {Name} has no input '{tensor.Name}' (inputs: {string.Join(", ", _inputs.Keys)})");
            }
            if (tensor.DataType != meta.DataType)
            {
                throw new InferenceException($"input '{tensor.Name}' of model {Name} takes {InferDataTypes.Name(meta.DataType)}, got {InferDataTypes.Name(tensor.DataType)}");
            }
            if (tensor.Shape.Length != meta.Shape.Length)
            {
                throw new InferenceException($"input '{tensor.Name}' of model {Name} has shape {Format(meta.Shape)} (rank {meta.Shape.Length}), got {Format(tensor.Shape)} (rank {tensor.Shape.Length})");
            }
            for (var d = 0; d < meta.Shape.Length; d++)
            {
                if (meta.Shape[d] >= 0 && meta.Shape[d] != tensor.Shape[d])
                {
                    throw new InferenceException($"input '{tensor.Name}' of model {Name} has shape {Format(meta.Shape)}, got {Format(tensor.Shape)}: dimension {d} must be {meta.Shape[d]}");
                }
            }
        }
        for (var i = 1; i < inputs.Count; i++)
        {
            for (var j = 0; j < i; j++)
            {
                if (inputs[i].Name == inputs[j].Name)
                {
                    throw new InferenceException($"input '{inputs[i].Name}' of model {Name} is given more than once");
                }
            }
        }
        // Every input given is the model's and none twice: all are there when the counts agree.
        if (inputs.Count == _inputs.Count)
        {
            return;
        }
        var missing = _inputs.Keys.Where(k => !inputs.Any(i => i.Name == k)).ToList();
        if (missing.Count > 0)
        {
            throw new InferenceException($"model {Name} needs input{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Select(m => $"'{m}' {Format(_inputs[m].Shape)} {InferDataTypes.Name(_inputs[m].DataType)}"))}");
        }
    }

    /// <summary>Checks requested output names.</summary>
    public void ValidateOutputs(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        foreach (var name in names)
        {
            if (!_outputs.ContainsKey(name))
            {
                throw new InferenceException($"model {Name} has no output '{name}' (outputs: {string.Join(", ", _outputs.Keys)})");
            }
        }
    }

    /// <summary>Runs the model; returns the requested outputs (all when <paramref name="outputs"/> is null or empty) in the order asked.</summary>
    public IReadOnlyList<InferTensor> Run(IReadOnlyList<InferTensor> inputs, IReadOnlyList<string>? outputs = null)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new InferenceException(503, $"model {Name} version {Version} was unloaded") { RetryAfter = TimeSpan.FromSeconds(1) };
        }
        Validate(inputs);
        IReadOnlyList<string> names = outputs is { Count: > 0 } ? outputs : _outputNames;
        if (!ReferenceEquals(names, _outputNames))
        {
            ValidateOutputs(names);
        }
        var values = new List<OrtValue>(inputs.Count);
        try
        {
            foreach (var tensor in inputs)
            {
                values.Add(ToOrtValue(tensor));
            }
            var inputNames = new string[inputs.Count];
            for (var i = 0; i < inputNames.Length; i++)
            {
                inputNames[i] = inputs[i].Name;
            }
            using var results = _session.Run(_runOptions, inputNames, values, names);
            var list = new List<InferTensor>(names.Count);
            for (var i = 0; i < names.Count; i++)
            {
                list.Add(FromOrtValue(names[i], results[i]));
            }
            return list;
        }
        catch (OnnxRuntimeException e)
        {
            throw new InferenceException(500, $"model {Name} failed: {e.Message}");
        }
        finally
        {
            foreach (var v in values)
            {
                v.Dispose();
            }
        }
    }

    /// <summary>Whether the session was unloaded (its native memory released).</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    private int _disposed;

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _session.Dispose();
            _runOptions.Dispose();
        }
    }

    private static OrtValue ToOrtValue(InferTensor tensor) => tensor.Data switch
    {
        float[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        double[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        long[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        int[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        short[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        sbyte[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        ulong[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        uint[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        ushort[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        byte[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        bool[] a => OrtValue.CreateTensorValueFromMemory(a, tensor.Shape),
        Half[] a => OrtValue.CreateTensorValueFromMemory(MemoryMarshal.Cast<Half, Float16>(a).ToArray(), tensor.Shape),
        string[] a => OrtValue.CreateFromStringTensor(new DenseTensor<string>(a, tensor.Shape.Select(d => (int)d).ToArray())),
        _ => throw new InferenceException($"input '{tensor.Name}': unsupported values"),
    };

    private static InferTensor FromOrtValue(string name, OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        var shape = info.Shape;
        var type = InferDataTypes.FromOrt(info.ElementDataType)
            ?? throw new InferenceException(500, $"output '{name}' has element type {info.ElementDataType}, which the protocol cannot carry");
        Array data = type switch
        {
            InferDataType.Bytes => value.GetStringTensorAsArray(),
            InferDataType.Fp16 => MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>()).ToArray(),
            InferDataType.Fp32 => value.GetTensorDataAsSpan<float>().ToArray(),
            InferDataType.Fp64 => value.GetTensorDataAsSpan<double>().ToArray(),
            InferDataType.Int64 => value.GetTensorDataAsSpan<long>().ToArray(),
            InferDataType.Int32 => value.GetTensorDataAsSpan<int>().ToArray(),
            InferDataType.Int16 => value.GetTensorDataAsSpan<short>().ToArray(),
            InferDataType.Int8 => value.GetTensorDataAsSpan<sbyte>().ToArray(),
            InferDataType.Uint64 => value.GetTensorDataAsSpan<ulong>().ToArray(),
            InferDataType.Uint32 => value.GetTensorDataAsSpan<uint>().ToArray(),
            InferDataType.Uint16 => value.GetTensorDataAsSpan<ushort>().ToArray(),
            InferDataType.Uint8 => value.GetTensorDataAsSpan<byte>().ToArray(),
            _ => value.GetTensorDataAsSpan<bool>().ToArray(),
        };
        return new InferTensor(name, type, shape, data);
    }

    private static TensorMetadata Describe(string name, NodeMetadata meta)
    {
        var type = meta.IsTensor ? InferDataTypes.FromOrt(meta.ElementDataType) : null;
        if (type is null)
        {
            throw new InferenceException($"tensor '{name}' is {(meta.IsTensor ? meta.ElementDataType.ToString() : meta.OnnxValueType.ToString())}, which the protocol cannot carry");
        }
        return new TensorMetadata(name, type.Value, meta.Dimensions.Select(d => d < 0 ? -1L : d).ToArray());
    }

    internal static string Format(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}
