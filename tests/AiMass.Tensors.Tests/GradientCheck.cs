namespace AiMass.Tensors.Tests;

/// <summary>Compares the engine's gradients with central finite differences.</summary>
internal static class GradientCheck
{
    /// <summary>
    /// Checks d(Σ w ⊙ f(inputs))/d(inputs) for a fixed random weighting w, so every output position contributes.
    /// Float32 limits the precision of the differences: step 1e-2, tolerance 1e-3 + 2 % relative.
    /// </summary>
    public static void Check(Func<Tensor[], Tensor> f, int seed, params Tensor[] inputs)
    {
        var random = new Random(seed);
        foreach (var x in inputs)
        {
            x.RequiresGrad = true;
            x.Grad = null;
        }
        var probe = f(inputs);
        var weights = Tensor.RandomUniform(random, -1, 1, probe.Shape);
        Tensor Loss() => Ops.ReduceSum(Ops.Mul(f(inputs), weights));
        Loss().Backward();
        const float Step = 1e-2f;
        for (var k = 0; k < inputs.Length; k++)
        {
            var x = inputs[k];
            Assert.True(x.Grad is not null, $"input {k} got no gradient");
            Assert.Equal(x.Shape, x.Grad!.Shape);
            var positions = Enumerable.Range(0, x.Length).OrderBy(_ => random.Next()).Take(40).ToArray();
            foreach (var i in positions)
            {
                var saved = x.Span[i];
                float plus, minus;
                using (Autograd.NoGrad())
                {
                    x.Span[i] = saved + Step;
                    plus = Loss().Item();
                    x.Span[i] = saved - Step;
                    minus = Loss().Item();
                }
                x.Span[i] = saved;
                var numeric = (plus - minus) / (2 * Step);
                var analytic = x.Grad.Span[i];
                var tolerance = 1e-3f + 0.02f * Math.Max(Math.Abs(numeric), Math.Abs(analytic));
                Assert.True(Math.Abs(numeric - analytic) <= tolerance,
                    $"input {k} {Format(x.Shape)} element {i}: analytic {analytic}, numeric {numeric}");
            }
        }
    }

    /// <summary>Random values whose magnitude is at least <paramref name="away"/> (keeps finite differences off kinks such as Relu's at 0).</summary>
    public static Tensor Random(int seed, float away, params int[] shape)
    {
        var random = new Random(seed);
        var t = Tensor.RandomUniform(random, -2, 2, shape);
        for (var i = 0; i < t.Length; i++)
        {
            if (Math.Abs(t.Span[i]) < away)
            {
                t.Span[i] = t.Span[i] < 0 ? -away - 0.1f : away + 0.1f;
            }
        }
        return t;
    }

    /// <summary>Random positive values in [low, high).</summary>
    public static Tensor Positive(int seed, float low, float high, params int[] shape) => Tensor.RandomUniform(new Random(seed), low, high, shape);

    private static string Format(int[] shape) => "[" + string.Join(",", shape) + "]";
}
