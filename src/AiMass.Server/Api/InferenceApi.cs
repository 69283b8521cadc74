using System.Buffers;
using System.Globalization;
using System.Text.Json;
using AiMass.Serving;
using Microsoft.AspNetCore.Http.Features;
using Prometheus;

namespace AiMass.Server.Api;

/// <summary>
/// The Open Inference Protocol v2 REST endpoints (KServe / Triton) over a <see cref="ModelRepository"/>: health,
/// server and model metadata, readiness, and inference with JSON or binary tensors. Errors are <c>{"error": "..."}</c>
/// with 400 (bad request), 404 (unknown model or version), 413 (body too large), 429 (queue full, with Retry-After),
/// 503 (unloading) or 504 (timed out in the queue).
/// </summary>
public static class InferenceApi
{
    private static readonly string[] Extensions = ["binary_tensor_data"];

    /// <summary>Largest request body accepted (64 MiB).</summary>
    public const long MaxRequestBytes = 64L << 20;

    /// <summary>Maps <c>/v2/...</c> onto <paramref name="repository"/>.</summary>
    public static void MapInferenceApi(this IEndpointRouteBuilder app, ModelRepository repository)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(repository);
        var v2 = app.MapGroup("/v2").WithTags("inference");
        v2.MapGet("/health/live", () => Results.Json(new { live = true }));
        v2.MapGet("/health/ready", () => Results.Json(new { ready = true }));
        v2.MapGet("/", () => Results.Json(new { name = "aimass", version = ThisAssembly.Version, extensions = Extensions }));
        v2.MapGet("/models/{model}", (string model) => Metadata(repository, model, null));
        v2.MapGet("/models/{model}/versions/{version}", (string model, string version) => Metadata(repository, model, version));
        v2.MapGet("/models/{model}/ready", (string model) => Ready(repository, model, null));
        v2.MapGet("/models/{model}/versions/{version}/ready", (string model, string version) => Ready(repository, model, version));
        v2.MapPost("/models/{model}/infer", (string model, HttpContext context) => InferAsync(repository, model, null, context));
        v2.MapPost("/models/{model}/versions/{version}/infer", (string model, string version, HttpContext context) => InferAsync(repository, model, version, context));

        // Model repository: what this host can serve, loading (again: an alias is resolved anew) and unloading.
        v2.MapPost("/repository/index", () => Results.Json(repository.Index().Select(e => new { name = e.Name, version = e.Version, state = e.State, reason = e.Reason })));
        v2.MapPost("/repository/models/{model}/load", async (string model, CancellationToken ct) =>
        {
            try
            {
                var loaded = await repository.LoadAsync(model, ct);
                return Results.Json(new { name = model, version = loaded[^1].Version, versions = loaded.Select(m => m.Version) });
            }
            catch (InferenceException e)
            {
                return Error(e.Status, e.Message, e.RetryAfter);
            }
        });
        v2.MapPost("/repository/models/{model}/unload", async (string model) =>
            await repository.UnloadAsync(model) > 0 ? Results.Json(new { name = model }) : NotFound(repository, model, null));

