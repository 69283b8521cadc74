// Serving benchmark (issue 4). Three parts, all in one run:
//  1. Throughput: MLPs served over Open Inference Protocol v2 REST by the model host, with and without dynamic
//     batching, JSON and binary tensors, 64 concurrent clients sending batch-1 requests, against ONNX Runtime called in
//     a loop in-process on the same model at batch 1; plus the server-side added latency (queue and execution excluded)
//     read from the host's Server-Timing header. The clients are a lean HTTP/1.1 load generator (RawHttpLoad: one
//     thread and one epoll set for all connections, as wrk), and for the unbatched rows also HttpClient, to show what a
//     heavier client takes from the server.
//  2. Router: round trip through the control plane's router ('aimass up', started as a process of its own and warmed
//     up until it stops JIT-compiling) to a deployment's replica (an 'aimass serve' process) against the same replica
//     called directly.
//  3. A 100 MB model: load to ready, and resident memory before, loaded and after unload.
//   dotnet AiMass.Bench.Serving.dll [SLICES=10] [CLIENTS=64] [--aimass PATH/aimass.dll] [--only throughput|codec|router|memory] [--rounds N] [--match TEXT]
//   (--match: only the throughput rows whose model and row names contain TEXT, e.g. "2048-10 (compute dominates) | V2 REST binary tensors, no batching (")
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using AiMass.Bench.Serving;
using AiMass.Deployments;
using AiMass.Registry;
using AiMass.Server;
using AiMass.Server.Api;
using AiMass.Serving;
using AiMass.Tensors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

