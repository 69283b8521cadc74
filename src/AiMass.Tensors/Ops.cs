namespace AiMass.Tensors;

/// <summary>
/// The engine's operators. Each follows the semantics of the ONNX operator it is named after (broadcasting, axes,
/// attributes) and records itself under that name, so a traced forward pass exports one-to-one.
/// </summary>
public static partial class Ops
{
    // ------------------------------------------------------------------------------------------- arithmetic

    /// <summary>a + b with broadcasting (ONNX Add).</summary>
    public static Tensor Add(Tensor a, Tensor b)
    {
        var y = new Tensor(Kernels.Binary<AddOp>(a, b, out var shape), shape);
        return Autograd.Record(y, "Add", [a, b], g => [Kernels.SumTo(g, a.Shape), Kernels.SumTo(g, b.Shape)]);
    }

    /// <summary>a − b with broadcasting (ONNX Sub).</summary>
    public static Tensor Sub(Tensor a, Tensor b)
    {
        var y = new Tensor(Kernels.Binary<SubOp>(a, b, out var shape), shape);
        return Autograd.Record(y, "Sub", [a, b], g => [Kernels.SumTo(g, a.Shape), Kernels.SumTo(Neg(g), b.Shape)]);
    }

    /// <summary>a · b element-wise with broadcasting (ONNX Mul).</summary>
    public static Tensor Mul(Tensor a, Tensor b)
    {
        var y = new Tensor(Kernels.Binary<MulOp>(a, b, out var shape), shape);
        return Autograd.Record(y, "Mul", [a, b], g => [
            a.RequiresGrad ? Kernels.SumTo(Mul(g, b), a.Shape) : null,
            b.RequiresGrad ? Kernels.SumTo(Mul(g, a), b.Shape) : null]);
    }

    /// <summary>a / b element-wise with broadcasting (ONNX Div).</summary>
    public static Tensor Div(Tensor a, Tensor b)
    {
        var y = new Tensor(Kernels.Binary<DivOp>(a, b, out var shape), shape);
        return Autograd.Record(y, "Div", [a, b], g => [
            a.RequiresGrad ? Kernels.SumTo(Div(g, b), a.Shape) : null,
            b.RequiresGrad ? Kernels.SumTo(Neg(Div(Mul(g, y), b)), b.Shape) : null]);
    }

    /// <summary>−x (ONNX Neg).</summary>
    public static Tensor Neg(Tensor x)
    {
        var y = new Tensor(Kernels.Unary<NegOp>(x.Data), (int[])x.Shape.Clone());
        return Autograd.Record(y, "Neg", [x], g => [Neg(g)]);
    }

    /// <summary>x ^ p for a constant exponent (ONNX Pow; the exponent becomes a constant input).</summary>
    public static Tensor Pow(Tensor x, float p)
    {
        var exponent = Tensor.Scalar(p);
        var y = new Tensor(Kernels.Binary<PowOp>(x, exponent, out var shape), shape);
        return Autograd.Record(y, "Pow", [x, exponent], g => [Mul(g, Scale(Pow(x, p - 1), p)), null]);
    }

    /// <summary>x · s for a constant s (recorded as Mul by a constant).</summary>
    public static Tensor Scale(Tensor x, float s) => Mul(x, Tensor.Scalar(s));

    /// <summary>e^x (ONNX Exp).</summary>
    public static Tensor Exp(Tensor x)
    {
        var y = new Tensor(Kernels.Unary<ExpOp>(x.Data), (int[])x.Shape.Clone());
        return Autograd.Record(y, "Exp", [x], g => [Mul(g, y)]);
    }

    /// <summary>ln x (ONNX Log).</summary>
    public static Tensor Log(Tensor x)
    {
        var y = new Tensor(Kernels.Unary<LogOp>(x.Data), (int[])x.Shape.Clone());
        return Autograd.Record(y, "Log", [x], g => [Div(g, x)]);
    }

