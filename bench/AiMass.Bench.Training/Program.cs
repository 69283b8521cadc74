// Training benchmarks (issue 5): Fashion-MNIST MLP 784-256-128-10 and CNN (conv 32 -> conv 64 -> fc 128), Adam 1e-3
// with a per-step cosine schedule, batch 64, against PyTorch 1.13 in the same run.
//   dotnet AiMass.Bench.Training.dll mlp|cnn [EPOCHS] [THREADS=2] [DATA=/usr/share/datasets/fashion-mnist]
//       [--no-peer] [--peer-batches N] [--steps N]
// --peer-batches N: PyTorch trains only N batches per epoch (Debian's torch is too slow here for whole CNN epochs);
//   its time per batch is compared. --steps N: only N training steps of the engine (profiling).
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AiMass.Tensors;
using AiMass.Training.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = AiMass.Tensors.Tensor;

var positional = args.Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && (i == 0 || !args[i - 1].StartsWith("--peer-batches", StringComparison.Ordinal) && !args[i - 1].StartsWith("--steps", StringComparison.Ordinal))).ToArray();
var kind = positional.Length > 0 ? positional[0] : "mlp";
var epochs = positional.Length > 1 ? int.Parse(positional[1], CultureInfo.InvariantCulture) : kind == "cnn" ? 10 : 5;
var threads = positional.Length > 2 ? int.Parse(positional[2], CultureInfo.InvariantCulture) : 2;
var root = positional.Length > 3 ? positional[3] : "/usr/share/datasets/fashion-mnist";
var withPeer = !args.Contains("--no-peer");
int? Option(string name) => Array.IndexOf(args, name) is var i and >= 0 ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : null;
var peerBatches = Option("--peer-batches");
var maxSteps = Option("--steps");
if (kind is not ("mlp" or "cnn"))
{
    Console.Error.WriteLine("usage: AiMass.Bench.Training mlp|cnn [EPOCHS] [THREADS] [DATA] [--no-peer] [--peer-batches N] [--steps N]");
    return 2;
}
Parallelism.Threads = threads;

var train = Dataset.FromIdx(Path.Combine(root, "train-images-idx3-ubyte.gz"), Path.Combine(root, "train-labels-idx1-ubyte.gz"));
var test = Idx.Read(Path.Combine(root, "t10k-images-idx3-ubyte.gz"));
var testLabels = Idx.ReadLabels(Path.Combine(root, "t10k-labels-idx1-ubyte.gz"));
const int Batch = 64;
var input = train.Batched(Batch).Shuffled(42);
var perEpoch = (int)input.BatchesPerEpoch!.Value;

var random = new Random(42);
Module model = kind == "mlp"
    ? new Sequential(
        new Normalize(1f / 255, Tensor.Scalar(0.2860f), Tensor.Scalar(0.3530f)), Lambda.Flatten(),
        new Linear(784, 256, random), Lambda.Relu(),
        new Linear(256, 128, random), Lambda.Relu(),
        new Linear(128, 10, random))
    : new Sequential(
        new Normalize(1f / 255, Tensor.Scalar(0.2860f), Tensor.Scalar(0.3530f)),
        new Lambda("to_nchw", x => Ops.Reshape(x, -1, 1, 28, 28)),
        new Conv2d(1, 32, 3, random, padding: 1), Lambda.Relu(), Lambda.MaxPool(2),
        new Conv2d(32, 64, 3, random, padding: 1), Lambda.Relu(), Lambda.MaxPool(2),
        Lambda.Flatten(), new Linear(64 * 7 * 7, 128, random), Lambda.Relu(),
        new Linear(128, 10, random));
var optimizer = new Adam(model.NamedParameters(), 1e-3f);
var schedule = Schedules.Cosine(1e-3f, (long)epochs * perEpoch);
var arena = new TensorArena();
var ours = new List<(double Seconds, int Batches, double Accuracy)>();
long step = 0;
for (var epoch = 0; epoch < epochs && (maxSteps is null || step < maxSteps); epoch++)
{
    var watch = Stopwatch.StartNew();
    model.Train();
    var batches = 0;
    foreach (var batch in input.Batches(epoch))
    {
        using var scope = arena.Enter();
        optimizer.LearningRate = schedule.Rate(step++);
        optimizer.ZeroGrad();
        Losses.CrossEntropy(model.Forward(batch.Features), batch.Labels!.Classes!).Backward();
        optimizer.Step();
        batches++;
        if (step == maxSteps)
        {
            break;
        }
    }
    var seconds = watch.Elapsed.TotalSeconds;
    ours.Add((seconds, batches, Accuracy(model)));
    Console.Error.WriteLine($"engine epoch {epoch + 1}: {seconds:F2} s ({batches} batches, {1000 * seconds / batches:F1} ms each), test accuracy {ours[^1].Accuracy:P2}");
}
var peakBytes = Process.GetCurrentProcess().PeakWorkingSet64;

