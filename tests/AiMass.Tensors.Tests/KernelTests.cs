namespace AiMass.Tensors.Tests;

public sealed class KernelTests
{
    [Fact]
    public void Forward_KnownValues()
    {
        var a = Tensor.FromArray([1, 2, 3, 4, 5, 6], 2, 3);
        var b = Tensor.FromArray([1, 0, 0, 1, 1, 1], 3, 2);
        Assert.Equal([4f, 5, 10, 11], Ops.MatMul(a, b).ToArray());
        Assert.Equal([2f, 4, 6, 5, 7, 9], (a + Tensor.FromArray([1, 2, 3], 3)).ToArray());
        var softmax = Ops.Softmax(Tensor.FromArray([1, 2, 3, 1000, 1000, 1000], 2, 3));
        Assert.Equal(1f, softmax.ToArray()[..3].Sum(), 5);
        Assert.Equal(1f / 3, softmax.ToArray()[4], 5);
        Assert.Equal([21f], Ops.ReduceSum(a).ToArray());
        Assert.Equal([2f, 5], Ops.ReduceMean(a, [1]).ToArray());
        Assert.Equal([1f, 4, 2, 5, 3, 6], Ops.Transpose(a).ToArray());
        Assert.Equal([3, 2], Ops.Transpose(a).Shape);
    }

    [Fact]
    public void Erf_MatchesReferenceValues()
    {
        (float X, double Erf)[] cases = [(0, 0), (0.5f, 0.5204998778), (1, 0.8427007929), (-1.5f, -0.9661051465), (3, 0.9999779095)];
        foreach (var (x, expected) in cases)
        {
            Assert.Equal(expected, Ops.Erf(x), 6);
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Gemm_NativeAndManagedAgree(bool transA, bool transB)
    {
        var random = new Random(7);
        int m = 37, n = 29, k = 53;
        var a = Tensor.RandomUniform(random, -1, 1, transA ? [k, m] : [m, k]).ToArray();
        var b = Tensor.RandomUniform(random, -1, 1, transB ? [n, k] : [k, n]).ToArray();
        var c0 = Tensor.RandomUniform(random, -1, 1, m, n).ToArray();
        var expected = new double[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                for (var p = 0; p < k; p++)
                {
                    sum += (transA ? a[p * m + i] : a[i * k + p]) * (double)(transB ? b[j * k + p] : b[p * n + j]);
                }
                expected[i * n + j] = 0.5 * sum + 2 * c0[i * n + j];
            }
        }
        var managed = (float[])c0.Clone();
        Blas.ManagedSgemm(transA, transB, m, n, k, 0.5f, a, transA ? m : k, b, transB ? k : n, 2f, managed, n);
        var any = (float[])c0.Clone();
        Blas.Sgemm(transA, transB, m, n, k, 0.5f, a, transA ? m : k, b, transB ? k : n, 2f, any, n);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - managed[i]) < 1e-4, $"managed [{i}]: {managed[i]} vs {expected[i]}");
            Assert.True(Math.Abs(expected[i] - any[i]) < 1e-4, $"{Blas.Backend} [{i}]: {any[i]} vs {expected[i]}");
        }
    }

    [Fact]
    public void Blas_ReportsItsBackend()
    {
        Assert.False(string.IsNullOrEmpty(Blas.Backend));
        // test.sh installs OpenBLAS, so the suite exercises the native path; the managed one is checked above.
        if (File.Exists("/usr/lib/x86_64-linux-gnu/libopenblas.so.0") && Environment.GetEnvironmentVariable("AIMASS_BLAS") is null)
        {
            Assert.True(Blas.IsNative, $"OpenBLAS is installed but GEMM runs on {Blas.Backend}");
        }
    }

    [Fact]
    public void SameSeedAndThreads_BitIdenticalResults_AnyThreadCountForElementwiseAndManagedGemm()
    {
        float[] Run(int threads)
        {
            var saved = Parallelism.Threads;
            Parallelism.Threads = threads;
            try
            {
                var random = new Random(3);
                var x = Tensor.RandomNormal(random, 0, 1, 300, 200);
                var w = Tensor.RandomNormal(random, 0, 1, 200, 100);
                var y = Ops.Tanh(x * 1.5f + Ops.Sigmoid(x));
                var c = new float[300 * 100];
                Blas.ManagedSgemm(false, false, 300, 100, 200, 1, y.ToArray(), 200, w.ToArray(), 100, 0, c, 100);
                return c.Concat(Ops.Softmax(Tensor.FromArray(c, 300, 100)).ToArray()).ToArray();
            }
            finally
            {
                Parallelism.Threads = saved;
            }
        }
        var one = Run(1);
        Assert.Equal(one, Run(2));
        Assert.Equal(one, Run(2));
    }

    [Fact]
    public void Errors_NameTheShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => Ops.Add(Tensor.Zeros(2, 3), Tensor.Zeros(4)));
        Assert.Contains("[2, 3] and [4] do not broadcast", ex.Message, StringComparison.Ordinal);
        var mm = Assert.Throws<ArgumentException>(() => Ops.MatMul(Tensor.Zeros(2, 3), Tensor.Zeros(4, 5)));
        Assert.Contains("inner dimensions differ", mm.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => Tensor.Zeros(3).Backward());
    }

    [Fact]
    public void NoGrad_RecordsNothing_AndGradientsAccumulateAcrossBackwardCalls()
    {
        var w = Tensor.FromArray([2f], 1);
        w.RequiresGrad = true;
        using (Autograd.NoGrad())
        {
            Assert.False((w * w).RequiresGrad);
        }
        Ops.ReduceSum(w * w).Backward();
        Ops.ReduceSum(w * w).Backward();
        Assert.Equal(8f, w.Grad!.Span[0]); // 2 · 2w, twice
    }
}
