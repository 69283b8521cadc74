using System.Text;
using System.Text.Json;
using AiMass.TestSupport;
using Microsoft.Extensions.Time.Testing;

namespace AiMass.Serving.Tests;

public sealed class ServingTests
{
    private static ModelSession Linear() => ModelSession.Load(OnnxModels.Linear(4, 2, seed: 3), "linear", "1");

    private static InferenceRequest Rows(int rows, float start, int priority = 0, TimeSpan? timeout = null) => new()
    {
        Inputs = [new InferTensor("X", InferDataType.Fp32, [rows, 4], Enumerable.Range(0, rows * 4).Select(i => start + i).ToArray())],
        Priority = priority,
        Timeout = timeout,
    };

    [Fact]
    public void Json_requests_with_nested_data_every_datatype_and_binary_tensors_round_trip()
    {
        var json = """
            {"id": "r1", "parameters": {"priority": 2, "timeout": 5000},
             "inputs": [
               {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2.5], [3, -4]]},
               {"name": "b", "shape": [3], "datatype": "INT64", "data": [1, -2, 9007199254740993]},
               {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["héllo", ""]},
               {"name": "d", "shape": [2], "datatype": "BOOL", "data": [true, false]},
               {"name": "e", "shape": [1], "datatype": "FP16", "data": [0.5]},
               {"name": "f", "shape": [2], "datatype": "UINT8", "parameters": {"binary_data_size": 2}}
             ],
             "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}
            """;
        byte[] tail = [7, 255];
        var body = Encoding.UTF8.GetBytes(json).Concat(tail).ToArray();
        var request = OipCodec.ReadRequest(body, Encoding.UTF8.GetByteCount(json));
        Assert.Equal("r1", request.Id);
        Assert.Equal(2, request.Priority);
        Assert.Equal(TimeSpan.FromMilliseconds(5), request.Timeout);
        Assert.Equal([1f, 2.5f, 3f, -4f], request.Inputs[0].AsFloats());
        Assert.Equal([1L, -2L, 9007199254740993L], (long[])request.Inputs[1].Data);
        Assert.Equal(["héllo", ""], (string[])request.Inputs[2].Data);
        Assert.Equal([true, false], (bool[])request.Inputs[3].Data);
        Assert.Equal((Half)0.5f, ((Half[])request.Inputs[4].Data)[0]);
        Assert.Equal(new byte[] { 7, 255 }, (byte[])request.Inputs[5].Data);
        Assert.Equal(new RequestedOutput("y", true), request.Outputs[0]);

        // A response with one JSON and two binary outputs; the binary section follows the header.
        float[] floats = [1.5f, float.NaN];
        int[] ints = [1, -1];
        string[] strings = ["ab"];
        var response = new InferenceResponse("m", "3", "r1",
        [
            (new InferTensor("y", InferDataType.Fp32, [2], floats), false),
            (new InferTensor("z", InferDataType.Int32, [2], ints), true),
            (new InferTensor("s", InferDataType.Bytes, [1], strings), true),
        ]);
        var (bytes, header) = OipCodec.WriteResponse(response);
        Assert.NotNull(header);
        using var doc = JsonDocument.Parse(bytes.AsMemory(0, header!.Value));
        var outputs = doc.RootElement.GetProperty("outputs");
        Assert.Equal("m", doc.RootElement.GetProperty("model_name").GetString());
        Assert.Equal("NaN", outputs[0].GetProperty("data")[1].GetString());
        Assert.Equal(8, outputs[1].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.Equal(6, outputs[2].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.Equal(new byte[] { 1, 0, 0, 0, 255, 255, 255, 255, 2, 0, 0, 0, (byte)'a', (byte)'b' }, bytes[header.Value..]);
    }

    [Fact]
    public void Data_ReadInPlace_AndData_ThatComesBeforeItsDatatype_GiveTheSameTensors()
    {
        // Clients write name, shape, datatype, data (read straight into the array); any order must read the same.
        string[] inputs =
        [
            """{"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [[0.1, 2.5e-3], [3, -4E2]]}""",
            """{"name": "b", "shape": [3], "datatype": "INT64", "data": [1, -2, 9007199254740993]}""",
            """{"name": "c", "shape": [2], "datatype": "BYTES", "data": ["h\u00e9llo", ""]}""",
            """{"name": "d", "shape": [2], "datatype": "BOOL", "data": [true, false]}""",
            """{"name": "e", "shape": [2], "datatype": "FP64", "data": [0.30000000000000004, 1e300]}""",
            """{"name": "f", "shape": [1], "datatype": "FP16", "data": 0.5}""",
            """{"name": "g", "shape": [2], "datatype": "UINT16", "data": [65535, 0]}""",
        ];
        var inPlace = OipCodec.ReadRequest(Encoding.UTF8.GetBytes($"{{\"inputs\": [{string.Join(", ", inputs)}]}}"));
        var reordered = inputs.Select(i =>
        {
            using var doc = JsonDocument.Parse(i);
            var props = doc.RootElement.EnumerateObject().Reverse().Select(p => $"\"{p.Name}\": {p.Value.GetRawText()}");
            return "{" + string.Join(", ", props) + "}";
        });
        var late = OipCodec.ReadRequest(Encoding.UTF8.GetBytes($"{{\"outputs\": [{{\"name\": \"y\"}}], \"inp\\u0075ts\": [{string.Join(", ", reordered)}], \"id\": 7}}"));
        Assert.Equal("7", late.Id);
        Assert.Equal("y", late.Outputs[0].Name);
        OipFastReaderTests.AssertSameInputs(inPlace, late);
        Assert.Equal([0.1f, 2.5e-3f, 3f, -400f], inPlace.Inputs[0].AsFloats());
        Assert.Equal(["héllo", ""], (string[])inPlace.Inputs[2].Data);
        Assert.Equal([0.30000000000000004, 1e300], (double[])inPlace.Inputs[4].Data);
        Assert.Equal((Half)0.5f, ((Half[])inPlace.Inputs[5].Data)[0]);
    }

    [Theory]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP33", "data": [1,2,3,4]}]}""", "input 'X': \"datatype\" must be one of")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1,2,3]}]}""", "input 'X': shape [1, 4] needs 4 values, got 3")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [2], "datatype": "INT32", "data": [1, "two"]}]}""", "input 'X': value 1 (\"two\") is not a valid INT32")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1], "datatype": "UINT8", "data": [256]}]}""", "value 0 (256) is not a valid UINT8")]
    [InlineData("""{"inputs": []}""", "non-empty list of tensors")]
    [InlineData("""{"inputs": [""", "not valid JSON")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1, -4], "datatype": "FP32", "data": []}]}""", "must hold non-negative whole numbers")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1], "datatype": "FP32", "data": [1e39]}]}""", "value 0 (1e39) is not a valid FP32")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [2], "datatype": "INT64", "data": [1, 2.5]}]}""", "value 1 (2.5) is not a valid INT64")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [3], "datatype": "FP32", "data": [1, [2], [{"a": 1}]]}]}""", "value 2 ({\"a\": 1}) is not a valid FP32")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1], "datatype": "BOOL", "data": [null]}]}""", "value 0 (null) is not a valid BOOL")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1], "datatype": "FP32", "data": [1]}]} x""", "not valid JSON")]
    [InlineData("""[1, 2]""", "must be a JSON object")]
    [InlineData("""{"inputs": [{"name": "X", "shape": [1000000000], "datatype": "FP64", "data": [1, 2]}]}""", "needs 1000000000 values, got 2")]
    public void Bad_requests_are_refused_with_a_message_naming_the_input(string json, string expected)
    {
        var error = Assert.Throws<InferenceException>(() => OipCodec.ReadRequest(Encoding.UTF8.GetBytes(json)));
        Assert.Equal(400, error.Status);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_session_runs_and_validates_against_the_model()
    {
        using var session = Linear();
        Assert.True(session.Batchable);
        Assert.Equal(new TensorMetadata("X", InferDataType.Fp32, [-1, 4]).ToString(), session.Inputs[0].ToString());
        Assert.Equal([-1L, 4L], session.Inputs[0].Shape);
        var y = session.Run(Rows(3, 0).Inputs);
        Assert.Equal([3L, 2L], y[0].Shape);

        var wrongName = Assert.Throws<InferenceException>(() => session.Run([new InferTensor("x", InferDataType.Fp32, [1, 4], new float[4])]));
        Assert.Contains("model linear has no input 'x' (inputs: X)", wrongName.Message, StringComparison.Ordinal);
        var wrongType = Assert.Throws<InferenceException>(() => session.Run([new InferTensor("X", InferDataType.Fp64, [1, 4], new double[4])]));
        Assert.Contains("input 'X' of model linear takes FP32, got FP64", wrongType.Message, StringComparison.Ordinal);
        var wrongDim = Assert.Throws<InferenceException>(() => session.Run([new InferTensor("X", InferDataType.Fp32, [1, 5], new float[5])]));
        Assert.Contains("has shape [-1, 4], got [1, 5]: dimension 1 must be 4", wrongDim.Message, StringComparison.Ordinal);
        var wrongRank = Assert.Throws<InferenceException>(() => session.Run([new InferTensor("X", InferDataType.Fp32, [4], new float[4])]));
        Assert.Contains("(rank 2), got [4] (rank 1)", wrongRank.Message, StringComparison.Ordinal);
        var twice = Assert.Throws<InferenceException>(() => session.Run([new InferTensor("X", InferDataType.Fp32, [1, 4], new float[4]), new InferTensor("X", InferDataType.Fp32, [1, 4], new float[4])]));
        Assert.Contains("input 'X' of model linear is given more than once", twice.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<InferenceException>(() => session.Run([]));
        Assert.Contains("model linear needs input 'X' [-1, 4] FP32", missing.Message, StringComparison.Ordinal);
        var unknownOutput = Assert.Throws<InferenceException>(() => session.Run(Rows(1, 0).Inputs, ["Z"]));
        Assert.Contains("has no output 'Z' (outputs: Y)", unknownOutput.Message, StringComparison.Ordinal);
        var bad = Assert.Throws<InferenceException>(() => ModelSession.Load([1, 2, 3], "junk", "1"));
        Assert.Contains("ONNX Runtime cannot load it", bad.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(7)] // int64
    [InlineData(8)] // string
    [InlineData(9)] // bool
    [InlineData(10)] // float16
    public void Models_with_several_inputs_and_outputs_of_other_types_run(int onnxType)
    {
        using var session = ModelSession.Load(OnnxModels.Identity(onnxType), "identity", "1");
        var type = session.Inputs[0].DataType;
        var a = new InferTensor("A", type, [2, 3], Values(type, 6, 1));
        var b = new InferTensor("B", type, [2, 3], Values(type, 6, 2));
        var outputs = session.Run([a, b], ["B_out", "A_out"]);
        Assert.Equal(["B_out", "A_out"], outputs.Select(o => o.Name));
        Assert.Equal(b.Data, outputs[0].Data);
        Assert.Equal(a.Data, outputs[1].Data);
        Assert.Equal([2L, 3L], outputs[1].Shape);
    }

    private static Array Values(InferDataType type, int n, int seed) => type switch
    {
        InferDataType.Int64 => Enumerable.Range(seed, n).Select(i => (long)i * 1_000_000_007L).ToArray(),
        InferDataType.Bytes => Enumerable.Range(seed, n).Select(i => $"s{i}é").ToArray(),
        InferDataType.Bool => Enumerable.Range(seed, n).Select(i => i % 2 == 0).ToArray(),
        InferDataType.Fp16 => Enumerable.Range(seed, n).Select(i => (Half)(i * 0.5f)).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    [Fact]
    public async Task Batched_results_equal_unbatched_ones_and_requests_share_executions()
    {
        using var session = Linear();
        var time = new FakeTimeProvider();
        await using var batcher = new DynamicBatcher(session, new BatchingOptions { MaxBatchSize = 8, MaxQueueDelay = TimeSpan.FromMilliseconds(5) }, time);
        var requests = Enumerable.Range(0, 5).Select(i => Rows(1 + i % 3, i * 10)).ToList();
        var tasks = requests.Select(r => batcher.InferAsync(r)).ToList();
        // Nothing runs before the oldest request's delay is over (or the batch is full).
        await Poll.UntilAsync(() => Task.FromResult(batcher.Waiting == 5), TimeSpan.FromSeconds(10), "the requests to queue");
        Assert.Equal(0, batcher.Batches);
        time.Advance(TimeSpan.FromMilliseconds(5));
        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10));
        for (var i = 0; i < requests.Count; i++)
        {
            var alone = session.Run(requests[i].Inputs);
            Assert.Equal(alone[0].Shape, results[i][0].Shape);
            Assert.Equal(alone[0].AsFloats(), results[i][0].AsFloats());
        }
        // 1+2+3+1+2 = 9 rows: the first batch takes 8 rows' worth of whole requests in order that fit, the rest follow.
        Assert.InRange(batcher.Batches, 2, 3);
        Assert.Equal(5, batcher.Inferences);
    }

    [Fact]
    public async Task A_full_batch_runs_at_once_and_higher_priority_goes_first()
    {
        using var session = Linear();
        var time = new FakeTimeProvider();
        await using var batcher = new DynamicBatcher(session, new BatchingOptions { MaxBatchSize = 2, MaxQueueDelay = TimeSpan.FromSeconds(1) }, time);
        // A request of 2 rows fills the batch: it runs without waiting for the delay.
        var full = await batcher.InferAsync(Rows(2, 0)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([2L, 2L], full[0].Shape);

        Task<IReadOnlyList<InferTensor>> low1, low2, high;
        using (batcher.Hold())
        {
            low1 = batcher.InferAsync(Rows(1, 0));
            low2 = batcher.InferAsync(Rows(1, 100));
            high = batcher.InferAsync(Rows(1, 50, priority: 5));
            Assert.Equal(3, batcher.Waiting);
        }
        // The high-priority request heads the queue and fills the batch with the oldest low one; the other waits.
        await Task.WhenAll(high, low1).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(low2.IsCompleted);
        Assert.Equal(session.Run(Rows(1, 50).Inputs)[0].AsFloats(), (await high)[0].AsFloats());
        time.Advance(TimeSpan.FromSeconds(1));
        await low2.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_full_queue_refuses_with_429_and_a_waiting_request_times_out_with_504()
    {
        using var session = Linear();
        var time = new FakeTimeProvider();
        await using var batcher = new DynamicBatcher(session, new BatchingOptions { MaxBatchSize = 8, MaxQueueDelay = TimeSpan.FromSeconds(10), MaxQueueSize = 2 }, time);
        var timed = batcher.InferAsync(Rows(1, 0, timeout: TimeSpan.FromSeconds(1)));
        var patient = batcher.InferAsync(Rows(1, 0));
        var refused = await Assert.ThrowsAsync<InferenceException>(() => batcher.InferAsync(Rows(1, 0)));
        Assert.Equal(429, refused.Status);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.RetryAfter);

        time.Advance(TimeSpan.FromSeconds(2));
        var timeout = await Assert.ThrowsAsync<InferenceException>(() => timed.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(504, timeout.Status);
        Assert.Contains("waited longer than its timeout", timeout.Message, StringComparison.Ordinal);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Single(await patient.WaitAsync(TimeSpan.FromSeconds(10)));

        var invalid = await Assert.ThrowsAsync<InferenceException>(() => batcher.InferAsync(new InferenceRequest { Inputs = [new InferTensor("X", InferDataType.Fp32, [1, 3], new float[3])] }));
        Assert.Equal(400, invalid.Status);
    }
}