var positional = args.Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && (i == 0 || !args[i - 1].StartsWith("--", StringComparison.Ordinal))).ToList();
// Throughput: one-second slices of each configuration, each between two slices of the baseline.
var slices = positional.Count > 0 ? int.Parse(positional[0], CultureInfo.InvariantCulture) : 10;
var clients = positional.Count > 1 ? int.Parse(positional[1], CultureInfo.InvariantCulture) : 64;
string? Flag(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
var only = Flag("--only");
// The configurations run this many times in alternating rounds; each row gives the median of all its slices' ratios.
var rounds = int.Parse(Flag("--rounds") ?? "1", CultureInfo.InvariantCulture);
var match = Flag("--match");
var aimass = Flag("--aimass") ?? Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../src/AiMass.Cli/bin/Release/net10.0/aimass.dll"));
var random = new Random(1);
// The model host here completes socket operations inline, as 'aimass serve' does; the control plane does not, and the
// router part's client should not either, so when every part runs, that part runs in a child process with the runtime's
// default (its 'aimass up' inherits that environment).
if (only != "router")
{
    InferenceApi.PreferInlineSocketCompletions();
}

// Memory first: a fresh process, before the other parts leave garbage behind.
if (only is null or "memory")
{
    await MemoryAsync(random);
}

if (only is null or "throughput")
{
    var warmedUp = false;
    foreach (var (label, hidden) in new[] { ("MLP 784-2048-2048-10 (compute dominates)", new[] { 2048, 2048 }), ("MLP 784-128-10 (protocol dominates)", new[] { 128 }) })
    {
        var onnx = Mlp(hidden, random);
        var input = Enumerable.Range(0, 784).Select(_ => (float)random.NextDouble()).ToArray();
        var json = new Body(Encoding.UTF8.GetBytes($$"""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [{{string.Join(",", input.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}}]}]}"""), null, input);
        var header = Encoding.UTF8.GetBytes("""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}], "parameters": {"binary_data_output": true}}""");
        var binary = new Body([.. header, .. MemoryMarshal.AsBytes(input.AsSpan()).ToArray()], header.Length, input);
        var cores = Environment.ProcessorCount;
        var batching = new BatchingOptions { MaxBatchSize = 64, MaxQueueDelay = TimeSpan.FromMicroseconds(2000), Instances = cores };
        var none = new BatchingOptions { MaxBatchSize = 1, Instances = cores };
        var all = new List<(string Name, Body Body, BatchingOptions Batching, int Threads, bool Raw)>
        {
            ($"V2 REST JSON, dynamic batching (max 64, 2 ms, {cores} instances x 1 thread)", json, batching, 1, true),
            ($"V2 REST binary tensors, dynamic batching (max 64, 2 ms, {cores} instances x 1 thread)", binary, batching, 1, true),
            ($"V2 REST JSON, no batching ({cores} instances x 1 thread)", json, none, 1, true),
            ($"V2 REST binary tensors, no batching ({cores} instances x 1 thread)", binary, none, 1, true),
            ($"V2 REST JSON, no batching, HttpClient as the load generator", json, none, 1, false),
            ($"V2 REST binary tensors, no batching, HttpClient as the load generator", binary, none, 1, false),
        };
        if (hidden.Length > 1)
        {
            // Where the model dominates, one instance running each batch on all the cores: larger batches, each run split
            // between the cores by ONNX Runtime (the throughput configuration).
            all.Insert(2, ($"V2 REST JSON, dynamic batching (max 64, 2 ms, 1 instance x {cores} threads)", json, batching with { Instances = 1 }, cores, true));
            all.Insert(3, ($"V2 REST binary tensors, dynamic batching (max 64, 2 ms, 1 instance x {cores} threads)", binary, batching with { Instances = 1 }, cores, true));
        }
        var configurations = all.Where(c => match is null || $"{label} | {c.Name}".Contains(match, StringComparison.Ordinal)).ToList();
        if (configurations.Count == 0)
        {
            continue;
        }
        if (!warmedUp)
        {
            // The first host in a process runs its code before the JIT has optimised it: warm the whole path up, untimed.
            warmedUp = true;
            await Served(onnx, json, batching, 1, 2, clients, true);
            await Served(onnx, binary, none, 1, 2, clients, true);
            await Served(onnx, binary, none, 1, 2, clients, false);
        }
        // Each configuration's result from every round.
        var results = configurations.Select(_ => new List<Result>()).ToList();
        for (var round = 0; round < rounds; round++)
        {
            for (var i = 0; i < configurations.Count; i++)
            {
                var (_, body, options, threads, raw) = configurations[i];
                results[i].Add(await Served(onnx, body, options, threads, slices, clients, raw));
            }
        }
        var baselineRates = results.SelectMany(r => r).SelectMany(r => r.Baselines).ToList();
        Console.WriteLine($"## {label}, batch-1 requests, {clients} concurrent clients, {slices} one-second slices of each, {rounds} round(s)");
        Console.WriteLine();
        Console.WriteLine("| | requests/s (median of slices) | ratio to the baseline slices around it: median (quartiles) | server-added p50 (queue, execution excluded) | mean batch | a model run's time, served / baseline | warm-up slices (per round); JIT per measured slice |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| ONNX Runtime in-process, batch 1, {cores} threads, each run on its caller's thread (baseline, the host's own session or a one-thread one; {baselineRates.Count} slices, {Quantile(baselineRates, 0.25):F0}-{Quantile(baselineRates, 0.75):F0} between quartiles) | {Median(baselineRates):F0} | 1.00 | - | 1 | 1.00 | - |"));
        for (var i = 0; i < configurations.Count; i++)
        {
            var runs = results[i];
            var ratios = runs.SelectMany(r => r.Ratios).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {configurations[i].Name} | {Median(runs.SelectMany(r => r.Rates).ToList()):F0} | {Median(ratios):F2} ({Quantile(ratios, 0.25):F2}-{Quantile(ratios, 0.75):F2}) | {Median(runs.SelectMany(r => r.AddedUs).ToList()):F0} µs | {runs.Average(r => r.MeanBatch):F1} | {(runs.Average(r => r.MeanBatch) < 1.01 ? runs.Average(r => r.RunRatio).ToString("F2", CultureInfo.InvariantCulture) : "-")} | {string.Join("/", runs.Select(r => r.WarmSlices))}; {runs.Average(r => r.JitPerSlice.TotalMilliseconds):F0} ms |"));
        }
        Console.WriteLine();
    }
}

