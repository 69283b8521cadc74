using System.Text;
using AiMass.Serving;
using Google.Protobuf;
using Grpc.Core;
using GrpcApi = AiMass.Server.Grpc;

namespace AiMass.Server.Api;

/// <summary>
/// The Open Inference Protocol v2 over gRPC (<c>inference.GRPCInferenceService</c>) on a <see cref="ModelRepository"/>:
/// maps the messages and calls the same repository and batcher as the REST endpoints. Inputs come as
/// <c>raw_input_contents</c> or typed <c>contents</c>; outputs go back as <c>raw_output_contents</c>, as Triton answers.
/// Errors are gRPC statuses: INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED (queue full), UNAVAILABLE, DEADLINE_EXCEEDED.
/// </summary>
internal sealed class GrpcInferenceService(ModelRepository repository) : GrpcApi.GRPCInferenceService.GRPCInferenceServiceBase
{
    public override Task<GrpcApi.ServerLiveResponse> ServerLive(GrpcApi.ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new GrpcApi.ServerLiveResponse { Live = true });

    public override Task<GrpcApi.ServerReadyResponse> ServerReady(GrpcApi.ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new GrpcApi.ServerReadyResponse { Ready = true });

    public override Task<GrpcApi.ModelReadyResponse> ModelReady(GrpcApi.ModelReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new GrpcApi.ModelReadyResponse { Ready = repository.Find(request.Name, Version(request.Version)) is not null });

