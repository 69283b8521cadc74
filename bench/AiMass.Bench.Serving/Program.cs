// Serving benchmark (issue 4, first part): an MLP served over Open Inference Protocol v2 REST by the model host, with
// and without dynamic batching, against ONNX Runtime called in a loop in-process on the same model at batch 1.
//   dotnet AiMass.Bench.Serving.dll [SECONDS=10] [CLIENTS=64]
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using AiMass.Server;
using AiMass.Server.Api;
using AiMass.Serving;
using AiMass.Tensors;

var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 10;
var clients = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 64;
var random = new Random(1);
foreach (var (label, hidden) in new[] { ("MLP 784-2048-2048-10 (compute dominates)", new[] { 2048, 2048 }), ("MLP 784-128-10 (protocol dominates)", new[] { 128 }) })
{
    var layers = new List<Module>();
    var width = 784;
    foreach (var h in hidden)
    {
        layers.Add(new Linear(width, h, random));
        layers.Add(Lambda.Relu());
        width = h;
    }
    layers.Add(new Linear(width, 10, random));
    var onnx = OnnxExport.Export(new Sequential([.. layers]), [784]);
    var input = Enumerable.Range(0, 784).Select(i => (float)random.NextDouble()).ToArray();

    // Baseline: ONNX Runtime in-process, batch 1, one thread per session as the host uses, as many sessions as cores.
    var baseline = Baseline(onnx, input, seconds);

    var body = Encoding.UTF8.GetBytes($$"""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [{{string.Join(",", input.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}}]}]}""");
    var batched = await Served(onnx, body, new BatchingOptions { MaxBatchSize = 64, MaxQueueDelay = TimeSpan.FromMicroseconds(500) }, seconds, clients);
    var unbatched = await Served(onnx, body, new BatchingOptions { MaxBatchSize = 1 }, seconds, clients);
    Console.WriteLine($"## {label}, batch-1 requests, {clients} concurrent clients, {seconds:0} s each");
    Console.WriteLine();
    Console.WriteLine("| | requests/s | ratio to baseline | idle round trip p50 | mean batch |");
    Console.WriteLine("|---|---:|---:|---:|---:|");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| ONNX Runtime in-process, batch 1 (baseline) | {baseline:F0} | 1.00 | - | 1 |"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| V2 REST, dynamic batching (max 64, 500 µs) | {batched.Rate:F0} | {batched.Rate / baseline:F2} | {batched.P50:F2} ms | {batched.MeanBatch:F1} |"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| V2 REST, no batching | {unbatched.Rate:F0} | {unbatched.Rate / baseline:F2} | {unbatched.P50:F2} ms | {unbatched.MeanBatch:F1} |"));
    Console.WriteLine();
}
return 0;

static double Baseline(byte[] onnx, float[] input, double seconds)
{
    var threads = Environment.ProcessorCount;
    var counts = new long[threads];
    var stop = Stopwatch.StartNew();
    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
    {
        using var session = ModelSession.Load(onnx, "baseline", "1");
        InferTensor[] request = [new InferTensor("input", InferDataType.Fp32, [1, 784], input)];
        while (stop.Elapsed.TotalSeconds < seconds)
        {
            session.Run(request);
            counts[t]++;
        }
    });
    return counts.Sum() / stop.Elapsed.TotalSeconds;
}

static async Task<(double Rate, double P50, double MeanBatch)> Served(byte[] onnx, byte[] body, BatchingOptions batching, double seconds, int clients)
{
    await using var repository = new ModelRepository();
    var model = await repository.LoadAsync("m", "1", onnx, new ModelConfig { Batching = batching, Session = new ModelSessionOptions { IntraOpThreads = Environment.ProcessorCount } });
    await using var app = InferenceApi.BuildHost(repository, "127.0.0.1", 0);
    await app.StartAsync();
    using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients }) { BaseAddress = app.GetListeningAddress() };
    var serverTimes = new List<double>();
    long done = 0;
    var stop = Stopwatch.StartNew();
    var startBatches = model.Batcher.Batches;
    var startInferences = model.Batcher.Inferences;
    await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
    {
        while (stop.Elapsed.TotalSeconds < seconds)
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await http.PostAsync("v2/models/m/infer", content);
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsByteArrayAsync();
            Interlocked.Increment(ref done);
        }
    }));
    var rate = done / stop.Elapsed.TotalSeconds;
    var meanBatch = (model.Batcher.Inferences - startInferences) / (double)Math.Max(1, model.Batcher.Batches - startBatches);
    // Round trip of single requests on an idle host (client to server and back, queue included), not server-side time.
    for (var i = 0; i < 200; i++)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var watch = Stopwatch.StartNew();
        using var response = await http.PostAsync("v2/models/m/infer", content);
        await response.Content.ReadAsByteArrayAsync();
        serverTimes.Add(watch.Elapsed.TotalMilliseconds);
    }
    serverTimes.Sort();
    await app.StopAsync();
    return (rate, serverTimes[serverTimes.Count / 2], meanBatch);
}
