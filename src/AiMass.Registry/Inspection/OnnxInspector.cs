using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AiMass.Registry.Inspection;

/// <summary>Loads an ONNX file with ONNX Runtime (no graph optimisation) and records its inputs and outputs.</summary>
public sealed class OnnxInspector : IArtifactInspector
{
    /// <inheritdoc />
    public string Format => "onnx";

    /// <inheritdoc />
    public ModelSignature Inspect(string path)
    {
        try
        {
            using var options = new SessionOptions
            {
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL,
                EnableMemoryPattern = false,
                IntraOpNumThreads = 1,
                InterOpNumThreads = 1,
                LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
            };
            options.EnableCpuMemArena = false;
            using var session = new InferenceSession(path, options);
            return new ModelSignature(
                session.InputMetadata.Select(kv => ToSpec(kv.Key, kv.Value)).ToList(),
                session.OutputMetadata.Select(kv => ToSpec(kv.Key, kv.Value)).ToList());
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InvalidArtifactException($"ONNX Runtime cannot load the model: {Clean(ex.Message, path)}", ex);
        }
    }

    private static string Clean(string message, string path)
    {
        // ORT names the file it loaded: that is our temporary upload file, meaningless to the user.
        var text = message.Replace($"Load model from {path} failed:", "", StringComparison.Ordinal).Replace(path, "the uploaded file", StringComparison.Ordinal).Trim();
        return text.Length > 2000 ? text[..2000] : text;
    }

    private static TensorSpec ToSpec(string name, NodeMetadata meta)
    {
        if (!meta.IsTensor)
        {
            return new TensorSpec(name, meta.OnnxValueType.ToString().Replace("ONNX_TYPE_", "", StringComparison.Ordinal).ToLowerInvariant(), []);
        }
        var dims = meta.Dimensions.Select(d => d < 0 ? -1L : d).ToList();
        var symbolic = meta.SymbolicDimensions;
        IReadOnlyList<string?>? dimNames = symbolic.Any(s => !string.IsNullOrEmpty(s))
            ? symbolic.Select(s => string.IsNullOrEmpty(s) ? null : s).ToList()
            : null;
        return new TensorSpec(name, ElementTypeName(meta.ElementDataType), dims, dimNames);
    }

    /// <summary>Element type names as in the Open Inference Protocol (FP32, INT64, BYTES...).</summary>
    private static string ElementTypeName(TensorElementType type) => type switch
    {
        TensorElementType.Float => "FP32",
        TensorElementType.Double => "FP64",
        TensorElementType.Float16 => "FP16",
        TensorElementType.BFloat16 => "BF16",
        TensorElementType.Int8 => "INT8",
        TensorElementType.Int16 => "INT16",
        TensorElementType.Int32 => "INT32",
        TensorElementType.Int64 => "INT64",
        TensorElementType.UInt8 => "UINT8",
        TensorElementType.UInt16 => "UINT16",
        TensorElementType.UInt32 => "UINT32",
        TensorElementType.UInt64 => "UINT64",
        TensorElementType.Bool => "BOOL",
        TensorElementType.String => "BYTES",
        _ => type.ToString().ToUpperInvariant(),
    };
}
