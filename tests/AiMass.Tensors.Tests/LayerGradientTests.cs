namespace AiMass.Tensors.Tests;

/// <summary>Finite-difference checks of the layer operators: joining, indexing, convolution, pooling, normalisation, dropout.</summary>
public sealed class LayerGradientTests
{
    [Fact]
    public void Concat_And_Slice()
    {
        GradientCheck.Check(x => Ops.Concat([x[0], x[1]], 1), 1, GradientCheck.Random(1, 0, 2, 3, 2), GradientCheck.Random(2, 0, 2, 1, 2));
        GradientCheck.Check(x => Ops.Slice(x[0], [1, -3], [3, 100], [0, 2]), 2, GradientCheck.Random(3, 0, 4, 3, 5));
        Assert.Equal([3, 3, 3], Ops.Slice(Tensor.Zeros(4, 3, 5), [1, -3], [100, 100], [0, 2]).Shape);
    }

    [Fact]
    public void Gather_AccumulatesRepeatedRows()
    {
        var indices = Tensor.FromArray([2, 0, 2, 1, -1, 0], 2, 3);
        GradientCheck.Check(x => Ops.Gather(x[0], indices), 1, GradientCheck.Random(1, 0, 4, 5));
        Assert.Equal([2, 3, 5], Ops.Gather(Tensor.Zeros(4, 5), indices).Shape);
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Gather(Tensor.Zeros(4, 5), Tensor.FromArray([4], 1)));
    }

    [Theory]
    [InlineData(1, 1, 0, 0, 1, 1)]
    [InlineData(2, 1, 1, 1, 1, 1)]
    [InlineData(1, 2, 1, 0, 2, 1)]
    [InlineData(1, 1, 1, 1, 1, 2)]
    public void Conv2d_StridePaddingDilationGroups(int strideH, int strideW, int padH, int padW, int dilation, int groups)
    {
        var x = GradientCheck.Random(1, 0, 2, 4, 7, 6);
        var w = GradientCheck.Random(2, 0, 6, 4 / groups, 3, 3);
        var b = GradientCheck.Random(3, 0, 6);
        GradientCheck.Check(t => Ops.Conv2d(t[0], t[1], t[2], strideH, strideW, padH, padW, dilation, dilation, groups), 4, x, w, b);
    }

    [Fact]
    public void Conv2d_MatchesADirectConvolution()
    {
        var x = GradientCheck.Random(5, 0, 1, 2, 5, 5);
        var w = GradientCheck.Random(6, 0, 3, 2, 3, 3);
        var y = Ops.Conv2d(x, w, null, 2, 2, 1, 1);
        Assert.Equal([1, 3, 3, 3], y.Shape);
        for (var f = 0; f < 3; f++)
        {
            for (var i = 0; i < 3; i++)
            {
                for (var j = 0; j < 3; j++)
                {
                    double s = 0;
                    for (var c = 0; c < 2; c++)
                    {
                        for (var a = 0; a < 3; a++)
                        {
                            for (var b = 0; b < 3; b++)
                            {
                                int r = i * 2 - 1 + a, col = j * 2 - 1 + b;
                                if (r is >= 0 and < 5 && col is >= 0 and < 5)
                                {
                                    s += x[0, c, r, col] * w[f, c, a, b];
                                }
                            }
                        }
                    }
                    Assert.Equal(s, y[0, f, i, j], 4);
                }
            }
        }
    }

    [Fact]
    public void Pooling_Max_Average_Global()
    {
        GradientCheck.Check(x => Ops.MaxPool2d(x[0], 2), 1, GradientCheck.Random(1, 0, 2, 3, 6, 6));
        GradientCheck.Check(x => Ops.MaxPool2d(x[0], 3, 2, 1), 2, GradientCheck.Random(2, 0, 1, 2, 7, 7));
        GradientCheck.Check(x => Ops.AvgPool2d(x[0], 3, 2, 1), 3, GradientCheck.Random(3, 0, 1, 2, 7, 7));
        GradientCheck.Check(x => Ops.GlobalAveragePool(x[0]), 4, GradientCheck.Random(4, 0, 2, 3, 4, 5));
        Assert.Equal([4f], Ops.MaxPool2d(Tensor.FromArray([1, 2, 3, 4], 1, 1, 2, 2), 2).ToArray());
    }

    [Fact]
    public void BatchNormalization_TrainingAndInference()
    {
        var mean = Tensor.Zeros(3);
        var variance = Tensor.Ones(3);
        GradientCheck.Check(x => Ops.BatchNormalization(x[0], x[1], x[2], mean, variance, training: true), 1,
            GradientCheck.Random(1, 0, 4, 3, 2, 2), GradientCheck.Positive(2, 0.5f, 1.5f, 3), GradientCheck.Random(3, 0, 3));
        GradientCheck.Check(x => Ops.BatchNormalization(x[0], x[1], x[2], mean, variance, training: false), 2,
            GradientCheck.Random(4, 0, 4, 3, 2, 2), GradientCheck.Positive(5, 0.5f, 1.5f, 3), GradientCheck.Random(6, 0, 3));

        // Running statistics follow the batch: momentum 0.9, unbiased variance.
        var runMean = Tensor.Zeros(1);
        var runVar = Tensor.Ones(1);
        var batch = Tensor.FromArray([1, 2, 3, 4], 4, 1);
        using (Autograd.NoGrad())
        {
            var y = Ops.BatchNormalization(batch, Tensor.Ones(1), Tensor.Zeros(1), runMean, runVar, training: true);
            Assert.Equal(0f, y.ToArray().Sum(), 4);
        }
        Assert.Equal(0.25f, runMean.Span[0], 5);
        Assert.Equal(0.9f + 0.1f * (5f / 3), runVar.Span[0], 5);
    }

    [Fact]
    public void LayerNormalization_OverTrailingDimensions()
    {
        GradientCheck.Check(x => Ops.LayerNormalization(x[0], x[1], x[2], -1), 1,
            GradientCheck.Random(1, 0, 3, 5), GradientCheck.Positive(2, 0.5f, 1.5f, 5), GradientCheck.Random(3, 0, 5));
        GradientCheck.Check(x => Ops.LayerNormalization(x[0], x[1], x[2], 1), 2,
            GradientCheck.Random(4, 0, 2, 3, 4), GradientCheck.Positive(5, 0.5f, 1.5f, 3, 4), GradientCheck.Random(6, 0, 3, 4));
    }

    [Fact]
    public void Dropout_ScalesKeptValues_AndIsTheIdentityOutsideTraining()
    {
        var x = Tensor.Ones(1000);
        var y = Ops.Dropout(x, 0.25f, training: true, new Random(1));
        var kept = y.ToArray().Count(v => v != 0);
        Assert.InRange(kept, 700, 800);
        Assert.All(y.ToArray().Where(v => v != 0), v => Assert.Equal(1f / 0.75f, v, 5));
        Assert.Same(x, Ops.Dropout(x, 0.25f, training: false, new Random(1)));
        // Same seed, same mask: the gradient check re-runs the forward pass, so it needs a fresh generator each time.
        GradientCheck.Check(t => Ops.Dropout(t[0], 0.5f, true, new Random(3)), 1, GradientCheck.Random(1, 0, 4, 6));
    }
}