    public override Task<GrpcApi.ServerMetadataResponse> ServerMetadata(GrpcApi.ServerMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(new GrpcApi.ServerMetadataResponse { Name = "aimass", Version = ThisAssembly.Version, Extensions = { "binary_tensor_data" } });

    public override Task<GrpcApi.ModelMetadataResponse> ModelMetadata(GrpcApi.ModelMetadataRequest request, ServerCallContext context)
    {
        var loaded = Require(request.Name, request.Version);
        var response = new GrpcApi.ModelMetadataResponse
        {
            Name = loaded.Name,
            Platform = "onnxruntime_onnx",
            Versions = { repository.Models.Where(m => m.Name == loaded.Name).Select(m => m.Version) },
            Inputs = { loaded.Session.Inputs.Select(Describe) },
            Outputs = { loaded.Session.Outputs.Select(Describe) },
        };
        return Task.FromResult(response);
    }

    public override async Task<GrpcApi.ModelInferResponse> ModelInfer(GrpcApi.ModelInferRequest request, ServerCallContext context)
    {
        var loaded = Require(request.ModelName, request.ModelVersion);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var status = 200;
        try
        {
            var inputs = Inputs(request);
            var parameters = request.Parameters;
            var infer = new InferenceRequest
            {
                Id = request.Id,
                Inputs = inputs,
                Priority = parameters.TryGetValue("priority", out var p) && p.ParameterChoiceCase == GrpcApi.InferParameter.ParameterChoiceOneofCase.Int64Param ? (int)p.Int64Param : 0,
                Timeout = parameters.TryGetValue("timeout", out var t) && t.ParameterChoiceCase == GrpcApi.InferParameter.ParameterChoiceOneofCase.Int64Param && t.Int64Param > 0
                    ? TimeSpan.FromMicroseconds(t.Int64Param) : null,
            };
            var outputs = await loaded.Batcher.InferAsync(infer, context.CancellationToken);
            var wanted = request.Outputs.Select(o => o.Name).ToList();
            var unknown = wanted.FirstOrDefault(w => outputs.All(o => o.Name != w));
            if (unknown is not null)
            {
                throw new InferenceException($"model {loaded.Name} has no output '{unknown}' (outputs: {string.Join(", ", outputs.Select(o => o.Name))})");
            }
            var response = new GrpcApi.ModelInferResponse { ModelName = loaded.Name, ModelVersion = loaded.Version, Id = request.Id };
            foreach (var output in wanted.Count == 0 ? outputs : outputs.Where(o => wanted.Contains(o.Name)))
            {
                response.Outputs.Add(new GrpcApi.ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = InferDataTypes.Name(output.DataType), Shape = { output.Shape } });
                response.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(OipCodec.ToRaw(output)));
            }
            return response;
        }
        catch (InferenceException e)
        {
            status = e.Status;
            throw new RpcException(new Status(Code(e.Status), e.Message));
        }
        finally
        {
            ServingMetrics.RequestEnded(loaded.Name, loaded.Version, status, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
    }

    private static List<InferTensor> Inputs(GrpcApi.ModelInferRequest request)
    {
        if (request.Inputs.Count == 0)
        {
            throw new InferenceException("the request needs inputs");
        }
        if (request.RawInputContents.Count > 0 && request.RawInputContents.Count != request.Inputs.Count)
        {
            throw new InferenceException($"raw_input_contents has {request.RawInputContents.Count} entries for {request.Inputs.Count} inputs; give one per input, in order");
        }
        var inputs = new List<InferTensor>(request.Inputs.Count);
        for (var i = 0; i < request.Inputs.Count; i++)
        {
            var input = request.Inputs[i];
            if (request.RawInputContents.Count > 0)
            {
                if (input.Contents is not null)
                {
                    throw new InferenceException($"input '{input.Name}': give contents or raw_input_contents, not both");
                }
                inputs.Add(OipCodec.FromRaw(input.Name, input.Datatype, input.Shape, request.RawInputContents[i].Span));
                continue;
            }
            inputs.Add(FromContents(input));
        }
        // An input given twice is refused by the model's validation, as for every protocol.
        return inputs;
    }

    /// <summary>A tensor from the typed repeated field that matches its datatype.</summary>
    private static InferTensor FromContents(GrpcApi.ModelInferRequest.Types.InferInputTensor input)
    {
        var (type, shape, count) = OipCodec.Header(input.Name, input.Datatype, input.Shape);
        var c = input.Contents ?? throw new InferenceException($"input '{input.Name}' has neither contents nor raw_input_contents");
        Array values = type switch
        {
            InferDataType.Bool => c.BoolContents.ToArray(),
            InferDataType.Int8 => Narrow(c.IntContents, input.Name, v => checked((sbyte)v)),
            InferDataType.Int16 => Narrow(c.IntContents, input.Name, v => checked((short)v)),
            InferDataType.Int32 => c.IntContents.ToArray(),
            InferDataType.Int64 => c.Int64Contents.ToArray(),
            InferDataType.Uint8 => Narrow(c.UintContents, input.Name, v => checked((byte)v)),
            InferDataType.Uint16 => Narrow(c.UintContents, input.Name, v => checked((ushort)v)),
            InferDataType.Uint32 => c.UintContents.ToArray(),
            InferDataType.Uint64 => c.Uint64Contents.ToArray(),
            InferDataType.Fp32 => c.Fp32Contents.ToArray(),
            InferDataType.Fp64 => c.Fp64Contents.ToArray(),
            InferDataType.Bytes => c.BytesContents.Select(b => Encoding.UTF8.GetString(b.Span)).ToArray(),
            _ => throw new InferenceException($"input '{input.Name}': {input.Datatype} has no typed contents field; send it in raw_input_contents"),
        };
        return values.Length == count
            ? new InferTensor(input.Name, type, shape, values)
            : throw new InferenceException($"input '{input.Name}': shape [{string.Join(", ", shape)}] needs {count} values, contents has {values.Length}");
    }

    private static T[] Narrow<TWire, T>(IReadOnlyList<TWire> wire, string name, Func<TWire, T> narrow)
    {
        var values = new T[wire.Count];
        for (var i = 0; i < values.Length; i++)
        {
            try
            {
                values[i] = narrow(wire[i]);
            }
            catch (OverflowException)
            {
                throw new InferenceException($"input '{name}': value {wire[i]} at {i} is out of range for {typeof(T).Name}");
            }
        }
        return values;
    }

    private LoadedModel Require(string name, string version) =>
        repository.Find(name, Version(version)) ?? throw new RpcException(new Status(StatusCode.NotFound,
            repository.Contains(name) && Version(version) is not null ? $"model {name} has no version {version} loaded" : $"model {name} is not loaded here"));

    private static string? Version(string version) => string.IsNullOrEmpty(version) ? null : version;

    private static GrpcApi.ModelMetadataResponse.Types.TensorMetadata Describe(TensorMetadata t) =>
        new() { Name = t.Name, Datatype = InferDataTypes.Name(t.DataType), Shape = { t.Shape } };

    private static StatusCode Code(int status) => status switch
    {
        400 => StatusCode.InvalidArgument,
        404 => StatusCode.NotFound,
        413 or 429 => StatusCode.ResourceExhausted,
        503 => StatusCode.Unavailable,
        504 => StatusCode.DeadlineExceeded,
        _ => StatusCode.Internal,
    };
}
