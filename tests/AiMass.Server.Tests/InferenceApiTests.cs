using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using AiMass.Server.Api;
using AiMass.Serving;
using AiMass.TestSupport;
using Microsoft.AspNetCore.Builder;

namespace AiMass.Server.Tests;

public sealed class InferenceApiTests : IAsyncLifetime
{
    private readonly ModelRepository _repository = new();
    private WebApplication _app = null!;
    private HttpClient _http = null!;
    private global::Grpc.Net.Client.GrpcChannel _channel = null!;
    private Grpc.GRPCInferenceService.GRPCInferenceServiceClient _grpc = null!;

    public async Task InitializeAsync()
    {
        await _repository.LoadAsync("linear", "1", OnnxModels.Linear(4, 2, seed: 1));
        await _repository.LoadAsync("linear", "2", OnnxModels.Linear(4, 2, seed: 2), labels: ["production"]);
        await _repository.LoadAsync("words", "1", OnnxModels.Identity(8, width: 2));
        // A model known by source but not loaded yet; its source serves version 7, then 8 (an alias that moved).
        var fetched = 0;
        _repository.Register(new ModelSource("moving",
            _ => Task.FromResult<IReadOnlyList<AvailableVersion>>(fetched++ == 0
                ? [new AvailableVersion("7", ["production"])]
                : [new AvailableVersion("7", []), new AvailableVersion("8", ["production"])]),
            (_, _) => Task.FromResult(OnnxModels.Linear(4, 2, seed: 7)), new VersionPolicy.Labelled("production"), new ModelConfig()));
        _repository.Register(new ModelSource("broken", _ => Task.FromResult<IReadOnlyList<AvailableVersion>>([new AvailableVersion("1", [])]),
            (_, _) => Task.FromResult(new byte[] { 1, 2, 3 }), new VersionPolicy.Latest(1), new ModelConfig()));
        await _repository.LoadAsync("ids", "1", OnnxModels.Identity(7, width: 3));
        _app = InferenceApi.BuildHost(_repository, "127.0.0.1", 0, grpcPort: 0);
        await _app.StartAsync();
        _http = new HttpClient { BaseAddress = _app.GetListeningAddress() };
        _channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_app.GetListeningAddresses()[1]);
        _grpc = new Grpc.GRPCInferenceService.GRPCInferenceServiceClient(_channel);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        _http.Dispose();
        await _app.DisposeAsync();
        await _repository.DisposeAsync();
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Grpc_health_metadata_and_inference_with_raw_and_typed_contents()
    {
        Assert.True((await _grpc.ServerLiveAsync(new Grpc.ServerLiveRequest())).Live);
        Assert.True((await _grpc.ServerReadyAsync(new Grpc.ServerReadyRequest())).Ready);
        Assert.True((await _grpc.ModelReadyAsync(new Grpc.ModelReadyRequest { Name = "linear", Version = "1" })).Ready);
        Assert.False((await _grpc.ModelReadyAsync(new Grpc.ModelReadyRequest { Name = "linear", Version = "9" })).Ready);
        var server = await _grpc.ServerMetadataAsync(new Grpc.ServerMetadataRequest());
        Assert.Equal("aimass", server.Name);
        var metadata = await _grpc.ModelMetadataAsync(new Grpc.ModelMetadataRequest { Name = "linear" });
        Assert.Equal(["1", "2"], metadata.Versions);
        Assert.Equal("FP32", metadata.Inputs[0].Datatype);
        Assert.Equal([-1L, 4], metadata.Inputs[0].Shape);

        float[] x = [1, 2, 3, 4, 5, 6, 7, 8];
        var expected = _repository.Find("linear", "1")!.Session.Run([new InferTensor("X", InferDataType.Fp32, [2, 4], x)])[0].AsFloats();
        var raw = new Grpc.ModelInferRequest { ModelName = "linear", ModelVersion = "1", Id = "g-1" };
        raw.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = "X", Datatype = "FP32", Shape = { 2, 4 } });
        raw.RawInputContents.Add(Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(x.AsSpan())));
        var answer = await _grpc.ModelInferAsync(raw);
        Assert.Equal(("linear", "1", "g-1"), (answer.ModelName, answer.ModelVersion, answer.Id));
        Assert.Equal("Y", answer.Outputs[0].Name);
        Assert.Equal([2L, 2], answer.Outputs[0].Shape);
        Assert.Equal(expected, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(answer.RawOutputContents[0].Span).ToArray());

        var typed = new Grpc.ModelInferRequest { ModelName = "linear", ModelVersion = "1" };
        typed.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = "X", Datatype = "FP32", Shape = { 2, 4 }, Contents = new Grpc.InferTensorContents { Fp32Contents = { x } } });
        var typedAnswer = await _grpc.ModelInferAsync(typed);
        Assert.Equal(expected, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(typedAnswer.RawOutputContents[0].Span).ToArray());

        // INT64 and BYTES (strings) both ways; a requested output only.
        var ints = new Grpc.ModelInferRequest { ModelName = "ids" };
        ints.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = "A", Datatype = "INT64", Shape = { 1, 3 }, Contents = new Grpc.InferTensorContents { Int64Contents = { 7, -8, 9_000_000_000 } } });
        ints.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = "B", Datatype = "INT64", Shape = { 1, 3 }, Contents = new Grpc.InferTensorContents { Int64Contents = { 1, 2, 3 } } });
        ints.Outputs.Add(new Grpc.ModelInferRequest.Types.InferRequestedOutputTensor { Name = "A_out" });
        var intAnswer = await _grpc.ModelInferAsync(ints);
        Assert.Single(intAnswer.Outputs);
        Assert.Equal([7L, -8, 9_000_000_000], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(intAnswer.RawOutputContents[0].Span).ToArray());
        var words = new Grpc.ModelInferRequest { ModelName = "words" };
        foreach (var name in new[] { "A", "B" })
        {
            words.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = "BYTES", Shape = { 1, 2 }, Contents = new Grpc.InferTensorContents { BytesContents = { Google.Protobuf.ByteString.CopyFromUtf8("grid"), Google.Protobuf.ByteString.CopyFromUtf8("läst") } } });
        }
        var wordsAnswer = await _grpc.ModelInferAsync(words);
        var bytes = wordsAnswer.RawOutputContents[0].ToByteArray();
        Assert.Equal(4, BitConverter.ToInt32(bytes, 0));
        Assert.Equal("grid", Encoding.UTF8.GetString(bytes, 4, 4));
        Assert.Equal("läst", Encoding.UTF8.GetString(bytes, 12, BitConverter.ToInt32(bytes, 8)));

        // Errors are gRPC statuses naming the problem.
        var missing = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(async () => await _grpc.ModelInferAsync(new Grpc.ModelInferRequest { ModelName = "nothing" }));
        Assert.Equal(global::Grpc.Core.StatusCode.NotFound, missing.StatusCode);
        var shape = new Grpc.ModelInferRequest { ModelName = "linear" };
        shape.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = "X", Datatype = "FP32", Shape = { 2, 4 }, Contents = new Grpc.InferTensorContents { Fp32Contents = { 1, 2, 3 } } });
        var bad = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(async () => await _grpc.ModelInferAsync(shape));
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, bad.StatusCode);
        Assert.Contains("input 'X'", bad.Status.Detail, StringComparison.Ordinal);
        var rawCount = new Grpc.ModelInferRequest { ModelName = "linear" };
        rawCount.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = "X", Datatype = "FP32", Shape = { 1, 4 } });
        rawCount.RawInputContents.Add(Google.Protobuf.ByteString.CopyFrom(new byte[15]));
        var wrongSize = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(async () => await _grpc.ModelInferAsync(rawCount));
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, wrongSize.StatusCode);
        Assert.Contains("needs 16 bytes", wrongSize.Status.Detail, StringComparison.Ordinal);
        var twice = new Grpc.ModelInferRequest { ModelName = "linear" };
        for (var i = 0; i < 2; i++)
        {
            twice.Inputs.Add(new Grpc.ModelInferRequest.Types.InferInputTensor { Name = "X", Datatype = "FP32", Shape = { 1, 4 }, Contents = new Grpc.InferTensorContents { Fp32Contents = { 1, 2, 3, 4 } } });
        }
        var given = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(async () => await _grpc.ModelInferAsync(twice));
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, given.StatusCode);
        Assert.Contains("input 'X' of model linear is given more than once", given.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_server_and_model_metadata_follow_the_protocol()
    {
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("v2/health/ready")).StatusCode);
        using var server = JsonDocument.Parse(await _http.GetStringAsync("v2"));
        Assert.Equal("binary_tensor_data", server.RootElement.GetProperty("extensions")[0].GetString());
        using var model = JsonDocument.Parse(await _http.GetStringAsync("v2/models/linear"));
        Assert.Equal(["1", "2"], model.RootElement.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        Assert.Equal("FP32", model.RootElement.GetProperty("inputs")[0].GetProperty("datatype").GetString());
        Assert.Equal("[-1,4]", model.RootElement.GetProperty("inputs")[0].GetProperty("shape").GetRawText());
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("v2/models/linear/versions/1/ready")).StatusCode);
        var missing = await _http.GetAsync("v2/models/linear/versions/9/ready");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("has no version 9 loaded (loaded: 1, 2)", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Json_inference_picks_the_version_echoes_the_id_and_matches_the_session()
    {
        const string body = """{"id": "req-7", "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}""";
        var latest = await _http.PostAsync("v2/models/linear/infer", Json(body));
        Assert.Equal(HttpStatusCode.OK, latest.StatusCode);
        using var doc = JsonDocument.Parse(await latest.Content.ReadAsStringAsync());
        Assert.Equal("req-7", doc.RootElement.GetProperty("id").GetString());
        Assert.Equal("2", doc.RootElement.GetProperty("model_version").GetString());
        var values = doc.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        float[] x = [1, 2, 3, 4, 5, 6, 7, 8];
        var expected = _repository.Find("linear", "2")!.Session.Run([new InferTensor("X", InferDataType.Fp32, [2, 4], x)])[0].AsFloats();
        Assert.Equal(expected, values);

        var v1 = await _http.PostAsync("v2/models/linear/versions/1/infer", Json(body));
        using var doc1 = JsonDocument.Parse(await v1.Content.ReadAsStringAsync());
        Assert.Equal("1", doc1.RootElement.GetProperty("model_version").GetString());

        var words = await _http.PostAsync("v2/models/words/infer", Json("""{"inputs": [{"name": "A", "shape": [1, 2], "datatype": "BYTES", "data": ["grid", "load"]}, {"name": "B", "shape": [1, 2], "datatype": "BYTES", "data": ["x", "y"]}], "outputs": [{"name": "A_out"}]}"""));
        using var wordsDoc = JsonDocument.Parse(await words.Content.ReadAsStringAsync());
        var outputs = wordsDoc.RootElement.GetProperty("outputs");
        Assert.Equal(1, outputs.GetArrayLength());
        Assert.Equal("""["grid","load"]""", outputs[0].GetProperty("data").GetRawText());
    }

    [Fact]
    public async Task Binary_tensors_go_in_and_come_out()
    {
        var json = """{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}], "outputs": [{"name": "Y", "parameters": {"binary_data": true}}]}""";
        var header = Encoding.UTF8.GetBytes(json);
        float[] x = [0.5f, -1, 2, 4];
        var payload = header.Concat(x.SelectMany(BitConverter.GetBytes)).ToArray();
        using var content = new ByteArrayContent(payload);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add(OipCodec.HeaderLengthHeader, header.Length.ToString(CultureInfo.InvariantCulture));
        var response = await _http.PostAsync("v2/models/linear/infer", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var length = int.Parse(response.Headers.GetValues(OipCodec.HeaderLengthHeader).Single(), CultureInfo.InvariantCulture);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        using var doc = JsonDocument.Parse(bytes.AsMemory(0, length));
        Assert.Equal(8, doc.RootElement.GetProperty("outputs")[0].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        var y = new[] { BitConverter.ToSingle(bytes, length), BitConverter.ToSingle(bytes, length + 4) };
        var expected = _repository.Find("linear")!.Session.Run([new InferTensor("X", InferDataType.Fp32, [1, 4], x)])[0].AsFloats();
        Assert.Equal(expected, y);
    }

    [Theory]
    [InlineData("v2/models/linear/infer", """{"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}""", 400, "has shape [-1, 4], got [1, 3]: dimension 1 must be 4")]
    [InlineData("v2/models/linear/infer", """{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]}""", 400, "takes FP32, got INT64")]
    [InlineData("v2/models/linear/infer", """{"inputs": [{"name": "Z", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}""", 400, "has no input 'Z' (inputs: X)")]
    [InlineData("v2/models/linear/infer", """{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}, {"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}""", 400, "input 'X' of model linear is given more than once")]
    [InlineData("v2/models/linear/infer", """{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "Q"}]}""", 400, "has no output 'Q'")]
    [InlineData("v2/models/linear/infer", "not json", 400, "not valid JSON")]
    [InlineData("v2/models/absent/infer", """{"inputs": []}""", 404, "model absent is not loaded here")]
    public async Task Bad_requests_get_an_error_object_naming_the_problem(string path, string body, int status, string expected)
    {
        var response = await _http.PostAsync(path, Json(body));
        Assert.Equal(status, (int)response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains(expected, doc.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_body_over_the_limit_is_refused_with_413()
    {
        using var content = new ByteArrayContent(new byte[InferenceApi.MaxRequestBytes + 10]);
        var response = await _http.PostAsync("v2/models/linear/infer", content);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("larger than the limit", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tensorflow_serving_predict_takes_rows_and_columns()
    {
        float[] x = [1, 2, 3, 4, 5, 6, 7, 8];
        var expected = _repository.Find("linear", "2")!.Session.Run([new InferTensor("X", InferDataType.Fp32, [2, 4], x)])[0].AsFloats();

        var rows = await _http.PostAsync("v1/models/linear:predict", Json("""{"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]}"""));
        Assert.Equal(HttpStatusCode.OK, rows.StatusCode);
        using var rowsDoc = JsonDocument.Parse(await rows.Content.ReadAsStringAsync());
        var predictions = rowsDoc.RootElement.GetProperty("predictions");
        Assert.Equal(2, predictions.GetArrayLength());
        Assert.Equal(expected, predictions.EnumerateArray().SelectMany(p => p.EnumerateArray().Select(v => v.GetSingle())));

        var columns = await _http.PostAsync("v1/models/linear/labels/production:predict", Json("""{"inputs": {"X": [[1, 2, 3, 4], [5, 6, 7, 8]]}}"""));
        using var columnsDoc = JsonDocument.Parse(await columns.Content.ReadAsStringAsync());
        Assert.Equal(expected, columnsDoc.RootElement.GetProperty("outputs").EnumerateArray().SelectMany(p => p.EnumerateArray().Select(v => v.GetSingle())));

        // Several inputs: each instance is an object; several outputs: each prediction is an object.
        var words = await _http.PostAsync("v1/models/words/versions/1:predict", Json("""{"instances": [{"A": ["a", "b"], "B": ["c", "d"]}, {"A": ["e", "f"], "B": ["g", "h"]}]}"""));
        using var wordsDoc = JsonDocument.Parse(await words.Content.ReadAsStringAsync());
        Assert.Equal("""{"A_out":["e","f"],"B_out":["g","h"]}""", wordsDoc.RootElement.GetProperty("predictions")[1].GetRawText());

        using var status = JsonDocument.Parse(await _http.GetStringAsync("v1/models/linear"));
        Assert.Equal("AVAILABLE", status.RootElement.GetProperty("model_version_status")[0].GetProperty("state").GetString());
        using var metadata = JsonDocument.Parse(await _http.GetStringAsync("v1/models/linear/metadata"));
        Assert.Equal("2", metadata.RootElement.GetProperty("model_spec").GetProperty("version").GetString());
    }

    [Fact]
    public async Task A_model_being_loaded_answers_503_with_retry_after_then_serves()
    {
        var release = new TaskCompletionSource();
        _repository.Register(new ModelSource("slow",
            async _ =>
            {
                await release.Task;
                return [new AvailableVersion("1", [])];
            },
            (_, _) => Task.FromResult(OnnxModels.Linear(4, 2, seed: 1)), new VersionPolicy.Latest(1), new ModelConfig()));
        var loading = _http.PostAsync("v2/repository/models/slow/load", null);
        await Poll.UntilAsync(() => Task.FromResult(_repository.IsLoading("slow")), TimeSpan.FromSeconds(10), "the load to begin");
        var early = await _http.PostAsync("v2/models/slow/infer", Json("""{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
        Assert.Equal("1", early.Headers.RetryAfter?.ToString());
        Assert.Contains("model slow is loading", await early.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await loading).StatusCode);
        var later = await _http.PostAsync("v2/models/slow/infer", Json("""{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"""));
        Assert.Equal(HttpStatusCode.OK, later.StatusCode);
    }

    [Fact]
    public async Task Tensorflow_serving_takes_b64_strings()
    {
        // "grid" and "läst" as base64, next to a plain string.
        var answer = await _http.PostAsync("v1/models/words:predict", Json("""{"inputs": {"A": [[{"b64": "Z3JpZA=="}, {"b64": "bMOkc3Q="}]], "B": [["x", "y"]]}}"""));
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        using var doc = JsonDocument.Parse(await answer.Content.ReadAsStringAsync());
        var row = doc.RootElement.GetProperty("outputs").GetProperty("A_out")[0];
        Assert.Equal(["grid", "läst"], row.EnumerateArray().Select(v => v.GetString()));
    }

    [Theory]
    [InlineData("v1/models/linear:predict", """{"instances": [[1, 2, 3, 4], [5, 6, 7]]}""", 400, "instance 1 has shape [3], instance 0 has [4]")]
    [InlineData("v1/models/linear:predict", """{"inputs": [[1, 2], [3]]}""", 400, "ragged")]
    [InlineData("v1/models/linear:predict", """{"instances": [[1, 2, 3, "x"]]}""", 400, "is not a valid FP32")]
    [InlineData("v1/models/linear:predict", """{"instances": [], "inputs": []}""", 400, "exactly one of")]
    [InlineData("v1/models/words:predict", """{"instances": [["a", "b"]]}""", 400, "the model has 2 inputs")]
    [InlineData("v1/models/linear/labels/canary:predict", """{"instances": [[1, 2, 3, 4]]}""", 404, "no version labelled 'canary'")]
    [InlineData("v1/models/words:predict", """{"inputs": {"A": [[{"b64": "!!"}, "x"]], "B": [["x", "y"]]}}""", 400, "input 'A': value 0 is not valid base64")]
    [InlineData("v1/models/words:predict", """{"inputs": {"A": [[{"b64": "/w=="}, "x"]], "B": [["x", "y"]]}}""", 400, "not UTF-8 text")]
    [InlineData("v1/models/words:predict", """{"inputs": {"A": [[{"raw": "x"}, "x"]], "B": [["x", "y"]]}}""", 400, "must be a string or {\"b64\"")]
    public async Task Bad_tensorflow_serving_requests_are_named(string path, string body, int status, string expected)
    {
        var response = await _http.PostAsync(path, Json(body));
        Assert.Equal(status, (int)response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains(expected, doc.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_follow_the_triton_names_with_model_version_and_reason()
    {
        const string good = """{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}""";
        Assert.Equal(HttpStatusCode.OK, (await _http.PostAsync("v2/models/linear/versions/1/infer", Json(good))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.PostAsync("v2/models/linear/versions/1/infer", Json("{}"))).StatusCode);
        var text = await _http.GetStringAsync("metrics");
        foreach (var name in new[]
        {
            "aimass_nv_inference_request_success", "aimass_nv_inference_request_failure", "aimass_nv_inference_count",
            "aimass_nv_inference_exec_count", "aimass_nv_inference_request_duration_us", "aimass_nv_inference_queue_duration_us",
            "aimass_nv_inference_compute_infer_duration_us", "aimass_nv_inference_pending_request_count",
        })
        {
            Assert.Contains(name, text, StringComparison.Ordinal);
        }
        Assert.Matches("aimass_nv_inference_request_success[^\\n]*model=\"linear\"[^\\n]*version=\"1\"", text);
        Assert.Matches("aimass_nv_inference_request_failure[^\\n]*reason=\"BAD_REQUEST\"", text);
    }

    [Fact]
    public async Task Metrics_count_every_request_and_leave_aspnetcore_per_request_instruments_out()
    {
        const string good = """{"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}""";
        static double Value(string text, string metric, string labels)
        {
            var line = text.Split('\n').SingleOrDefault(l => l.StartsWith(metric + "{", StringComparison.Ordinal) && labels.Split(',').All(l.Contains));
            return line is null ? 0 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        // A model of its own: the counters are per model version in the whole process, which other tests share.
        await _repository.LoadAsync("counted", "3", OnnxModels.Linear(4, 2, seed: 3));
        const string linear3 = "model=\"counted\",version=\"3\"";
        var before = await _http.GetStringAsync("metrics");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await _http.PostAsync("v2/models/counted/versions/3/infer", Json(good))).StatusCode);
        }
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.PostAsync("v2/models/counted/versions/3/infer", Json("""{"inputs": []}"""))).StatusCode);
        var after = await _http.GetStringAsync("metrics");

        Assert.Equal(3, Value(after, "aimass_nv_inference_request_success", linear3) - Value(before, "aimass_nv_inference_request_success", linear3));
        Assert.Equal(1, Value(after, "aimass_nv_inference_request_failure", linear3 + ",reason=\"BAD_REQUEST\"")
            - Value(before, "aimass_nv_inference_request_failure", linear3 + ",reason=\"BAD_REQUEST\""));
        Assert.Equal(6, Value(after, "aimass_nv_inference_count", linear3) - Value(before, "aimass_nv_inference_count", linear3));
        Assert.Equal(3, Value(after, "aimass_nv_inference_exec_count", linear3) - Value(before, "aimass_nv_inference_exec_count", linear3));
        Assert.True(Value(after, "aimass_nv_inference_compute_infer_duration_us", linear3) > Value(before, "aimass_nv_inference_compute_infer_duration_us", linear3));
        Assert.True(Value(after, "aimass_nv_inference_request_duration_us", linear3) > Value(before, "aimass_nv_inference_request_duration_us", linear3));
        Assert.Contains("# TYPE aimass_nv_inference_request_success counter", after, StringComparison.Ordinal);
        Assert.Contains("# TYPE aimass_nv_inference_compute_infer_duration_us counter", after, StringComparison.Ordinal);
        // Histograms have the buckets their instruments advise.
        Assert.Contains("aimass_nv_inference_overhead_duration_us_bucket{le=\"50\"}", after, StringComparison.Ordinal);
        // The model host's own ASP.NET Core and Kestrel instruments are not exported: its requests are counted above.
        // (The registry is the process's: a control plane in the same test process exports its own.)
        Assert.DoesNotContain("http_route=\"/v2/models/{model}/versions/{version}/infer\"", after, StringComparison.Ordinal);
        await _repository.UnloadAsync("counted");
    }

    [Fact]
    public async Task A_chunked_body_is_read_whole_and_refused_past_the_limit()
    {
        var json = Encoding.UTF8.GetBytes("""{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}""");
        using var small = new StreamContent(new MemoryStream(json));
        small.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v2/models/linear/infer") { Content = small };
        request.Headers.TransferEncodingChunked = true;
        var answer = await _http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);

        using var large = new StreamContent(new MemoryStream(new byte[InferenceApi.MaxRequestBytes + 10]));
        using var tooLarge = new HttpRequestMessage(HttpMethod.Post, "v2/models/linear/infer") { Content = large };
        tooLarge.Headers.TransferEncodingChunked = true;
        var refused = await _http.SendAsync(tooLarge);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, refused.StatusCode);
    }

    [Fact]
    public async Task The_repository_endpoints_index_load_reload_and_unload()
    {
        using var index = JsonDocument.Parse(await (await _http.PostAsync("v2/repository/index", null)).Content.ReadAsStringAsync());
        var moving = index.RootElement.EnumerateArray().Single(e => e.GetProperty("name").GetString() == "moving");
        Assert.Equal("UNAVAILABLE", moving.GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("v2/models/moving/ready")).StatusCode);

        var load = await _http.PostAsync("v2/repository/models/moving/load", null);
        Assert.Equal(HttpStatusCode.OK, load.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("v2/models/moving/versions/7/ready")).StatusCode);
        // Loading again resolves the source anew: version 8 replaces 7.
        await _http.PostAsync("v2/repository/models/moving/load", null);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("v2/models/moving/versions/8/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("v2/models/moving/versions/7/ready")).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await _http.PostAsync("v2/repository/models/moving/unload", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("v2/models/moving/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.PostAsync("v2/repository/models/moving/unload", null)).StatusCode);

        var broken = await _http.PostAsync("v2/repository/models/broken/load", null);
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.Contains("ONNX Runtime cannot load it", await broken.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var after = JsonDocument.Parse(await (await _http.PostAsync("v2/repository/index", null)).Content.ReadAsStringAsync());
        Assert.Contains("ONNX Runtime cannot load it", after.RootElement.EnumerateArray().Single(e => e.GetProperty("name").GetString() == "broken").GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.PostAsync("v2/repository/models/unknown/load", null)).StatusCode);
    }
}