if (only is null or "codec")
{
    // What one request costs the codec alone: parsing a batch-1 request of 784 floats, writing a 10-float answer.
    var input = Enumerable.Range(0, 784).Select(_ => (float)random.NextDouble()).ToArray();
    var json = Encoding.UTF8.GetBytes($$"""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [{{string.Join(",", input.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}}]}]}""");
    var header = Encoding.UTF8.GetBytes("""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}]}""");
    byte[] binary = [.. header, .. MemoryMarshal.AsBytes(input.AsSpan()).ToArray()];
    var answer = new InferenceResponse("m", "1", null, [(new InferTensor("output", InferDataType.Fp32, [1, 10], new float[10]), false)]);
    static float[] DomParse(byte[] body)
    {
        using var doc = JsonDocument.Parse(body);
        var data = doc.RootElement.GetProperty("inputs")[0].GetProperty("data");
        var values = new float[data.GetArrayLength()];
        var i = 0;
        foreach (var v in data.EnumerateArray())
        {
            values[i++] = v.TryGetSingle(out var f) ? f : throw new InvalidDataException("not a float");
        }
        return values;
    }
    static double PerCall(Action action)
    {
        for (var i = 0; i < 2000; i++)
        {
            action();
        }
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 20000; i++)
        {
            action();
        }
        return watch.Elapsed.TotalMicroseconds / 20000;
    }
    Console.WriteLine("## Codec, per call (784-float batch-1 request, 10-float answer)");
    Console.WriteLine();
    Console.WriteLine("| step | µs |");
    Console.WriteLine("|---|---:|");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| parse JSON request | {PerCall(() => OipCodec.ReadRequest(json)):F1} |"));
    // For comparison, in the same run: the same request through System.Text.Json's document and its float parser (what
    // the codec did before it read data in place).
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| reference: JsonDocument + JsonElement.TryGetSingle | {PerCall(() => DomParse(json)):F1} |"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| parse binary request | {PerCall(() => OipCodec.ReadRequest(binary, header.Length)):F1} |"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| write JSON answer | {PerCall(() => OipCodec.WriteResponse(answer)):F1} |"));
    Console.WriteLine();
}

if (only is "router")
{
    await RouterAsync(aimass, random);
}
else if (only is null)
{
    var router = new ProcessStartInfo(Environment.ProcessPath!) { ArgumentList = { typeof(RawHttpLoad).Assembly.Location, "--only", "router", "--aimass", aimass } };
    router.Environment.Remove(InferenceApi.InlineSocketCompletionsVariable);
    using var child = Process.Start(router)!;
    await child.WaitForExitAsync();
    if (child.ExitCode != 0)
    {
        throw new InvalidOperationException($"the router part failed (exit code {child.ExitCode})");
    }
}

return 0;

static byte[] Mlp(int[] hidden, Random random)
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
    return OnnxExport.Export(new Sequential([.. layers]), [784]);
}

// ONNX Runtime called in a loop in-process: the session run by as many threads as there are cores, as the model host
// runs it with as many instances, for one slice.
static double Baseline(ModelSession session, float[] input, TimeSpan slice)
{
    var threads = Environment.ProcessorCount;
    var counts = new long[threads];
    var stop = Stopwatch.StartNew();
    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
    {
        InferTensor[] request = [new InferTensor("input", InferDataType.Fp32, [1, 784], input)];
        while (stop.Elapsed < slice)
        {
            session.Run(request);
            counts[t]++;
        }
    });
    return counts.Sum() / stop.Elapsed.TotalSeconds;
}

static HttpRequestMessage Post(string path, Body body)
{
    var content = new ByteArrayContent(body.Bytes);
    content.Headers.ContentType = new MediaTypeHeaderValue(body.HeaderLength is null ? "application/json" : "application/octet-stream");
    var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
    if (body.HeaderLength is { } h)
    {
        request.Headers.Add("Inference-Header-Content-Length", h.ToString(CultureInfo.InvariantCulture));
    }
    return request;
}