// The exported model in ONNX Runtime on the same test set.
var onnx = OnnxExport.Export(model, [28, 28]);
using var session = new InferenceSession(onnx);
var ortCorrect = 0;
for (var start = 0; start < test.Count; start += 500)
{
    var n = Math.Min(500, test.Count - start);
    var slice = test.Values.AsSpan(start * 784, n * 784).ToArray();
    using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(slice, [n, 28, 28]))]);
    var scores = results[0].AsEnumerable<float>().ToArray();
    for (var i = 0; i < n; i++)
    {
        ortCorrect += ArgMax(scores.AsSpan(i * 10, 10)) == testLabels[start + i] ? 1 : 0;
    }
}
var ortAccuracy = ortCorrect / (double)test.Count;

// PyTorch in the same run.
var peer = new List<(double Seconds, int Batches, double Accuracy)>();
long peerPeak = 0;
if (withPeer)
{
    var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
    // Debian's torch runs its own OpenMP threads over the pthreads OpenBLAS: one BLAS thread avoids oversubscribing the cores.
    info.Environment["OPENBLAS_NUM_THREADS"] = "1";
    info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "peer.py"));
    foreach (var a in new[] { kind, epochs.ToString(CultureInfo.InvariantCulture), threads.ToString(CultureInfo.InvariantCulture), root })
    {
        info.ArgumentList.Add(a);
    }
    if (peerBatches is { } pb)
    {
        info.ArgumentList.Add(pb.ToString(CultureInfo.InvariantCulture));
    }
    using var python = Process.Start(info)!;
    var errors = python.StandardError.ReadToEndAsync();
    string? line;
    while ((line = python.StandardOutput.ReadLine()) is not null)
    {
        using var doc = JsonDocument.Parse(line);
        var r = doc.RootElement;
        if (r.TryGetProperty("seconds", out var s))
        {
            peer.Add((s.GetDouble(), r.GetProperty("batches").GetInt32(), r.GetProperty("accuracy").GetDouble()));
            Console.Error.WriteLine($"pytorch epoch {peer.Count}: {s.GetDouble():F2} s ({peer[^1].Batches} batches, {1000 * peer[^1].Seconds / peer[^1].Batches:F1} ms each), test accuracy {peer[^1].Accuracy:P2}");
        }
        else
        {
            peerPeak = r.GetProperty("peak_rss_bytes").GetInt64();
        }
    }
    python.WaitForExit();
    if (python.ExitCode != 0)
    {
        Console.Error.WriteLine($"the PyTorch reference failed (python3-torch installed?):\n{await errors}");
    }
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
}

var oursBatch = Median(ours.Select(e => e.Seconds / e.Batches));
var peerBatch = Median(peer.Select(e => e.Seconds / e.Batches));
var title = kind == "mlp" ? "MLP 784-256-128-10" : "CNN conv 32 -> conv 64 -> fc 128";
Console.WriteLine($"## Fashion-MNIST {title}, Adam 1e-3 + cosine, batch 64, {epochs} epochs, {threads} threads (GEMM: {Blas.Backend})");
Console.WriteLine();
Console.WriteLine("| | median epoch s | ms per batch | test accuracy after the last epoch | peak memory |");
Console.WriteLine("|---|---:|---:|---:|---:|");
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| AI Mass engine | {oursBatch * perEpoch:F2} | {1000 * oursBatch:F1} | {ours[^1].Accuracy:P2} | {peakBytes / 1048576.0:F1} MiB |"));
var partial = peerBatches is not null ? " (partial epochs)" : "";
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| PyTorch 1.13 | {peerBatch * perEpoch:F2}{(peerBatches is null ? "" : " (from ms per batch)")} | {1000 * peerBatch:F1} | {(peer.Count > 0 ? peer[^1].Accuracy : double.NaN):P2}{partial} | {peerPeak / 1048576.0:F1} MiB |"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| exported ONNX in ONNX Runtime | - | - | {ortAccuracy:P2} | - |"));
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Time per batch, engine / PyTorch: {oursBatch / peerBatch:F2}. Per epoch (s), engine: {string.Join(" ", ours.Select(e => e.Seconds.ToString("F2", CultureInfo.InvariantCulture)))}; PyTorch: {string.Join(" ", peer.Select(e => e.Seconds.ToString("F2", CultureInfo.InvariantCulture)))}."));
return 0;

double Accuracy(Module m)
{
    m.Eval();
    var correct = 0;
    using var _ = Autograd.NoGrad();
    // Batches of 64, as in training: the arena reuses the training step's arrays instead of pooling a second set.
    for (var start = 0; start < test.Count; start += Batch)
    {
        var n = Math.Min(Batch, test.Count - start);
        using var scope = arena.Enter();
        var logits = m.Forward(Tensor.FromArray(test.Values.AsSpan(start * 784, n * 784).ToArray(), n, 28, 28)).ToArray();
        for (var i = 0; i < n; i++)
        {
            correct += ArgMax(logits.AsSpan(i * 10, 10)) == testLabels[start + i] ? 1 : 0;
        }
    }
    return correct / (double)test.Count;
}

static int ArgMax(ReadOnlySpan<float> values)
{
    var best = 0;
    for (var i = 1; i < values.Length; i++)
    {
        if (values[i] > values[best])
        {
            best = i;
        }
    }
    return best;
}
