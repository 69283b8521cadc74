namespace AiMass.Tensors.Tests;

public sealed class TensorArenaTests
{
    private static (float[] Loss, float[] Grad) Step(Conv2d conv, Linear linear, Tensor x, int[] labels)
    {
        conv.ZeroGrad();
        linear.ZeroGrad();
        var h = Ops.MaxPool2d(Ops.Relu(conv.Forward(x)), 2);
        var loss = Losses.CrossEntropy(linear.Forward(Ops.Flatten(h, 1)), labels);
        loss.Backward();
        return (loss.ToArray(), conv.Weight.Grad!.ToArray());
    }

    [Fact]
    public void Steps_inside_an_arena_reuse_arrays_and_give_the_same_results_as_without()
    {
        var random = new Random(3);
        var conv = new Conv2d(2, 8, 3, random, padding: 1);
        var linear = new Linear(8 * 16 * 16, 4, random);
        var x = Tensor.RandomNormal(random, 0, 1, 4, 2, 32, 32);
        int[] labels = [0, 1, 2, 3];
        var plain = Step(conv, linear, x, labels);

        var arena = new TensorArena();
        (float[] Loss, float[] Grad) first, second;
        Tensor kept;
        using (arena.Enter())
        {
            first = Step(conv, linear, x, labels);
            kept = Ops.Relu(x);
        }
        var pooled = arena.PooledBytes;
        Assert.True(pooled > 0);
        using (arena.Enter())
        {
            second = Step(conv, linear, x, labels);
        }
        Assert.Equal(plain.Loss, first.Loss);
        Assert.Equal(plain.Grad, first.Grad);
        Assert.Equal(plain.Grad, second.Grad);
        // The second step took its arrays from the pool: it holds no more than one step's worth.
        Assert.True(arena.PooledBytes <= pooled + (long)x.Length * 4, $"{arena.PooledBytes} pooled after the second step, {pooled} after the first");

        // A tensor computed inside a scope is released with it, with an error that says what to do.
        var error = Assert.Throws<InvalidOperationException>(() => kept.ToArray());
        Assert.Contains("TensorArena scope", error.Message, StringComparison.Ordinal);
        Assert.Contains("ToArray()", error.Message, StringComparison.Ordinal);
        // Parameters and their factories never come from an arena.
        Assert.Equal(conv.Weight.Length, conv.Weight.ToArray().Length);
    }

    [Fact]
    public void Scopes_do_not_nest()
    {
        var arena = new TensorArena();
        using (arena.Enter())
        {
            Assert.Throws<InvalidOperationException>(() => new TensorArena().Enter());
        }
        using (arena.Enter())
        {
        }
    }
}
