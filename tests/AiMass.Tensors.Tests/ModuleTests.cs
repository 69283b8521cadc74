namespace AiMass.Tensors.Tests;

public sealed class ModuleTests
{
    private static Sequential Mlp(int seed) => new(
        new Linear(2, 16, new Random(seed)), Lambda.Relu(),
        new Linear(16, 16, new Random(seed + 1)), Lambda.Tanh(),
        new Linear(16, 2, new Random(seed + 2), init: WeightInit.Xavier));

    [Fact]
    public void Parameters_HaveDottedNames_AndStateRoundTrips()
    {
        var model = new Sequential(new Conv2d(1, 4, 3, new Random(1), padding: 1), new BatchNorm(4), Lambda.Relu(), Lambda.Flatten(), new Linear(4 * 5 * 5, 3, new Random(2)));
        Assert.Equal(["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"], model.NamedParameters().Select(p => p.Name));
        Assert.Equal(["1.running_mean", "1.running_var"], model.NamedBuffers().Select(p => p.Name));
        Assert.Equal("4.weight", model.NamedParameters()[4].Tensor.Name);

        var state = model.StateDict();
        var other = new Sequential(new Conv2d(1, 4, 3, new Random(9), padding: 1), new BatchNorm(4), Lambda.Relu(), Lambda.Flatten(), new Linear(4 * 5 * 5, 3, new Random(9)));
        other.LoadStateDict(state);
        var x = Tensor.RandomNormal(new Random(3), 0, 1, 2, 1, 5, 5);
        model.Eval();
        other.Eval();
        Assert.Equal(model.Forward(x).ToArray(), other.Forward(x).ToArray());
        var bad = state.ToDictionary(p => p.Key, p => p.Value);
        bad["4.bias"] = new float[2];
        Assert.Contains("'4.bias' has 2 values", Assert.Throws<ArgumentException>(() => other.LoadStateDict(bad)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Training_TwoSpirals_ReachesHighAccuracy_AndIsDeterministic()
    {
        static (float Accuracy, float[] Weights) Train()
        {
            var random = new Random(5);
            const int N = 400;
            var x = new float[N * 2];
            var labels = new int[N];
            for (var i = 0; i < N; i++)
            {
                var cls = i % 2;
                var r = (i / 2) / (float)(N / 2) * 3 + 0.3f;
                var angle = r * 2.5f + cls * MathF.PI;
                x[2 * i] = r * MathF.Cos(angle) + (float)(random.NextDouble() - 0.5) * 0.1f;
                x[2 * i + 1] = r * MathF.Sin(angle) + (float)(random.NextDouble() - 0.5) * 0.1f;
                labels[i] = cls;
            }
            var model = Mlp(11);
            var optimizer = new Adam(model.NamedParameters(), 0.02f);
            var input = Tensor.FromArray(x, N, 2);
            for (var step = 0; step < 400; step++)
            {
                optimizer.ZeroGrad();
                Losses.CrossEntropy(model.Forward(input), labels).Backward();
                optimizer.Step();
            }
            model.Eval();
            using var _ = Autograd.NoGrad();
            var logits = model.Forward(input);
            var correct = Enumerable.Range(0, N).Count(i => (logits[i, 1] > logits[i, 0] ? 1 : 0) == labels[i]);
            return (correct / (float)N, model.Parameters().SelectMany(p => p.ToArray()).ToArray());
        }
        var (accuracy, weights) = Train();
        Assert.True(accuracy > 0.95f, $"accuracy {accuracy:P1}");
        Assert.Equal(weights, Train().Weights); // same seed, same threads: bit-identical
    }
}