        // TensorFlow Serving's REST API on the same listener.
        var v1 = app.MapGroup("/v1/models").WithTags("inference");
        v1.MapGet("/{model}", (string model) => TfStatus(repository, model));
        v1.MapGet("/{model}/metadata", (string model) => TfMetadata(repository, model, repository.Find(model)));
        v1.MapGet("/{model}/versions/{version}/metadata", (string model, string version) => TfMetadata(repository, model, repository.Find(model, version)));
        v1.MapPost("/{model}:predict", (string model, HttpContext context) => PredictAsync(repository.Find(model), repository, model, context));
        v1.MapPost("/{model}/versions/{version}:predict", (string model, string version, HttpContext context) =>
            PredictAsync(repository.Find(model, version), repository, model, context));
        v1.MapPost("/{model}/labels/{label}:predict", (string model, string label, HttpContext context) =>
            PredictAsync(repository.FindByLabel(model, label), repository, model, context, label));
    }

    private static IResult TfStatus(ModelRepository repository, string model)
    {
        var versions = repository.Models.Where(m => m.Name == model).ToList();
        return versions.Count == 0
            ? NotFound(repository, model, null)
            : Results.Json(new
            {
                model_version_status = versions.Select(v => new { version = v.Version, state = "AVAILABLE", status = new { error_code = "OK", error_message = "" } }),
            });
    }

    private static IResult TfMetadata(ModelRepository repository, string model, LoadedModel? loaded)
    {
        if (loaded is null)
        {
            return NotFound(repository, model, null);
        }
        object Tensor(TensorMetadata t) => new { dtype = InferDataTypes.Name(t.DataType), tensor_shape = new { dim = t.Shape.Select(d => new { size = d.ToString(CultureInfo.InvariantCulture) }) }, name = t.Name };
        return Results.Json(new
        {
            model_spec = new { name = loaded.Name, version = loaded.Version },
            metadata = new
            {
                signature_def = new
                {
                    signature_def = new Dictionary<string, object>
                    {
                        ["serving_default"] = new
                        {
                            inputs = loaded.Session.Inputs.ToDictionary(i => i.Name, Tensor),
                            outputs = loaded.Session.Outputs.ToDictionary(o => o.Name, Tensor),
                            method_name = "tensorflow/serving/predict",
                        },
                    },
                },
            },
        });
    }

    private static Task<IResult> PredictAsync(LoadedModel? loaded, ModelRepository repository, string model, HttpContext context, string? label = null) =>
        MeasuredAsync(model, loaded?.Version, () => PredictCoreAsync(loaded, repository, model, context, label));

    private static async Task<IResult> PredictCoreAsync(LoadedModel? loaded, ModelRepository repository, string model, HttpContext context, string? label)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        if (loaded is null)
        {
            return label is null ? NotFound(repository, model, null) : Error(404, $"model {model} has no version labelled '{label}' loaded here");
        }
        TfServingRequest request;
        using (var body = await ReadBodyAsync(context))
        {
            if (body is null)
            {
                return Error(413, $"the request body is larger than the limit of {MaxRequestBytes} bytes");
            }
            try
            {
                request = TfServingCodec.ReadPredict(body.Memory, loaded.Session.Inputs);
            }
            catch (InferenceException e)
            {
                return Error(e.Status, e.Message, e.RetryAfter);
            }
        }
        try
        {
            var timing = new InferenceTiming();
            var outputs = await loaded.Batcher.InferAsync(new InferenceRequest { Inputs = request.Inputs, Timing = timing }, context.RequestAborted);
            var answer = TfServingCodec.WritePredict(request, outputs);
            SetServerTiming(context, timing, started);
            return new AnswerResult(answer, "application/json");
        }
        catch (InferenceException e)
        {
            return Error(e.Status, e.Message, e.RetryAfter);
        }
    }

    private static ErrorResult Error(int status, string message, TimeSpan? retryAfter = null) =>
        new ErrorResult(status, message, retryAfter);

    private static IResult Metadata(ModelRepository repository, string model, string? version)
    {
        if (repository.Find(model, version) is not { } loaded)
        {
            return NotFound(repository, model, version);
        }
        var versions = repository.Models.Where(m => m.Name == model).Select(m => m.Version).ToArray();
        return Results.Json(new
        {
            name = loaded.Name,
            versions,
            platform = "onnxruntime_onnx",
            inputs = loaded.Session.Inputs.Select(Describe),
            outputs = loaded.Session.Outputs.Select(Describe),
        });
    }

    private static object Describe(TensorMetadata t) => new { name = t.Name, datatype = InferDataTypes.Name(t.DataType), shape = t.Shape };

    private static IResult Ready(ModelRepository repository, string model, string? version) =>
        repository.Find(model, version) is { } loaded ? Results.Json(new { name = loaded.Name, ready = true }) : NotFound(repository, model, version);

    private static ErrorResult NotFound(ModelRepository repository, string model, string? version) =>
        repository.IsLoading(model) && !repository.Contains(model)
            ? Error(503, $"model {model} is loading; retry shortly", TimeSpan.FromSeconds(1))
            : Error(404, repository.Contains(model) && version is not null
                ? $"model {model} has no version {version} loaded (loaded: {string.Join(", ", repository.Models.Where(m => m.Name == model).Select(m => m.Version))})"
                : $"model {model} is not loaded here");

    /// <summary>Runs an inference endpoint and records its outcome in <see cref="ServingMetrics"/>.</summary>
    private static async Task<IResult> MeasuredAsync(string model, string? version, Func<Task<IResult>> handle)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var result = await handle();
        var status = result is ErrorResult error ? error.Status : 200;
        ServingMetrics.RequestEnded(model, version ?? "", status, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        return result;
    }

    private static Task<IResult> InferAsync(ModelRepository repository, string model, string? version, HttpContext context) =>
        MeasuredAsync(model, repository.Find(model, version)?.Version ?? version, () => InferCoreAsync(repository, model, version, context));

    private static async Task<IResult> InferCoreAsync(ModelRepository repository, string model, string? version, HttpContext context)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        if (repository.Find(model, version) is not { } loaded)
        {
            return NotFound(repository, model, version);
        }
        int? headerLength = null;
        if (context.Request.Headers.TryGetValue(OipCodec.HeaderLengthHeader, out var header))
        {
            if (!int.TryParse(header.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var h))
            {
                return Error(400, $"{OipCodec.HeaderLengthHeader} '{header}' is not a whole number");
            }
            headerLength = h;
        }
        if (context.Request.ContentLength > MaxRequestBytes)
        {
            return Error(413, $"the request body ({context.Request.ContentLength} bytes) is larger than the limit of {MaxRequestBytes} bytes");
        }
        InferenceRequest request;
        using (var body = await ReadBodyAsync(context))
        {
            if (body is null)
            {
                return Error(413, $"the request body is larger than the limit of {MaxRequestBytes} bytes");
            }
            try
            {
                // The codec copies what it keeps: the pooled buffer goes back as soon as the request is read.
                request = OipCodec.ReadRequest(body.Memory, headerLength) with { Timing = new InferenceTiming() };
            }
            catch (InferenceException e)
            {
                return Error(e.Status, e.Message, e.RetryAfter);
            }
        }
        try
        {
            var outputs = await loaded.Batcher.InferAsync(request, context.RequestAborted);
            var answers = new List<(InferTensor, bool)>(outputs.Count);
            foreach (var output in outputs)
            {
                answers.Add((output, IsBinary(request, output.Name)));
            }
            var response = new InferenceResponse(loaded.Name, loaded.Version, request.Id, answers);
            var (bytes, length) = OipCodec.WriteResponse(response);
            SetServerTiming(context, request.Timing, started);
            if (length is { } l)
            {
                context.Response.Headers[OipCodec.HeaderLengthHeader] = l.ToString(CultureInfo.InvariantCulture);
                return new AnswerResult(bytes, "application/octet-stream");
            }
            return new AnswerResult(bytes, "application/json");
        }
        catch (InferenceException e)
        {
            return Error(e.Status, e.Message, e.RetryAfter);
        }
    }

    /// <summary>Whether an output goes back as binary data: as the request asks for it by name, else as for all outputs.</summary>
    private static bool IsBinary(InferenceRequest request, string output)
    {
        foreach (var asked in request.Outputs)
        {
            if (asked.Name == output)
            {
                return asked.Binary;
            }
        }
        return request.BinaryOutputs;
    }

    /// <summary>
    /// <c>Server-Timing: queue;dur=MS, compute;dur=MS, total;dur=MS</c>: time in the batcher's queue, time of the
    /// execution, and the endpoint's whole time up to the response (reading, parsing, queue, compute, encoding), so a
    /// client sees what the server adds: total − queue − compute.
    /// </summary>
    private static void SetServerTiming(HttpContext context, InferenceTiming? timing, long started)
    {
        var total = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        var queue = timing?.Queue ?? TimeSpan.Zero;
        var compute = timing?.Compute ?? TimeSpan.Zero;
        // Milliseconds to the microsecond, written from whole numbers (cheaper than formatting doubles).
        long q = (long)queue.TotalMicroseconds, c = (long)compute.TotalMicroseconds, t = (long)total.TotalMicroseconds;
        context.Response.Headers["Server-Timing"] = string.Create(CultureInfo.InvariantCulture,
            $"queue;dur={q / 1000}.{q % 1000:D3}, compute;dur={c / 1000}.{c % 1000:D3}, total;dur={t / 1000}.{t % 1000:D3}");
        ServingMetrics.Overhead(total - queue - compute);
    }

    /// <summary>
    /// An encoded answer written straight into the response: no file-result machinery (ranges, conditional requests),
    /// which an inference answer never needs. Up to 64 KiB it is left in Kestrel's buffer, which sends it with the
    /// headers when the request ends; larger answers are written with back-pressure.
    /// </summary>
    private sealed class AnswerResult(byte[] bytes, string contentType) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            var response = httpContext.Response;
            response.ContentType = contentType;
            response.ContentLength = bytes.Length;
            if (bytes.Length > 1 << 16)
            {
                return response.Body.WriteAsync(bytes, httpContext.RequestAborted).AsTask();
            }
            response.BodyWriter.Write(bytes);
            return Task.CompletedTask;
        }
    }

    /// <summary>
    /// The whole body in a buffer rented from the shared array pool (the caller gives it back once the request is
    /// parsed: the codecs copy what they keep), or null when it exceeds <see cref="MaxRequestBytes"/>.
    /// </summary>
    private static async Task<PooledBody?> ReadBodyAsync(HttpContext context)
    {
        var declared = context.Request.ContentLength;
        if (declared > MaxRequestBytes)
        {
            return null;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(declared is > 0 ? (int)declared.Value : 4096);
        var at = 0;
        try
        {
            // A body of declared length is read to that length (Kestrel holds the client to it); one without, to its end.
            while (declared is null || at < declared)
            {
                if (at == buffer.Length)
                {
                    if (at >= MaxRequestBytes)
                    {
                        if (await context.Request.Body.ReadAsync(new byte[1], context.RequestAborted) == 0)
                        {
                            break;
                        }
                        ArrayPool<byte>.Shared.Return(buffer);
                        return null;
                    }
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(MaxRequestBytes, 2L * buffer.Length));
                    buffer.AsSpan(0, at).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                var got = await context.Request.Body.ReadAsync(buffer.AsMemory(at, (int)Math.Min(buffer.Length, declared ?? buffer.Length) - at), context.RequestAborted);
                if (got == 0)
                {
                    break;
                }
                at += got;
            }
            return new PooledBody(buffer, at);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>A request body in a pooled buffer; disposing gives the buffer back.</summary>
    private sealed class PooledBody(byte[] buffer, int length) : IDisposable
    {
        private byte[]? _buffer = buffer;

        public ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, length);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _buffer, null) is { } b)
            {
                ArrayPool<byte>.Shared.Return(b);
            }
        }
    }

    private sealed class ErrorResult(int status, string message, TimeSpan? retryAfter) : IResult
    {
        public int Status => status;

        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            if (retryAfter is { } r)
            {
                httpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(r.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            }
            httpContext.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(httpContext.Response.Body, new Dictionary<string, string> { ["error"] = message }, cancellationToken: httpContext.RequestAborted);
        }
    }

    /// <summary>
    /// Has the runtime complete this process's socket operations on its socket threads (one per core) instead of
    /// handing each completion to the thread pool: Kestrel's transport reads a request and writes an answer without
    /// waking a pool thread for it, one wake-up fewer per request on cores the models need. Requests still run on the
    /// thread pool. The runtime reads the setting (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS) once, when the process
    /// opens its first socket, so this is called first thing by a model host's process; an explicit setting in the
    /// environment wins. For model hosts only: code that continues after a socket operation runs on a socket thread until
    /// it next waits, so nothing may block or compute long after one (the repository loads models on the thread pool for
    /// that reason); the control plane, whose database and HTTP clients run arbitrary code after their reads, keeps the
    /// default.
    /// </summary>
    public static void PreferInlineSocketCompletions()
    {
        if (Environment.GetEnvironmentVariable(InlineSocketCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineSocketCompletionsVariable, "1");
        }
    }

    /// <summary>The runtime's switch that <see cref="PreferInlineSocketCompletions"/> sets ("1": inline).</summary>
    public const string InlineSocketCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// A standalone model host for <c>aimass serve</c>: Kestrel on <paramref name="host"/>:<paramref name="port"/> with
    /// the REST endpoints (Open Inference Protocol, TensorFlow Serving, /metrics) over <paramref name="repository"/>,
    /// and the Open Inference Protocol's gRPC service on <paramref name="grpcPort"/> (HTTP/2; null: none). gRPC has its
    /// own port, as in Triton (8000/8001) and KServe: Kestrel cannot tell HTTP/1.1 from cleartext HTTP/2 on one port
    /// (dotnet/aspnetcore#56984), and REST clients such as curl speak HTTP/1.1.
    /// </summary>
    public static WebApplication BuildHost(ModelRepository repository, string host, int port, int? grpcPort = null)
    {
        AiMassServer.ConfigureMetricsExport();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(AiMassServer.ListenAddress(host), port);
            if (grpcPort is { } g)
            {
                k.Listen(AiMassServer.ListenAddress(host), g, o => o.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
            }
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = MaxRequestBytes + 1;
        });
        builder.Services.AddSingleton(repository);
        // 64 KiB receive blocks instead of Kestrel's 4 KiB: a request body arrives in one receive and one wake-up of
        // the handler rather than one per 4 KiB (a batch-1 JSON request of 784 floats is 8.5 KB).
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, Hosting.LargeBlockMemoryPoolFactory>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = (int)MaxRequestBytes;
            o.MaxSendMessageSize = null;
        });
        AiMassServer.QuietHostMetrics(builder.Services);
        var app = builder.Build();
        app.Use(async (context, next) =>
        {
            // The endpoint answers 413 itself, in the protocol's error shape.
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = null;
            }
            await next(context);
        });
        app.MapInferenceApi(repository);
        app.MapGrpcService<GrpcInferenceService>();
        app.MapMetrics();
        return app;
    }
}