// One configuration: the model host on port 0 loaded with the model; then, alternating, one-second slices of the
// baseline on the host's own session (same weights, same process; a one-thread session of the same model when the host
// runs its instances on several threads) and of the clients' load on the host, baseline first
// and last, so that each served slice is compared with the baseline slices just before and after it: this VM's speed
// drifts by tens of percent within a minute, much less within two seconds.
static async Task<Result> Served(byte[] onnx, Body body, BatchingOptions batching, int threads, int slices, int clients, bool raw)
{
    await using var repository = new ModelRepository();
    var model = await repository.LoadAsync("m", "1", onnx, new ModelConfig { Batching = batching, Session = new ModelSessionOptions { IntraOpThreads = threads } });
    // The baseline calls the model from one thread per core, each run on its caller's thread alone.
    using var ownBaseline = threads == 1 ? null : ModelSession.Load(onnx, "baseline", "1", new ModelSessionOptions { IntraOpThreads = 1 });
    var baselineSession = ownBaseline ?? model.Session;
    await using var app = InferenceApi.BuildHost(repository, "127.0.0.1", 0);
    await app.StartAsync();
    using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients }) { BaseAddress = app.GetListeningAddress() };
    // Warm-up through the whole path.
    for (var i = 0; i < 50; i++)
    {
        using var warm = await http.SendAsync(Post("v2/models/m/infer", body));
        warm.EnsureSuccessStatusCode();
    }
    using var load = raw ? RawHttpLoad.Connect(app.GetListeningAddress(), "v2/models/m/infer", body.Bytes, body.HeaderLength, clients) : null;
    async Task<long> Slice(TimeSpan length)
    {
        if (load is not null)
        {
            return await load.RunAsync(length);
        }
        long done = 0;
        var stop = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            while (stop.Elapsed < length)
            {
                using var response = await http.SendAsync(Post("v2/models/m/infer", body));
                response.EnsureSuccessStatusCode();
                await response.Content.ReadAsByteArrayAsync();
                Interlocked.Increment(ref done);
            }
        }));
        return done;
    }
    var slice = TimeSpan.FromSeconds(1);
    // Warm up until the JIT has settled (under 2 % of a slice spent compiling, at most 15 slices): a new host brings new
    // code paths, and the JIT's thread would otherwise take its share of the two cores from the served slices alone.
    var warmSlices = 0;
    TimeSpan jitBefore;
    do
    {
        jitBefore = System.Runtime.JitInfo.GetCompilationTime();
        await Slice(slice);
        warmSlices++;
    }
    while (System.Runtime.JitInfo.GetCompilationTime() - jitBefore > slice * 0.02 && warmSlices < 15);
    var jitStart = System.Runtime.JitInfo.GetCompilationTime();
    var baselines = new List<double> { Baseline(baselineSession, body.Input, slice) };
    var rates = new List<double>();
    var ratios = new List<double>();
    var startBatches = model.Batcher.Batches;
    var startInferences = model.Batcher.Inferences;
    var startCompute = model.Batcher.ComputeTime;
    for (var i = 0; i < slices; i++)
    {
        var watch = Stopwatch.StartNew();
        var done = await Slice(slice);
        rates.Add(done / watch.Elapsed.TotalSeconds);
        baselines.Add(Baseline(baselineSession, body.Input, slice));
        ratios.Add(rates[^1] / ((baselines[^2] + baselines[^1]) / 2));
    }
    var jit = System.Runtime.JitInfo.GetCompilationTime() - jitStart;
    var meanBatch = (model.Batcher.Inferences - startInferences) / (double)Math.Max(1, model.Batcher.Batches - startBatches);
    // A model run's wall time while serving against one in the baseline (threads / rate): over 1 when the run shares
    // the cores with reading and answering requests (and with the load generator). Shown for unbatched rows only.
    var runServed = (model.Batcher.ComputeTime - startCompute) / Math.Max(1, model.Batcher.Batches - startBatches);
    var runRatio = runServed.TotalSeconds / (Environment.ProcessorCount / Median(baselines));
    // Server-side added time of single requests on an idle host: total − queue − compute from Server-Timing.
    var added = new List<double>();
    for (var i = 0; i < 500; i++)
    {
        using var response = await http.SendAsync(Post("v2/models/m/infer", body));
        await response.Content.ReadAsByteArrayAsync();
        var timing = ParseTiming(response.Headers.GetValues("Server-Timing").Single());
        added.Add((timing["total"] - timing["queue"] - timing["compute"]) * 1000);
    }
    await app.StopAsync();
    return new Result(rates, ratios, baselines, added, meanBatch, warmSlices, jit / slices, runRatio);
}

static Dictionary<string, double> ParseTiming(string header) =>
    header.Split(',').Select(p => p.Trim().Split(";dur=")).ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture));

static double Median(IReadOnlyList<double> values) => Quantile(values, 0.5);

static double Quantile(IReadOnlyList<double> values, double q)
{
    var sorted = values.Order().ToList();
    return sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(q * sorted.Count))];
}

// A value on the control plane's /metrics: the first sample of that name, whatever its labels.
static async Task<double> MetricAsync(HttpClient http, Uri controlPlane, string name)
{
    var line = (await http.GetStringAsync($"{controlPlane}metrics")).Split('\n')
        .First(l => l.StartsWith(name, StringComparison.Ordinal) && l.Length > name.Length && l[name.Length] is ' ' or '{');
    return double.Parse(line.Split(' ')[^1], CultureInfo.InvariantCulture);
}

