using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AiMass.Tensors.Tests;

/// <summary>Exported models pass onnx.checker (full check) and ONNX Runtime's outputs match the engine's to 1e-4.</summary>
public sealed class OnnxExportTests
{
    private static void AssertParity(Module model, int[] sampleShape, int seed, OnnxExportOptions? options = null)
    {
        options ??= new OnnxExportOptions();
        var bytes = OnnxExport.Export(model, sampleShape, options);
        if (options.Opset <= 17)
        {
            Check(bytes); // Debian 12's onnx 1.12 validates up to opset 17
        }
        var x = Tensor.RandomNormal(new Random(seed), 0, 1, [5, .. sampleShape]); // batch 5: the traced batch was 3
        model.Eval();
        float[] expected;
        using (Autograd.NoGrad())
        {
            expected = model.Forward(x).ToArray();
        }
        using var session = new InferenceSession(bytes);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(options.InputName, new DenseTensor<float>(x.ToArray(), [5, .. sampleShape]))]);
        var actual = results.Single(r => r.Name == options.OutputName).AsEnumerable<float>().ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4, $"output {i}: engine {expected[i]}, ONNX Runtime {actual[i]}");
        }
    }

    private static void Check(byte[] model)
    {
        var path = Path.Combine(Path.GetTempPath(), $"aimass-export-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, model);
        try
        {
            var info = new ProcessStartInfo("/usr/bin/python3")
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            foreach (var arg in new[] { "-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", path })
            {
                info.ArgumentList.Add(arg);
            }
            using var process = Process.Start(info)!;
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"onnx.checker refused the model (is python3-onnx installed? ./test.sh installs it):\n{stderr}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Mlp_WithPreprocessing_EveryActivation_AndDropout()
    {
        var r = new Random(1);
        var model = new Sequential(
            new Normalize(1f / 255, Tensor.Scalar(0.5f), Tensor.Scalar(0.25f)),
            new Linear(6, 8, r), Lambda.Relu(), new Dropout(0.5f, new Random(2)),
            new Linear(8, 8, r), Lambda.Sigmoid(),
            new Linear(8, 8, r), Lambda.Tanh(),
            new Linear(8, 8, r), Lambda.LeakyRelu(0.2f),
            new Linear(8, 8, r), Lambda.Gelu(),
            new Linear(8, 4, r, init: WeightInit.Xavier), new Lambda("softmax", x => Ops.Softmax(x)));
        AssertParity(model, [6], 1);
    }

    [Fact]
    public void Cnn_ConvBatchNormPoolingFlatten()
    {
        var r = new Random(3);
        var model = new Sequential(
            new Conv2d(2, 4, 3, r, padding: 1), new BatchNorm(4), Lambda.Relu(), Lambda.MaxPool(2),
            new Conv2d(4, 6, 3, r, stride: 2, padding: 2, dilation: 2, groups: 2), new Lambda("avg", x => Ops.AvgPool2d(x, 3, 1, 1)),
            new Lambda("gap", Ops.GlobalAveragePool), Lambda.Flatten(),
            new Linear(6, 3, r), new Lambda("log_softmax", x => Ops.LogSoftmax(x)));
        // A few training batches give batch norm non-trivial running statistics.
        for (var i = 0; i < 3; i++)
        {
            model.Forward(Tensor.RandomNormal(new Random(10 + i), 1, 2, 4, 2, 8, 8));
        }
        AssertParity(model, [2, 8, 8], 2);
    }

    [Fact]
    public void LayerNorm_Transpose_Reshape_Reduce_Concat_Slice()
    {
        var r = new Random(4);
        var model = new Sequential(
            new Lambda("t", x => Ops.Transpose(x, 0, 2, 1)),
            new LayerNorm(3),
            new Lambda("mix", x => Ops.Concat([x, Ops.Slice(x, [0], [2], [1])], 1)),
            new Lambda("reshape", x => Ops.Reshape(x, x.Shape[0], -1)),
            new Linear(18, 5, r),
            new Lambda("mean", x => Ops.Add(x, Ops.ReduceMean(x, [1], keepDims: true))),
            new Lambda("sum", x => Ops.Mul(x, Ops.ReduceSum(x, [1], keepDims: true))),
            new Lambda("max", x => Ops.Sub(x, Ops.ReduceMax(x, [1], keepDims: true))));
        AssertParity(model, [3, 4], 3);
    }

    [Theory]
    [InlineData(18)]
    [InlineData(20)]
    [InlineData(21)]
    public void NewerOpsets_ReduceAxesAsInputs_NativeGelu(int opset)
    {
        var r = new Random(5);
        var model = new Sequential(new Linear(4, 6, r), Lambda.Gelu(), new Lambda("mean", x => Ops.Sub(x, Ops.ReduceMean(x, [1], keepDims: true))));
        AssertParity(model, [4], 4, new OnnxExportOptions { Opset = opset, IrVersion = opset >= 21 ? 10 : 9, InputName = "features", OutputName = "scores" });
    }

    [Fact]
    public void Export_RefusesLosses_AndNamesInitializersAfterParameters()
    {
        var r = new Random(6);
        var linear = new Linear(3, 2, r);
        var bytes = OnnxExport.Export(new Sequential(linear), [3]);
        var model = Onnx.ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(["0.weight", "0.bias"], model.Graph.Initializer.Select(i => i.Name));
        Assert.Equal("batch", model.Graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal("Gemm", Assert.Single(model.Graph.Node).OpType);
        var loss = new Lambda("loss", x => Losses.MeanSquaredError(x, Tensor.Zeros(x.Shape)));
        var ex = Assert.Throws<NotSupportedException>(() => OnnxExport.Export(new Sequential(linear, loss), [3]));
        Assert.Contains("MeanSquaredError", ex.Message, StringComparison.Ordinal);
    }
}