    /// <summary>√x (ONNX Sqrt).</summary>
    public static Tensor Sqrt(Tensor x)
    {
        var y = new Tensor(Kernels.Unary<SqrtOp>(x.Data), (int[])x.Shape.Clone());
        return Autograd.Record(y, "Sqrt", [x], g => [Div(g, Scale(y, 2))]);
    }

    // ------------------------------------------------------------------------------------------- activations

    /// <summary>max(x, 0) (ONNX Relu).</summary>
    public static Tensor Relu(Tensor x)
    {
        var y = new Tensor(Kernels.Unary<ReluOp>(x.Data), (int[])x.Shape.Clone());
        return Autograd.Record(y, "Relu", [x], g => [new Tensor(Kernels.Binary<ReluGradOp>(x, g, out _), (int[])x.Shape.Clone())]);
    }

    /// <summary>x for x ≥ 0, alpha · x otherwise (ONNX LeakyRelu).</summary>
    public static Tensor LeakyRelu(Tensor x, float alpha = 0.01f)
    {
        var data = TensorArena.Allocate(x.Length);
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = x.Data[i] >= 0 ? x.Data[i] : alpha * x.Data[i];
        }
        var y = new Tensor(data, (int[])x.Shape.Clone());
        return Autograd.Record(y, "LeakyRelu", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            for (var i = 0; i < dx.Length; i++)
            {
                dx[i] = x.Data[i] >= 0 ? g.Data[i] : alpha * g.Data[i];
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, new Dictionary<string, object> { ["alpha"] = alpha });
    }

    /// <summary>1 / (1 + e^−x) (ONNX Sigmoid).</summary>
    public static Tensor Sigmoid(Tensor x)
    {
        var y = new Tensor(Kernels.Unary<SigmoidOp>(x.Data), (int[])x.Shape.Clone());
        return Autograd.Record(y, "Sigmoid", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            for (var i = 0; i < dx.Length; i++)
            {
                dx[i] = g.Data[i] * y.Data[i] * (1 - y.Data[i]);
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        });
    }

    /// <summary>tanh x (ONNX Tanh).</summary>
    public static Tensor Tanh(Tensor x)
    {
        var y = new Tensor(Kernels.Unary<TanhOp>(x.Data), (int[])x.Shape.Clone());
        return Autograd.Record(y, "Tanh", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            for (var i = 0; i < dx.Length; i++)
            {
                dx[i] = g.Data[i] * (1 - y.Data[i] * y.Data[i]);
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        });
    }

