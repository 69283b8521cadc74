namespace AiMass.Tensors.Tests;

/// <summary>Update rules against steps computed by hand (in double precision) from PyTorch's definitions.</summary>
public sealed class OptimizerTests
{
    private static readonly float[] Start = [1.0f, -2.0f];
    private static readonly float[][] Gradients = [[0.5f, -1.0f], [0.2f, 0.3f], [-0.4f, 0.1f]];

    private static float[] Run(Func<IEnumerable<(string, Tensor)>, Optimizer> create)
    {
        var p = Tensor.FromArray(Start, 2);
        var optimizer = create([("p", p)]);
        foreach (var g in Gradients)
        {
            p.Grad = Tensor.FromArray(g, 2);
            optimizer.Step();
        }
        return p.ToArray();
    }

    private static void Close(double[] expected, float[] actual)
    {
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"[{i}] expected {expected[i]}, got {actual[i]}");
        }
    }

    /// <summary>Applies <paramref name="rule"/> coordinate by coordinate over the three gradients.</summary>
    private static double[] ByHand(Func<int, double, double, double[], double> rule, int stateSize)
    {
        var result = new double[2];
        for (var i = 0; i < 2; i++)
        {
            double p = Start[i];
            var state = new double[stateSize];
            for (var t = 0; t < Gradients.Length; t++)
            {
                p = rule(t + 1, p, Gradients[t][i], state);
            }
            result[i] = p;
        }
        return result;
    }

    [Fact]
    public void Sgd_PlainMomentumNesterovAndWeightDecay()
    {
        Close(ByHand((_, p, g, _) => p - 0.1 * g, 0), Run(ps => new Sgd(ps, 0.1f)));
        Close(ByHand((t, p, g, s) =>
        {
            s[0] = t == 1 ? g : 0.9 * s[0] + g;
            return p - 0.1 * s[0];
        }, 1), Run(ps => new Sgd(ps, 0.1f, momentum: 0.9f)));
        Close(ByHand((t, p, g, s) =>
        {
            g += 0.01 * p;
            s[0] = t == 1 ? g : 0.9 * s[0] + g;
            return p - 0.1 * (g + 0.9 * s[0]);
        }, 1), Run(ps => new Sgd(ps, 0.1f, momentum: 0.9f, nesterov: true, weightDecay: 0.01f)));
    }

    [Fact]
    public void AdaGrad_And_RmsProp()
    {
        Close(ByHand((_, p, g, s) =>
        {
            s[0] += g * g;
            return p - 0.1 * g / (Math.Sqrt(s[0]) + 1e-10);
        }, 1), Run(ps => new AdaGrad(ps, 0.1f)));
        Close(ByHand((_, p, g, s) =>
        {
            s[0] = 0.9 * s[0] + 0.1 * g * g;
            return p - 0.01 * g / (Math.Sqrt(s[0]) + 1e-8);
        }, 1), Run(ps => new RmsProp(ps, 0.01f, alpha: 0.9f)));
        Close(ByHand((_, p, g, s) =>
        {
            s[0] = 0.9 * s[0] + 0.1 * g * g;
            s[1] = 0.5 * s[1] + g / (Math.Sqrt(s[0]) + 1e-8);
            return p - 0.01 * s[1];
        }, 2), Run(ps => new RmsProp(ps, 0.01f, alpha: 0.9f, momentum: 0.5f)));
    }

    [Fact]
    public void Adam_And_AdamW()
    {
        double AdamStep(int t, double p, double g, double[] s, double lr)
        {
            s[0] = 0.9 * s[0] + 0.1 * g;
            s[1] = 0.999 * s[1] + 0.001 * g * g;
            var mhat = s[0] / (1 - Math.Pow(0.9, t));
            var vhat = s[1] / (1 - Math.Pow(0.999, t));
            return p - lr * mhat / (Math.Sqrt(vhat) + 1e-8);
        }
        Close(ByHand((t, p, g, s) => AdamStep(t, p, g, s, 0.01), 2), Run(ps => new Adam(ps, 0.01f)));
        Close(ByHand((t, p, g, s) => AdamStep(t, p, g + 0.1 * p, s, 0.01), 2), Run(ps => new Adam(ps, 0.01f, weightDecay: 0.1f)));
        Close(ByHand((t, p, g, s) => AdamStep(t, p * (1 - 0.01 * 0.1), g, s, 0.01), 2), Run(ps => new AdamW(ps, 0.01f, weightDecay: 0.1f)));
    }

    [Fact]
    public void State_SavedAndRestored_ContinuesExactly()
    {
        var a = Tensor.FromArray(Start, 2);
        var continuous = new Adam([("p", a)], 0.01f);
        var b = Tensor.FromArray(Start, 2);
        var first = new Adam([("p", b)], 0.01f);
        for (var t = 0; t < Gradients.Length; t++)
        {
            a.Grad = Tensor.FromArray(Gradients[t], 2);
            continuous.Step();
            if (t == 1)
            {
                var restored = new Adam([("p", b)], 0.5f);
                restored.LoadStateDict(first.StateDict());
                first = restored;
            }
            b.Grad = Tensor.FromArray(Gradients[t], 2);
            first.Step();
        }
        Assert.Equal(a.ToArray(), b.ToArray());
        Assert.Equal(3, first.Steps);
        Assert.Equal(0.01f, first.LearningRate);
    }

    [Fact]
    public void ClipByNorm_ScalesToTheLimit()
    {
        var p = Tensor.Zeros(2);
        p.Grad = Tensor.FromArray([3, 4], 2);
        Assert.Equal(5f, GradientClipping.ClipByNorm([p], 1f), 5);
        Assert.Equal(1f, MathF.Sqrt(p.Grad.ToArray().Sum(v => v * v)), 4);
        Assert.Equal(1f, GradientClipping.ClipByNorm([p], 10f), 4);
    }

    [Fact]
    public void Schedules_Step_Exponential_Cosine_Warmup()
    {
        var step = Schedules.Step(1f, 10, 0.5f);
        Assert.Equal([1f, 1f, 0.5f, 0.25f], new long[] { 0, 9, 10, 25 }.Select(step.Rate));
        Assert.Equal(0.81f, Schedules.Exponential(1f, 0.9f).Rate(2), 5);
        var cosine = Schedules.Cosine(1f, 100, 0.1f);
        Assert.Equal(1f, cosine.Rate(0), 5);
        Assert.Equal(0.55f, cosine.Rate(50), 5);
        Assert.Equal(0.1f, cosine.Rate(100), 5);
        var warm = Schedules.LinearWarmup(4, Schedules.Constant(2f));
        Assert.Equal([0.5f, 1f, 1.5f, 2f, 2f], Enumerable.Range(0, 5).Select(s => warm.Rate(s)));
    }
}
