// Training benchmark (issue 5): the Fashion-MNIST MLP 784-256-128-10, Adam 1e-3, batch 64, against PyTorch in the same run.
//   dotnet AiMass.Bench.Training.dll [EPOCHS=5] [THREADS=2] [DATA=/usr/share/datasets/fashion-mnist] [--no-peer]
// Needs Debian's dataset-fashion-mnist, and python3-torch for the reference.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AiMass.Tensors;
using AiMass.Training.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = AiMass.Tensors.Tensor;

var epochs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
var threads = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 2;
var root = args.Length > 2 ? args[2] : "/usr/share/datasets/fashion-mnist";
var withPeer = !args.Contains("--no-peer");
Parallelism.Threads = threads;

var train = Idx.Read(Path.Combine(root, "train-images-idx3-ubyte.gz"));
var trainLabels = Idx.ReadLabels(Path.Combine(root, "train-labels-idx1-ubyte.gz"));
var test = Idx.Read(Path.Combine(root, "t10k-images-idx3-ubyte.gz"));
var testLabels = Idx.ReadLabels(Path.Combine(root, "t10k-labels-idx1-ubyte.gz"));
const int Features = 784, Batch = 64;

var random = new Random(42);
var model = new Sequential(
    new Normalize(1f / 255, Tensor.Scalar(0.2860f), Tensor.Scalar(0.3530f)),
    new Linear(Features, 256, random), Lambda.Relu(),
    new Linear(256, 128, random), Lambda.Relu(),
    new Linear(128, 10, random));
var optimizer = new Adam(model.NamedParameters(), 1e-3f);
var order = Enumerable.Range(0, train.Count).ToArray();
var ours = new List<(double Seconds, double Accuracy)>();
for (var epoch = 0; epoch < epochs; epoch++)
{
    var watch = Stopwatch.StartNew();
    model.Train();
    random.Shuffle(order);
    for (var start = 0; start < order.Length; start += Batch)
    {
        var n = Math.Min(Batch, order.Length - start);
        var x = new float[n * Features];
        var y = new int[n];
        for (var i = 0; i < n; i++)
        {
            Array.Copy(train.Values, order[start + i] * Features, x, i * Features, Features);
            y[i] = trainLabels[order[start + i]];
        }
        optimizer.ZeroGrad();
        Losses.CrossEntropy(model.Forward(Tensor.FromArray(x, n, Features)), y).Backward();
        optimizer.Step();
    }
    var seconds = watch.Elapsed.TotalSeconds;
    ours.Add((seconds, Accuracy(model)));
    Console.Error.WriteLine($"engine epoch {epoch + 1}: {seconds:F2} s, test accuracy {ours[^1].Accuracy:P2}");
}
var peakBytes = Process.GetCurrentProcess().PeakWorkingSet64;

// The exported model in ONNX Runtime on the same test set.
var onnx = OnnxExport.Export(model, [Features]);
using var session = new InferenceSession(onnx);
var ortCorrect = 0;
for (var start = 0; start < test.Count; start += 1000)
{
    var n = Math.Min(1000, test.Count - start);
    var slice = test.Values.AsSpan(start * Features, n * Features).ToArray();
    using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(slice, [n, Features]))]);
    var scores = results[0].AsEnumerable<float>().ToArray();
    for (var i = 0; i < n; i++)
    {
        ortCorrect += ArgMax(scores.AsSpan(i * 10, 10)) == testLabels[start + i] ? 1 : 0;
    }
}
var ortAccuracy = ortCorrect / (double)test.Count;

// PyTorch in the same run.
var peer = new List<(double Seconds, double Accuracy)>();
long peerPeak = 0;
var script = Path.Combine(AppContext.BaseDirectory, "peer_mlp.py");
var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
// Debian's torch runs its own OpenMP threads over the pthreads OpenBLAS: one BLAS thread avoids oversubscribing the cores.
info.Environment["OPENBLAS_NUM_THREADS"] = "1";
foreach (var a in new[] { script, epochs.ToString(CultureInfo.InvariantCulture), threads.ToString(CultureInfo.InvariantCulture), root })
{
    info.ArgumentList.Add(a);
}
if (withPeer)
{
    using var python = Process.Start(info)!;
    string? line;
    while ((line = python.StandardOutput.ReadLine()) is not null)
    {
        using var doc = JsonDocument.Parse(line);
        if (doc.RootElement.TryGetProperty("seconds", out var s))
        {
            peer.Add((s.GetDouble(), doc.RootElement.GetProperty("accuracy").GetDouble()));
            Console.Error.WriteLine($"pytorch epoch {peer.Count}: {s.GetDouble():F2} s, test accuracy {peer[^1].Accuracy:P2}");
        }
        else
        {
            peerPeak = doc.RootElement.GetProperty("peak_rss_bytes").GetInt64();
        }
    }
    var err = python.StandardError.ReadToEnd();
    python.WaitForExit();
    if (python.ExitCode != 0)
    {
        Console.Error.WriteLine($"the PyTorch reference failed (python3-torch installed?):\n{err}");
    }
}

double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
}

var oursEpoch = Median(ours.Select(e => e.Seconds));
var peerEpoch = Median(peer.Select(e => e.Seconds));
Console.WriteLine($"## Fashion-MNIST MLP 784-256-128-10, Adam 1e-3, batch 64, {epochs} epochs, {threads} threads (GEMM: {Blas.Backend})");
Console.WriteLine();
Console.WriteLine("| | median epoch s | test accuracy after the last epoch | peak memory |");
Console.WriteLine("|---|---:|---:|---:|");
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| AI Mass engine | {oursEpoch:F2} | {ours[^1].Accuracy:P2} | {peakBytes / 1048576.0:F1} MiB |"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| PyTorch 1.13 | {peerEpoch:F2} | {(peer.Count > 0 ? peer[^1].Accuracy : double.NaN):P2} | {peerPeak / 1048576.0:F1} MiB |"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| exported ONNX in ONNX Runtime | - | {ortAccuracy:P2} | - |"));
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Epoch time ratio (engine / PyTorch): {oursEpoch / peerEpoch:F2}. Per epoch, engine: {string.Join(" ", ours.Select(e => e.Seconds.ToString("F2", CultureInfo.InvariantCulture)))}; PyTorch: {string.Join(" ", peer.Select(e => e.Seconds.ToString("F2", CultureInfo.InvariantCulture)))}."));
return 0;

double Accuracy(Module m)
{
    m.Eval();
    var correct = 0;
    using var _ = Autograd.NoGrad();
    // Batches of 500 images (1.5 MB) stay under the 2 MB large-object threshold the training process sets.
    for (var start = 0; start < test.Count; start += 500)
    {
        var n = Math.Min(500, test.Count - start);
        var logits = m.Forward(Tensor.FromArray(test.Values.AsSpan(start * Features, n * Features).ToArray(), n, Features)).ToArray();
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
