using System.Numerics;
using System.Runtime.InteropServices;

namespace AiMass.Tensors;

/// <summary>
/// A binary element-wise function, specialised by the JIT for each struct that implements it. Functions with a SIMD
/// form set <see cref="Vectorized"/>; it must give exactly the scalar results (so results do not depend on alignment).
/// </summary>
internal interface IBinary
{
    static abstract float Apply(float a, float b);

    static virtual bool Vectorized => false;

    static virtual Vector<float> Apply(Vector<float> a, Vector<float> b) => throw new NotSupportedException();
}

/// <summary>A unary element-wise function (with an optional SIMD form, as for <see cref="IBinary"/>).</summary>
internal interface IUnary
{
    static abstract float Apply(float x);

    static virtual bool Vectorized => false;

    static virtual Vector<float> Apply(Vector<float> x) => throw new NotSupportedException();
}

/// <summary>Element-wise kernels with ONNX (NumPy) broadcasting, and the reduction that undoes a broadcast.</summary>
internal static class Kernels
{
    // Element-wise work is memory-bound: below about 128K values a second thread costs more to wake than it saves.
    private const int Grain = 131_072;

    public static float[] Binary<TOp>(Tensor a, Tensor b, out int[] shape)
        where TOp : struct, IBinary
    {
        var ad = a.Data;
        var bd = b.Data;
        if (Shapes.SameShape(a.Shape, b.Shape))
        {
            shape = (int[])a.Shape.Clone();
            var same = TensorArena.Allocate(ad.Length);
            Parallelism.For(ad.Length, Grain, (from, to) =>
            {
                var i = from;
                if (TOp.Vectorized)
                {
                    var va = MemoryMarshal.Cast<float, Vector<float>>(ad.AsSpan(from, to - from));
                    var vb = MemoryMarshal.Cast<float, Vector<float>>(bd.AsSpan(from, to - from));
                    var vo = MemoryMarshal.Cast<float, Vector<float>>(same.AsSpan(from, to - from));
                    for (var k = 0; k < vo.Length; k++)
                    {
                        vo[k] = TOp.Apply(va[k], vb[k]);
                    }
                    i += vo.Length * Vector<float>.Count;
                }
                for (; i < to; i++)
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
            var result = TensorArena.Allocate(ad.Length);
            Parallelism.For(ad.Length, Grain, (from, to) =>
            {
                var i = from;
                if (TOp.Vectorized)
                {
                    var va = MemoryMarshal.Cast<float, Vector<float>>(ad.AsSpan(from, to - from));
                    var vo = MemoryMarshal.Cast<float, Vector<float>>(result.AsSpan(from, to - from));
                    var vs = new Vector<float>(s);
                    for (var k = 0; k < vo.Length; k++)
                    {
                        vo[k] = TOp.Apply(va[k], vs);
                    }
                    i += vo.Length * Vector<float>.Count;
                }
                for (; i < to; i++)
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
        var output = TensorArena.Allocate(size);
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
        var result = TensorArena.Allocate(x.Length);
        Parallelism.For(x.Length, Grain, (from, to) =>
        {
            var i = from;
            if (TOp.Vectorized)
            {
                var vx = MemoryMarshal.Cast<float, Vector<float>>(x.AsSpan(from, to - from));
                var vo = MemoryMarshal.Cast<float, Vector<float>>(result.AsSpan(from, to - from));
                for (var k = 0; k < vo.Length; k++)
                {
                    vo[k] = TOp.Apply(vx[k]);
                }
                i += vo.Length * Vector<float>.Count;
            }
            for (; i < to; i++)
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
        var result = TensorArena.Allocate(Shapes.Size(shape));
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

    public static bool Vectorized => true;

    public static Vector<float> Apply(Vector<float> a, Vector<float> b) => a + b;
}

internal struct SubOp : IBinary
{
    public static float Apply(float a, float b) => a - b;

    public static bool Vectorized => true;

    public static Vector<float> Apply(Vector<float> a, Vector<float> b) => a - b;
}

internal struct MulOp : IBinary
{
    public static float Apply(float a, float b) => a * b;

    public static bool Vectorized => true;

    public static Vector<float> Apply(Vector<float> a, Vector<float> b) => a * b;
}

internal struct DivOp : IBinary
{
    public static float Apply(float a, float b) => a / b;

    public static bool Vectorized => true;

    public static Vector<float> Apply(Vector<float> a, Vector<float> b) => a / b;
}

internal struct PowOp : IBinary
{
    public static float Apply(float a, float b) => MathF.Pow(a, b);
}

internal struct ReluGradOp : IBinary
{
    public static float Apply(float x, float g) => x > 0 ? g : 0;

    public static bool Vectorized => true;

    public static Vector<float> Apply(Vector<float> x, Vector<float> g) => Vector.ConditionalSelect(Vector.GreaterThan(x, Vector<float>.Zero), g, Vector<float>.Zero);
}

internal struct NegOp : IUnary
{
    public static float Apply(float x) => -x;

    public static bool Vectorized => true;

    public static Vector<float> Apply(Vector<float> x) => -x;
}

internal struct ReluOp : IUnary
{
    public static float Apply(float x) => x > 0 ? x : 0;

    public static bool Vectorized => true;

    // Max would keep NaN differently from the scalar form; the select gives exactly x > 0 ? x : 0.
    public static Vector<float> Apply(Vector<float> x) => Vector.ConditionalSelect(Vector.GreaterThan(x, Vector<float>.Zero), x, Vector<float>.Zero);
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