static async Task RouterAsync(string aimass, Random random)
{
    if (!File.Exists(aimass))
    {
        Console.WriteLine($"## Router: skipped, {aimass} does not exist (build src/AiMass.Cli in Release or pass --aimass)");
        return;
    }
    var data = Directory.CreateTempSubdirectory("aimass-bench-");
    // The control plane as users run it: 'aimass up', a process of its own (the client here is another process).
    var up = new ProcessStartInfo("dotnet")
    {
        ArgumentList = { aimass, "up", "--data-dir", data.FullName, "--port", "0" },
        RedirectStandardOutput = true,
        RedirectStandardError = true,
    };
    up.Environment["AIMASS__Logging__LogLevel__Default"] = "Warning";
    using var controlPlane = new Process { StartInfo = up, EnableRaisingEvents = true };
    var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
    controlPlane.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"'aimass up' exited with code {controlPlane.ExitCode} before listening"));
    controlPlane.OutputDataReceived += (_, e) =>
    {
        if (e.Data is { } line && line.IndexOf(" listening on ", StringComparison.Ordinal) is var at and >= 0)
        {
            listening.TrySetResult(new Uri(line[(at + " listening on ".Length)..].Trim() + "/"));
        }
    };
    controlPlane.ErrorDataReceived += (_, e) =>
    {
        if (e.Data is { } line)
        {
            Console.Error.WriteLine($"aimass up: {line}");
        }
    };
    controlPlane.Start();
    controlPlane.BeginOutputReadLine();
    controlPlane.BeginErrorReadLine();
    Uri address;
    try
    {
        address = await listening.Task.WaitAsync(TimeSpan.FromMinutes(1));
    }
    catch
    {
        controlPlane.Kill(entireProcessTree: true);
        throw;
    }
    using var client = new AiMass.Client.AiMassClient(address, "bench");
    try
    {
        var onnx = Mlp([128], random);
        await client.RegisterVersionAsync("bench", new MemoryStream(onnx), new RegisterVersionRequest());
        await client.CreateDeploymentAsync(new DeploymentSpec { Name = "bench", Model = "bench@1", Cpu = "500m", Memory = "256Mi", MaxBatchSize = 1 });
        DeploymentInfo d;
        var deadline = Stopwatch.StartNew();
        while ((d = await client.GetDeploymentAsync("bench")).State != "ready")
        {
            if (deadline.Elapsed > TimeSpan.FromMinutes(2))
            {
                throw new TimeoutException("the deployment did not become ready in 2 minutes");
            }
            await Task.Delay(100);
        }
        var replica = d.Tracks[0].Replicas[0].Address!;
        var input = Enumerable.Range(0, 784).Select(_ => (float)random.NextDouble()).ToArray();
        var header = Encoding.UTF8.GetBytes("""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}], "parameters": {"binary_data_output": true}}""");
        var body = new Body([.. header, .. MemoryMarshal.AsBytes(input.AsSpan()).ToArray()], header.Length, input);
        using var http = new HttpClient();
        async Task<double> Time(string url)
        {
            var watch = Stopwatch.StartNew();
            using var response = await http.SendAsync(Post(url, body));
            await response.Content.ReadAsByteArrayAsync();
            response.EnsureSuccessStatusCode();
            return watch.Elapsed.TotalMicroseconds;
        }
        // A bare HTTP/1.1 hop on this machine: Kestrel answering 200 to the same POST without doing anything.
        var bare = WebApplication.CreateSlimBuilder();
        bare.Logging.ClearProviders();
        bare.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        await using var nullHost = bare.Build();
        nullHost.MapPost("/null", async (HttpContext c) =>
        {
            await c.Request.Body.CopyToAsync(Stream.Null);
            return Results.Bytes(new byte[64], "application/octet-stream");
        });
        await nullHost.StartAsync();
        var directUrl = $"{replica}/v2/models/bench/infer";
        var routedUrl = $"{address}v2/models/bench/infer";
        var nullUrl = $"{nullHost.GetListeningAddress()}null";
        // Warm-up until the control plane stops compiling. A control plane that has run a while routes on tier-1 code;
        // one less than a minute old is still JIT-compiling in the background (26,000 methods in all, 4,000 of them
        // again at tier 1), which takes half a core and, measured in that time, doubled the router's overhead.
        var warmup = Stopwatch.StartNew();
        var warmTrips = 0;
        // How many methods the control plane's JIT has compiled so far (the runtime's meter).
        Task<double> CompiledMethodsAsync() => MetricAsync(http, address, "system_runtime_dotnet_jit_compiled_methods");
        var compiled = await CompiledMethodsAsync();
        for (var quiet = 0; quiet < 2 && warmup.Elapsed < TimeSpan.FromMinutes(3);)
        {
            for (var i = 0; i < 300; i++, warmTrips++)
            {
                await Time(directUrl);
                await Time(routedUrl);
                await Time(nullUrl);
            }
            var now = await CompiledMethodsAsync();
            quiet = now - compiled < 20 ? quiet + 1 : 0;
            compiled = now;
        }
        // Then alternate request by request so that the machine's noise hits the three alike.
        // The router's own time before forwarding, over the timed requests only.
        Task<double> RoutingAsync(string sample) => MetricAsync(http, address, $"aimass_deployment_routing_duration_us_{sample}");
        var (routingSum, routingCount) = (await RoutingAsync("sum"), await RoutingAsync("count"));
        var direct = new List<double>();
        var routed = new List<double>();
        var hop = new List<double>();
        for (var i = 0; i < 6000; i++)
        {
            direct.Add(await Time(directUrl));
            routed.Add(await Time(routedUrl));
            hop.Add(await Time(nullUrl));
        }
        await nullHost.StopAsync();
        var (pd, pr) = (Median(direct), Median(routed));
        Console.WriteLine("## Router: one client, sequential batch-1 binary requests (MLP 784-128-10), 6,000 each alternating, medians");
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"The control plane ('aimass up', a process of its own) warmed up for {warmup.Elapsed.TotalSeconds:F0} s ({warmTrips:N0} round trips each way) until it compiled fewer than 20 methods in 300."));
        Console.WriteLine();
        Console.WriteLine("| path | round trip p50 |");
        Console.WriteLine("|---|---:|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| client → replica | {pd:F0} µs |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| client → control plane router → replica | {pr:F0} µs |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| router overhead (difference of medians) | {pr - pd:F0} µs |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| for scale: a bare HTTP/1.1 hop on this machine (Kestrel answering 200, same body) | {Median(hop):F0} µs |"));
        var routing = (await RoutingAsync("sum") - routingSum) / (await RoutingAsync("count") - routingCount);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| of which before forwarding (reading the body, choosing a replica), mean | {routing:F0} µs |"));
        Console.WriteLine();
    }
    finally
    {
        await client.DeleteDeploymentAsync("bench");
        var deadline = Stopwatch.StartNew();
        while ((await client.ListDeploymentsAsync()).Items.Count > 0 && deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }
        // SIGTERM: the control plane stops cleanly.
        using (var term = Process.Start("kill", ["-TERM", controlPlane.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await term.WaitForExitAsync();
        }
        if (!controlPlane.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            controlPlane.Kill(entireProcessTree: true);
        }
        data.Delete(recursive: true);
    }
}

static async Task MemoryAsync(Random random)
{
    // About 100 MB of weights: 784 -> 5120 -> 4096 -> 10 (25.1 M floats).
    var onnx = Mlp([5120, 4096], random);
    await using var repository = new ModelRepository();
    // ONNX Runtime's process-wide environment (thread pools, allocators) comes with the first session: create it first.
    await repository.LoadAsync("tiny", "1", Mlp([16], random));
    var before = Rss();
    var watch = Stopwatch.StartNew();
    await repository.LoadAsync("big", "1", onnx);
    var load = watch.Elapsed;
    var loaded = Rss();
    await repository.UnloadAsync("big");
    var after = Rss();
    var returned = (loaded - after) / (double)(loaded - before);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"## A {onnx.Length / 1e6:F0} MB model (MLP 784-5120-4096-10)"));
    Console.WriteLine();
    Console.WriteLine("| load to ready (session + warm-up) | RSS before | loaded | after unload | memory returned |");
    Console.WriteLine("|---:|---:|---:|---:|---:|");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {load.TotalSeconds:F2} s | {before / 1048576.0:F0} MiB | {loaded / 1048576.0:F0} MiB | {after / 1048576.0:F0} MiB | {returned:P0} |"));
    Console.WriteLine();
}

static long Rss()
{
    GC.Collect();
    GC.WaitForPendingFinalizers();
    return long.Parse(File.ReadAllText("/proc/self/statm").Split(' ')[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
}

internal sealed record Body(byte[] Bytes, int? HeaderLength, float[] Input);

internal sealed record Result(List<double> Rates, List<double> Ratios, List<double> Baselines, List<double> AddedUs, double MeanBatch, int WarmSlices, TimeSpan JitPerSlice, double RunRatio);
