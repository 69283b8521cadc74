namespace AiMass.Tensors.Tests;

/// <summary>Finite-difference checks of every operator's gradient, broadcasting cases included.</summary>
public sealed class OperatorGradientTests
{
    public static TheoryData<int[], int[]> BroadcastShapes => new()
    {
        { [3, 4], [3, 4] },
        { [3, 4], [4] },
        { [2, 3, 4], [3, 1] },
        { [3, 1], [1, 4] },
        { [2, 3], [] },
        { [4], [2, 3, 4] },
    };

    [Theory]
    [MemberData(nameof(BroadcastShapes))]
    public void Add_Sub_Mul_Div_WithBroadcasting(int[] a, int[] b)
    {
        GradientCheck.Check(x => x[0] + x[1], 1, GradientCheck.Random(1, 0, a), GradientCheck.Random(2, 0, b));
        GradientCheck.Check(x => x[0] - x[1], 2, GradientCheck.Random(3, 0, a), GradientCheck.Random(4, 0, b));
        GradientCheck.Check(x => x[0] * x[1], 3, GradientCheck.Random(5, 0, a), GradientCheck.Random(6, 0, b));
        GradientCheck.Check(x => x[0] / x[1], 4, GradientCheck.Random(7, 0, a), GradientCheck.Positive(8, 0.5f, 2f, b));
    }

    [Fact]
    public void Unary_Neg_Pow_Exp_Log_Sqrt_Scale()
    {
        GradientCheck.Check(x => Ops.Neg(x[0]), 1, GradientCheck.Random(1, 0, 3, 5));
        GradientCheck.Check(x => Ops.Pow(x[0], 3), 2, GradientCheck.Random(2, 0, 3, 5));
        GradientCheck.Check(x => Ops.Pow(x[0], 0.5f), 3, GradientCheck.Positive(3, 0.5f, 2f, 3, 5));
        GradientCheck.Check(x => Ops.Exp(x[0]), 4, GradientCheck.Random(4, 0, 3, 5));
        GradientCheck.Check(x => Ops.Log(x[0]), 5, GradientCheck.Positive(5, 0.5f, 3f, 3, 5));
        GradientCheck.Check(x => Ops.Sqrt(x[0]), 6, GradientCheck.Positive(6, 0.5f, 3f, 3, 5));
        GradientCheck.Check(x => x[0] * 2.5f, 7, GradientCheck.Random(7, 0, 3, 5));
    }

    [Fact]
    public void Activations()
    {
        GradientCheck.Check(x => Ops.Relu(x[0]), 1, GradientCheck.Random(1, 0.05f, 4, 6));
        GradientCheck.Check(x => Ops.LeakyRelu(x[0], 0.1f), 2, GradientCheck.Random(2, 0.05f, 4, 6));
        GradientCheck.Check(x => Ops.Sigmoid(x[0]), 3, GradientCheck.Random(3, 0, 4, 6));
        GradientCheck.Check(x => Ops.Tanh(x[0]), 4, GradientCheck.Random(4, 0, 4, 6));
        GradientCheck.Check(x => Ops.Gelu(x[0]), 5, GradientCheck.Random(5, 0, 4, 6));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(0)]
    [InlineData(1)]
    public void Softmax_And_LogSoftmax_AlongAnyAxis(int axis)
    {
        GradientCheck.Check(x => Ops.Softmax(x[0], axis), 1, GradientCheck.Random(1, 0, 3, 4, 5));
        GradientCheck.Check(x => Ops.LogSoftmax(x[0], axis), 2, GradientCheck.Random(2, 0, 3, 4, 5));
    }