    /// <summary>x · Φ(x), the exact GELU with the normal CDF (ONNX Gelu, approximate="none").</summary>
    public static Tensor Gelu(Tensor x)
    {
        var data = TensorArena.Allocate(x.Length);
        for (var i = 0; i < data.Length; i++)
        {
            var v = x.Data[i];
            data[i] = 0.5f * v * (1 + Erf(v / MathF.Sqrt(2)));
        }
        var y = new Tensor(data, (int[])x.Shape.Clone());
        return Autograd.Record(y, "Gelu", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            for (var i = 0; i < dx.Length; i++)
            {
                var v = x.Data[i];
                var cdf = 0.5f * (1 + Erf(v / MathF.Sqrt(2)));
                var pdf = MathF.Exp(-0.5f * v * v) / MathF.Sqrt(2 * MathF.PI);
                dx[i] = g.Data[i] * (cdf + v * pdf);
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, new Dictionary<string, object> { ["approximate"] = "none" });
    }

    /// <summary>The error function, to float precision (Abramowitz and Stegun 7.1.26 refined with double arithmetic).</summary>
    internal static float Erf(float x)
    {
        double t = 1.0 / (1.0 + 0.5 * Math.Abs(x));
        // Numerical Recipes' erfc approximation, relative error below 1.2e-7 everywhere.
        var y = t * Math.Exp(-x * (double)x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
            + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return (float)(x >= 0 ? 1 - y : y - 1);
    }

    /// <summary>Softmax along <paramref name="axis"/> (ONNX Softmax, opset 13 semantics).</summary>
    public static Tensor Softmax(Tensor x, int axis = -1)
    {
        var (outer, dim, inner) = Split(x.Shape, Shapes.Axis(axis, x.Rank));
        var y = TensorArena.Allocate(x.Length);
        SoftmaxKernel(x.Data, y, outer, dim, inner, log: false);
        var result = new Tensor(y, (int[])x.Shape.Clone());
        return Autograd.Record(result, "Softmax", [x], g =>
        {
            // dx = y · (g − Σ g·y) along the axis.
            var dx = TensorArena.Allocate(x.Length);
            for (var o = 0; o < outer; o++)
            {
                for (var i = 0; i < inner; i++)
                {
                    var baseIndex = o * dim * inner + i;
                    double dot = 0;
                    for (var d = 0; d < dim; d++)
                    {
                        dot += g.Data[baseIndex + d * inner] * y[baseIndex + d * inner];
                    }
                    for (var d = 0; d < dim; d++)
                    {
                        var k = baseIndex + d * inner;
                        dx[k] = (float)(y[k] * (g.Data[k] - dot));
                    }
                }
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, new Dictionary<string, object> { ["axis"] = (long)Shapes.Axis(axis, x.Rank) });
    }

    /// <summary>log(softmax(x)) along <paramref name="axis"/>, computed stably (ONNX LogSoftmax).</summary>
    public static Tensor LogSoftmax(Tensor x, int axis = -1)
    {
        var (outer, dim, inner) = Split(x.Shape, Shapes.Axis(axis, x.Rank));
        var y = TensorArena.Allocate(x.Length);
        SoftmaxKernel(x.Data, y, outer, dim, inner, log: true);
        var result = new Tensor(y, (int[])x.Shape.Clone());
        return Autograd.Record(result, "LogSoftmax", [x], g =>
        {
            // dx = g − softmax · Σ g along the axis.
            var dx = TensorArena.Allocate(x.Length);
            for (var o = 0; o < outer; o++)
            {
                for (var i = 0; i < inner; i++)
                {
                    var baseIndex = o * dim * inner + i;
                    double sum = 0;
                    for (var d = 0; d < dim; d++)
                    {
                        sum += g.Data[baseIndex + d * inner];
                    }
                    for (var d = 0; d < dim; d++)
                    {
                        var k = baseIndex + d * inner;
                        dx[k] = (float)(g.Data[k] - Math.Exp(y[k]) * sum);
                    }
                }
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, new Dictionary<string, object> { ["axis"] = (long)Shapes.Axis(axis, x.Rank) });
    }

    private static void SoftmaxKernel(float[] x, float[] y, int outer, int dim, int inner, bool log)
    {
        Parallelism.For(outer * inner, Math.Max(1, 4096 / Math.Max(1, dim)), (from, to) =>
        {
            for (var r = from; r < to; r++)
            {
                var o = r / inner;
                var i = r % inner;
                var baseIndex = o * dim * inner + i;
                var max = float.NegativeInfinity;
                for (var d = 0; d < dim; d++)
                {
                    max = MathF.Max(max, x[baseIndex + d * inner]);
                }
                double sum = 0;
                for (var d = 0; d < dim; d++)
                {
                    sum += Math.Exp(x[baseIndex + d * inner] - max);
                }
                var logSum = (float)Math.Log(sum);
                for (var d = 0; d < dim; d++)
                {
                    var k = baseIndex + d * inner;
                    y[k] = log ? x[k] - max - logSum : (float)(Math.Exp(x[k] - max) / sum);
                }
            }
        });
    }

    private static (int Outer, int Dim, int Inner) Split(int[] shape, int axis)
    {
        int outer = 1, inner = 1;
        for (var i = 0; i < axis; i++)
        {
            outer *= shape[i];
        }
        for (var i = axis + 1; i < shape.Length; i++)
        {
            inner *= shape[i];
        }
        return (outer, shape.Length == 0 ? 1 : shape[axis], inner);
    }

    // ------------------------------------------------------------------------------------------- linear algebra

    /// <summary>
    /// Matrix product (ONNX MatMul): [M,K]·[K,N]; a leading batch [...,M,K]·[K,N] (the right matrix shared, as a
    /// linear layer applies to a sequence); or batches of equal shape [...,M,K]·[...,K,N].
    /// </summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        if (a.Rank < 2 || b.Rank < 2)
        {
            throw new ArgumentException($"MatMul needs matrices (rank ≥ 2); got {Shapes.Format(a.Shape)} and {Shapes.Format(b.Shape)}");
        }
        int m = a.Shape[^2], k = a.Shape[^1], n = b.Shape[^1];
        if (b.Shape[^2] != k)
        {
            throw new ArgumentException($"MatMul: inner dimensions differ: {Shapes.Format(a.Shape)} · {Shapes.Format(b.Shape)}");
        }
        var batchA = Shapes.Size(a.Shape.AsSpan(0, a.Rank - 2));
        var shared = b.Rank == 2;
        if (!shared && !a.Shape.AsSpan(0, a.Rank - 2).SequenceEqual(b.Shape.AsSpan(0, b.Rank - 2)))
        {
            throw new ArgumentException($"MatMul: batch dimensions differ: {Shapes.Format(a.Shape)} · {Shapes.Format(b.Shape)}");
        }
        var shape = a.Shape[..^1].Append(n).ToArray();
        var y = TensorArena.Allocate(Shapes.Size(shape));
        if (shared)
        {
            Blas.Sgemm(false, false, batchA * m, n, k, 1, a.Data, k, b.Data, n, 0, y, n);
        }
        else
        {
            for (var i = 0; i < batchA; i++)
            {
                Blas.Sgemm(false, false, m, n, k, 1, a.Data.AsSpan(i * m * k), k, b.Data.AsSpan(i * k * n), n, 0, y.AsSpan(i * m * n), n);
            }
        }
        var result = new Tensor(y, shape);
        return Autograd.Record(result, "MatMul", [a, b], g =>
        {
            Tensor? da = null, db = null;
            if (a.RequiresGrad)
            {
                var d = TensorArena.Allocate(a.Length);
                if (shared)
                {
                    Blas.Sgemm(false, true, batchA * m, k, n, 1, g.Data, n, b.Data, n, 0, d, k);
                }
                else
                {
                    for (var i = 0; i < batchA; i++)
                    {
                        Blas.Sgemm(false, true, m, k, n, 1, g.Data.AsSpan(i * m * n), n, b.Data.AsSpan(i * k * n), n, 0, d.AsSpan(i * m * k), k);
                    }
                }
                da = new Tensor(d, (int[])a.Shape.Clone());
            }
            if (b.RequiresGrad)
            {
                var d = TensorArena.Allocate(b.Length);
                if (shared)
                {
                    Blas.Sgemm(true, false, k, n, batchA * m, 1, a.Data, k, g.Data, n, 0, d, n);
                }
                else
                {
                    for (var i = 0; i < batchA; i++)
                    {
                        Blas.Sgemm(true, false, k, n, m, 1, a.Data.AsSpan(i * m * k), k, g.Data.AsSpan(i * m * n), n, 0, d.AsSpan(i * k * n), n);
                    }
                }
                db = new Tensor(d, (int[])b.Shape.Clone());
            }
            return [da, db];
        });
    }

    /// <summary>
    /// alpha · A' · B' + beta · C (ONNX Gemm): A' is A or Aᵀ ([M,K]), B' is B or Bᵀ ([K,N]), C broadcasts to [M,N].
    /// A linear layer is <c>Gemm(x, W, b, transB: true)</c> with W shaped [out, in].
    /// </summary>
    public static Tensor Gemm(Tensor a, Tensor b, Tensor? c = null, bool transA = false, bool transB = false, float alpha = 1, float beta = 1)
    {
        if (a.Rank != 2 || b.Rank != 2)
        {
            throw new ArgumentException($"Gemm needs two matrices; got {Shapes.Format(a.Shape)} and {Shapes.Format(b.Shape)}");
        }
        var m = transA ? a.Shape[1] : a.Shape[0];
        var k = transA ? a.Shape[0] : a.Shape[1];
        var n = transB ? b.Shape[0] : b.Shape[1];
        if ((transB ? b.Shape[1] : b.Shape[0]) != k)
        {
            throw new ArgumentException($"Gemm: inner dimensions differ: {Shapes.Format(a.Shape)}{(transA ? "ᵀ" : "")} · {Shapes.Format(b.Shape)}{(transB ? "ᵀ" : "")}");
        }
        var y = TensorArena.Allocate(m * n);
        if (c is not null && beta != 0)
        {
            if (c.Rank > 2 || !Shapes.SameShape(Shapes.Broadcast(c.Shape, [m, n]), [m, n]))
            {
                throw new ArgumentException($"Gemm: C {Shapes.Format(c.Shape)} does not broadcast to [{m}, {n}]");
            }
            Kernels.BroadcastInto(c, [m, n], y);
        }
        Blas.Sgemm(transA, transB, m, n, k, alpha, a.Data, a.Shape[1], b.Data, b.Shape[1], c is null ? 0 : beta, y, n);
        var result = new Tensor(y, [m, n]);
        Tensor[] inputs = c is null ? [a, b] : [a, b, c];
        return Autograd.Record(result, "Gemm", inputs, g =>
        {
            Tensor? da = null, db = null, dc = null;
            if (a.RequiresGrad)
            {
                // dA' = alpha · G · B'ᵀ; for transA, dA = (dA')ᵀ = alpha · B' · Gᵀ.
                var d = TensorArena.Allocate(a.Length);
                if (!transA)
                {
                    Blas.Sgemm(false, !transB, m, k, n, alpha, g.Data, n, b.Data, b.Shape[1], 0, d, k);
                }
                else
                {
                    Blas.Sgemm(transB, true, k, m, n, alpha, b.Data, b.Shape[1], g.Data, n, 0, d, m);
                }
                da = new Tensor(d, (int[])a.Shape.Clone());
            }
            if (b.RequiresGrad)
            {
                // dB' = alpha · A'ᵀ · G; for transB, dB = (dB')ᵀ = alpha · Gᵀ · A'.
                var d = TensorArena.Allocate(b.Length);
                if (!transB)
                {
                    Blas.Sgemm(!transA, false, k, n, m, alpha, a.Data, a.Shape[1], g.Data, n, 0, d, n);
                }
                else
                {
                    Blas.Sgemm(true, transA, n, k, m, alpha, g.Data, n, a.Data, a.Shape[1], 0, d, k);
                }
                db = new Tensor(d, (int[])b.Shape.Clone());
            }
            if (c is not null && c.RequiresGrad)
            {
                dc = Kernels.SumTo(beta == 1 ? g : Scale(g, beta), c.Shape);
            }
            return c is null ? [da, db] : [da, db, dc];
        }, new Dictionary<string, object> { ["alpha"] = alpha, ["beta"] = beta, ["transA"] = transA ? 1L : 0L, ["transB"] = transB ? 1L : 0L });
    }

    // ------------------------------------------------------------------------------------------- reductions

    /// <summary>Sum over <paramref name="axes"/> (all when empty) (ONNX ReduceSum).</summary>
    public static Tensor ReduceSum(Tensor x, int[]? axes = null, bool keepDims = false) => Reduce(x, axes, keepDims, ReduceKind.Sum);

    /// <summary>Mean over <paramref name="axes"/> (all when empty) (ONNX ReduceMean).</summary>
    public static Tensor ReduceMean(Tensor x, int[]? axes = null, bool keepDims = false) => Reduce(x, axes, keepDims, ReduceKind.Mean);

    /// <summary>Maximum over <paramref name="axes"/> (all when empty) (ONNX ReduceMax); the gradient goes to the first maximum.</summary>
    public static Tensor ReduceMax(Tensor x, int[]? axes = null, bool keepDims = false) => Reduce(x, axes, keepDims, ReduceKind.Max);

    private enum ReduceKind
    {
        Sum,
        Mean,
        Max,
    }

    private static Tensor Reduce(Tensor x, int[]? axes, bool keepDims, ReduceKind kind)
    {
        var rank = x.Rank;
        var reduced = new bool[rank];
        if (axes is null || axes.Length == 0)
        {
            Array.Fill(reduced, true);
        }
        else
        {
            foreach (var axis in axes)
            {
                reduced[Shapes.Axis(axis, rank)] = true;
            }
        }
        var keptShape = x.Shape.Select((d, i) => reduced[i] ? 1 : d).ToArray();
        var outShape = keepDims ? keptShape : x.Shape.Where((_, i) => !reduced[i]).ToArray();
        var outSize = Shapes.Size(keptShape);
        var count = outSize == 0 ? 0 : x.Length / outSize;
        var strides = Shapes.BroadcastStrides(keptShape, x.Shape);
        var result = new double[outSize];
        var argmax = kind == ReduceKind.Max ? new int[outSize] : null;
        if (kind == ReduceKind.Max)
        {
            Array.Fill(result, double.NegativeInfinity);
        }
        var index = new int[rank];
        for (var i = 0; i < x.Length; i++)
        {
            var o = 0;
            for (var d = 0; d < rank; d++)
            {
                o += index[d] * strides[d];
            }
            var v = x.Data[i];
            if (kind == ReduceKind.Max)
            {
                if (v > result[o])
                {
                    result[o] = v;
                    argmax![o] = i;
                }
            }
            else
            {
                result[o] += v;
            }
            for (var d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < x.Shape[d])
                {
                    break;
                }
                index[d] = 0;
            }
        }
        var y = result.Select(v => (float)(kind == ReduceKind.Mean ? v / count : v)).ToArray();
        var output = new Tensor(y, outShape);
        var axesList = Enumerable.Range(0, rank).Where(d => reduced[d]).Select(d => (long)d).ToArray();
        var name = kind switch { ReduceKind.Sum => "ReduceSum", ReduceKind.Mean => "ReduceMean", _ => "ReduceMax" };
        return Autograd.Record(output, name, [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            if (kind == ReduceKind.Max)
            {
                for (var o = 0; o < outSize; o++)
                {
                    dx[argmax![o]] = g.Data[o];
                }
            }
            else
            {
                var scale = kind == ReduceKind.Mean ? 1f / count : 1f;
                var gi = new int[rank];
                for (var i = 0; i < x.Length; i++)
                {
                    var o = 0;
                    for (var d = 0; d < rank; d++)
                    {
                        o += gi[d] * strides[d];
                    }
                    dx[i] = g.Data[o] * scale;
                    for (var d = rank - 1; d >= 0; d--)
                    {
                        if (++gi[d] < x.Shape[d])
                        {
                            break;
                        }
                        gi[d] = 0;
                    }
                }
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, new Dictionary<string, object> { ["axes"] = axesList, ["keepdims"] = keepDims ? 1L : 0L });
    }

    // ------------------------------------------------------------------------------------------- shapes

    /// <summary>The same values in another shape; one dimension may be −1 (inferred) (ONNX Reshape).</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        var target = (int[])shape.Clone();
        var unknown = Array.IndexOf(target, -1);
        if (unknown >= 0)
        {
            var known = target.Where((d, i) => i != unknown).Aggregate(1, (p, d) => p * d);
            target[unknown] = known == 0 ? 0 : x.Length / known;
        }
        if (Shapes.Size(target) != x.Length)
        {
            throw new ArgumentException($"cannot reshape {Shapes.Format(x.Shape)} ({x.Length} values) to {Shapes.Format(shape)}");
        }
        var y = new Tensor(TensorArena.Copy(x.Data), target);
        return Autograd.Record(y, "Reshape", [x], g => [new Tensor(TensorArena.Copy(g.Data), (int[])x.Shape.Clone())],
            new Dictionary<string, object> { ["shape"] = shape.Select(d => (long)d).ToArray() });
    }

    /// <summary>[d0, ..., d(axis−1)] and the rest flattened into two dimensions (ONNX Flatten).</summary>
    public static Tensor Flatten(Tensor x, int axis = 1)
    {
        var a = axis < 0 ? axis + x.Rank : axis;
        var outer = Shapes.Size(x.Shape.AsSpan(0, a));
        var inner = x.Length / Math.Max(1, outer);
        var y = new Tensor(TensorArena.Copy(x.Data), [outer, inner]);
        return Autograd.Record(y, "Flatten", [x], g => [new Tensor(TensorArena.Copy(g.Data), (int[])x.Shape.Clone())],
            new Dictionary<string, object> { ["axis"] = (long)a });
    }

    /// <summary>Permutes dimensions (ONNX Transpose; default: reverse them).</summary>
    public static Tensor Transpose(Tensor x, params int[] perm)
    {
        var rank = x.Rank;
        var p = perm.Length == 0 ? Enumerable.Range(0, rank).Reverse().ToArray() : perm.Select(a => Shapes.Axis(a, rank)).ToArray();
        if (p.Length != rank || p.Distinct().Count() != rank)
        {
            throw new ArgumentException($"perm {Shapes.Format(perm)} is not a permutation of {rank} dimensions");
        }
        var y = Permute(x.Data, x.Shape, p, out var shape);
        var result = new Tensor(y, shape);
        var inverse = new int[rank];
        for (var i = 0; i < rank; i++)
        {
            inverse[p[i]] = i;
        }
        return Autograd.Record(result, "Transpose", [x], g => [new Tensor(Permute(g.Data, g.Shape, inverse, out var back), back)],
            new Dictionary<string, object> { ["perm"] = p.Select(d => (long)d).ToArray() });
    }

    private static float[] Permute(float[] data, int[] shape, int[] perm, out int[] outShape)
    {
        var rank = shape.Length;
        outShape = perm.Select(a => shape[a]).ToArray();
        var inStrides = Shapes.Strides(shape);
        var result = TensorArena.Allocate(data.Length);
        var index = new int[rank];
        for (var i = 0; i < result.Length; i++)
        {
            var source = 0;
            for (var d = 0; d < rank; d++)
            {
                source += index[d] * inStrides[perm[d]];
            }
            result[i] = data[source];
            for (var d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < outShape[d])
                {
                    break;
                }
                index[d] = 0;
            }
        }
        return result;
    }

    // ------------------------------------------------------------------------------------------- helpers

    /// <summary>a += b in place (same shape), no recording: for gradient accumulation.</summary>
    internal static Tensor AddInPlace(Tensor a, Tensor b)
    {
        if (!Shapes.SameShape(a.Shape, b.Shape))
        {
            throw new InvalidOperationException($"gradient of shape {Shapes.Format(b.Shape)} for a tensor of shape {Shapes.Format(a.Shape)}");
        }
        var ad = a.Data;
        var bd = b.Data;
        for (var i = 0; i < ad.Length; i++)
        {
            ad[i] += bd[i];
        }
        return a;
    }
}
