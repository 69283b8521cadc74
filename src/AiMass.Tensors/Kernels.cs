namespace AiMass.Tensors;

/// <summary>A binary element-wise function, specialised by the JIT for each struct that implements it.</summary>
internal interface IBinary
{
    static abstract float Apply(float a, float b);
}

/// <summary>A unary element-wise function.</summary>
internal interface IUnary
{
    static abstract float Apply(float x);
}

/// <summary>Element-wise kernels with ONNX (NumPy) broadcasting, and the reduction that undoes a broadcast.</summary>
internal static class Kernels
{
    private const int Grain = 16_384;

    public static float[] Binary<TOp>(Tensor a, Tensor b, out int[] shape)
        where TOp : struct, IBinary
    {
        var ad = a.Data;
        var bd = b.Data;
        if (Shapes.SameShape(a.Shape, b.Shape))
        {
            shape = (int[])a.Shape.Clone();
            var same = new float[ad.Length];
            Parallelism.For(ad.Length, Grain, (from, to) =>
            {
                for (var i = from; i < to; i++)
                {
                    same[i] = TOp.Apply(ad[i], bd[i]);
                }
            });
            return same;
        }
        if (bd.Length == 1)
        {
            shape = Shapes.Broadcast(a.Shape, b.Shape);
            var s = bd[0];
            var result = new float[ad.Length];
            Parallelism.For(ad.Length, Grain, (from, to) =>
            {
                for (var i = from; i < to; i++)
                {
                    result[i] = TOp.Apply(ad[i], s);
                }
            });
            return result;
        }
        shape = Shapes.Broadcast(a.Shape, b.Shape);
        var target = shape;
        var sa = Shapes.BroadcastStrides(a.Shape, target);
        var sb = Shapes.BroadcastStrides(b.Shape, target);
        var size = Shapes.Size(target);
        var output = new float[size];
        var rank = target.Length;
        var inner = rank == 0 ? 1 : target[rank - 1];
        var rows = inner == 0 ? 0 : size / inner;
        var ia = rank == 0 ? 0 : sa[rank - 1];
        var ib = rank == 0 ? 0 : sb[rank - 1];
        Parallelism.For(rows, Math.Max(1, Grain / Math.Max(1, inner)), (from, to) =>
        {
            for (var row = from; row < to; row++)
            {
                // Offsets of this row in a and b: decompose the row index over the outer dimensions.
                int oa = 0, ob = 0, rest = row;
                for (var d = rank - 2; d >= 0; d--)
                {
                    var idx = rest % target[d];
                    rest /= target[d];
                    oa += idx * sa[d];
                    ob += idx * sb[d];
                }
                var o = row * inner;
                for (var j = 0; j < inner; j++)
                {
                    output[o + j] = TOp.Apply(ad[oa + j * ia], bd[ob + j * ib]);
                }
            }
        });
        return output;
    }

    public static float[] Unary<TOp>(float[] x)
        where TOp : struct, IUnary
    {
        var result = new float[x.Length];
        Parallelism.For(x.Length, Grain, (from, to) =>
        {
            for (var i = from; i < to; i++)
            {
                result[i] = TOp.Apply(x[i]);
            }
        });
        return result;
    }

    /// <summary>Writes <paramref name="source"/> broadcast to <paramref name="shape"/> into <paramref name="destination"/> (the adjoint of <see cref="SumTo"/>).</summary>
    public static void BroadcastInto(Tensor source, int[] shape, float[] destination)
    {
        var rank = shape.Length;
        var inner = rank == 0 ? 1 : shape[rank - 1];
        if (source.Length == inner && (source.Rank == 0 || source.Shape[^1] == inner))
        {
            // A row (a bias): copy it into every row.
            for (var o = 0; o + inner <= destination.Length; o += inner)
            {
                source.Data.CopyTo(destination, o);
            }
            return;
        }
        var strides = Shapes.BroadcastStrides(source.Shape, shape);
        var index = new int[rank];
        for (var i = 0; i < destination.Length; i++)
        {
            var offset = 0;
            for (var d = 0; d < rank; d++)
            {
                offset += index[d] * strides[d];
            }
            destination[i] = source.Data[offset];
            for (var d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < shape[d])
                {
                    break;
                }
                index[d] = 0;
            }
        }
    }

    /// <summary>Sums a broadcast gradient back to <paramref name="shape"/> (the reverse of broadcasting); sequential, so deterministic.</summary>
    public static Tensor SumTo(Tensor grad, int[] shape)
    {
        if (Shapes.SameShape(grad.Shape, shape))
        {
            return grad;
        }
        var result = new float[Shapes.Size(shape)];
        var strides = Shapes.BroadcastStrides(shape, grad.Shape);
        var rank = grad.Shape.Length;
        var index = new int[rank];
        var g = grad.Data;
        for (var i = 0; i < g.Length; i++)
        {
            var offset = 0;
            for (var d = 0; d < rank; d++)
            {
                offset += index[d] * strides[d];
            }
            result[offset] += g[i];
            for (var d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < grad.Shape[d])
                {
                    break;
                }
                index[d] = 0;
            }
        }
        return new Tensor(result, (int[])shape.Clone());
    }
}

internal struct AddOp : IBinary
{
    public static float Apply(float a, float b) => a + b;
}

internal struct SubOp : IBinary
{
    public static float Apply(float a, float b) => a - b;
}

internal struct MulOp : IBinary
{
    public static float Apply(float a, float b) => a * b;
}

internal struct DivOp : IBinary
{
    public static float Apply(float a, float b) => a / b;
}

internal struct PowOp : IBinary
{
    public static float Apply(float a, float b) => MathF.Pow(a, b);
}

internal struct ReluGradOp : IBinary
{
    public static float Apply(float x, float g) => x > 0 ? g : 0;
}

internal struct NegOp : IUnary
{
    public static float Apply(float x) => -x;
}

internal struct ReluOp : IUnary
{
    public static float Apply(float x) => x > 0 ? x : 0;
}

internal struct SigmoidOp : IUnary
{
    public static float Apply(float x) => x >= 0 ? 1f / (1f + MathF.Exp(-x)) : MathF.Exp(x) / (1f + MathF.Exp(x));
}

internal struct TanhOp : IUnary
{
    public static float Apply(float x) => MathF.Tanh(x);
}

internal struct ExpOp : IUnary
{
    public static float Apply(float x) => MathF.Exp(x);
}

internal struct LogOp : IUnary
{
    public static float Apply(float x) => MathF.Log(x);
}

internal struct SqrtOp : IUnary
{
    public static float Apply(float x) => MathF.Sqrt(x);
}