    [Fact]
    public void MatMul_Plain_SharedRight_AndBatched()
    {
        GradientCheck.Check(x => Ops.MatMul(x[0], x[1]), 1, GradientCheck.Random(1, 0, 3, 4), GradientCheck.Random(2, 0, 4, 5));
        GradientCheck.Check(x => Ops.MatMul(x[0], x[1]), 2, GradientCheck.Random(3, 0, 2, 3, 4), GradientCheck.Random(4, 0, 4, 5));
        GradientCheck.Check(x => Ops.MatMul(x[0], x[1]), 3, GradientCheck.Random(5, 0, 2, 3, 4), GradientCheck.Random(6, 0, 2, 4, 5));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Gemm_EveryTransposition_WithRowAndMatrixBias(bool transA, bool transB)
    {
        int[] a = transA ? [4, 3] : [3, 4];
        int[] b = transB ? [5, 4] : [4, 5];
        GradientCheck.Check(x => Ops.Gemm(x[0], x[1], x[2], transA, transB), 1, GradientCheck.Random(1, 0, a), GradientCheck.Random(2, 0, b), GradientCheck.Random(3, 0, 5));
        GradientCheck.Check(x => Ops.Gemm(x[0], x[1], x[2], transA, transB, alpha: 0.5f, beta: 2f), 2,
            GradientCheck.Random(4, 0, a), GradientCheck.Random(5, 0, b), GradientCheck.Random(6, 0, 3, 5));
        GradientCheck.Check(x => Ops.Gemm(x[0], x[1], null, transA, transB), 3, GradientCheck.Random(7, 0, a), GradientCheck.Random(8, 0, b));
    }

    [Fact]
    public void Reductions_OverAxes_WithAndWithoutKeepDims()
    {
        GradientCheck.Check(x => Ops.ReduceSum(x[0], [1]), 1, GradientCheck.Random(1, 0, 2, 3, 4));
        GradientCheck.Check(x => Ops.ReduceSum(x[0], [0, 2], keepDims: true), 2, GradientCheck.Random(2, 0, 2, 3, 4));
        GradientCheck.Check(x => Ops.ReduceMean(x[0], [-1]), 3, GradientCheck.Random(3, 0, 2, 3, 4));
        GradientCheck.Check(x => Ops.ReduceMean(x[0]), 4, GradientCheck.Random(4, 0, 2, 3, 4));
        GradientCheck.Check(x => Ops.ReduceMax(x[0], [1]), 5, GradientCheck.Random(5, 0, 2, 3, 4));
    }

    [Fact]
    public void Shapes_Reshape_Flatten_Transpose()
    {
        GradientCheck.Check(x => Ops.Reshape(x[0], 4, -1), 1, GradientCheck.Random(1, 0, 2, 3, 4));
        GradientCheck.Check(x => Ops.Flatten(x[0], 1), 2, GradientCheck.Random(2, 0, 2, 3, 4));
        GradientCheck.Check(x => Ops.Transpose(x[0], 2, 0, 1), 3, GradientCheck.Random(3, 0, 2, 3, 4));
        GradientCheck.Check(x => Ops.Transpose(x[0]), 4, GradientCheck.Random(4, 0, 3, 5));
    }

    [Fact]
    public void Losses_CrossEntropy_Bce_Mse_Huber()
    {
        int[] labels = [2, 0, 4, 1];
        GradientCheck.Check(x => Losses.CrossEntropy(x[0], labels), 1, GradientCheck.Random(1, 0, 4, 5));
        var targets = Tensor.RandomUniform(new Random(9), 0, 1, 3, 4);
        GradientCheck.Check(x => Losses.BinaryCrossEntropyWithLogits(x[0], targets), 2, GradientCheck.Random(2, 0, 3, 4));
        GradientCheck.Check(x => Losses.MeanSquaredError(x[0], x[1]), 3, GradientCheck.Random(3, 0, 3, 4), GradientCheck.Random(4, 0, 3, 4));
        var zero = Tensor.Zeros(3, 4);
        GradientCheck.Check(x => Losses.Huber(x[0], zero, 1f), 4, GradientCheck.Random(5, 0.05f, 3, 4) * 1.5f);
    }

    [Fact]
    public void Composition_GradientsAccumulateThroughSharedUses()
    {
        // x is used three times; w twice: the accumulated gradients must still be exact.
        GradientCheck.Check(x => Ops.Tanh(Ops.MatMul(x[0], x[1])) * Ops.Sigmoid(x[0] * 0.5f).Let(s => Ops.ReduceSum(s, [1], keepDims: true)) + Ops.MatMul(x[0], x[1]),
            1, GradientCheck.Random(1, 0, 3, 4), GradientCheck.Random(2, 0, 4, 4));
    }
}

internal static class Functional
{
    public static TResult Let<T, TResult>(this T value, Func<T, TResult> f) => f(value);
}
