using System.Globalization;
using System.Text;

namespace AiMass.Tensors;

/// <summary>
/// A dense, row-major float32 tensor. Operations on tensors that require gradients record the ONNX operator that
/// produced them, so <see cref="Backward"/> can run reverse-mode differentiation and the exporter can write the same
/// graph as ONNX.
/// </summary>
public sealed class Tensor
{
    internal Tensor(float[] data, int[] shape, bool requiresGrad = false)
    {
        var size = Shapes.Size(shape);
        if (data.Length != size)
        {
            throw new ArgumentException($"{data.Length} values do not fill shape {Shapes.Format(shape)} ({size} values)");
        }
        _data = data;
        Shape = shape;
        RequiresGrad = requiresGrad;
        TensorArena.Track(this, data);
    }

    private readonly float[] _data;
    private bool _released;

    /// <summary>The values, row-major.</summary>
    internal float[] Data => _released
        ? throw new InvalidOperationException($"this tensor ({Shapes.Format(Shape)}) was computed inside a TensorArena scope (a training step) that has ended, and its memory is reused; copy what you need with ToArray() or Item() inside the step")
        : _data;

    /// <summary>Marks the tensor's memory as given back to its arena.</summary>
    internal void Release() => _released = true;

    /// <summary>The dimensions (empty for a scalar).</summary>
    public int[] Shape { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Number of values.</summary>
    public int Length => Data.Length;

    /// <summary>Whether gradients flow to this tensor (parameters, and everything computed from them).</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>The gradient accumulated by <see cref="Backward"/>, shaped like this tensor.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>A name (parameters: <c>layer1.weight</c>); becomes the initializer's name on export.</summary>
    public string? Name { get; set; }

    /// <summary>The operation that produced this tensor, when it was recorded.</summary>
    internal Node? Creator { get; set; }

    /// <summary>The values as a span (for reading; writing to it bypasses autograd).</summary>
    public Span<float> Span => Data;

    /// <summary>One value by its indices.</summary>
    [System.Runtime.CompilerServices.IndexerName("At")]
    public float this[params int[] index]
    {
        get => Data[Shapes.Offset(Shape, index)];
        set => Data[Shapes.Offset(Shape, index)] = value;
    }

    /// <summary>The value of a one-element tensor.</summary>
    public float Item() => Length == 1 ? Data[0] : throw new InvalidOperationException($"Item() needs a single value; this tensor has shape {Shapes.Format(Shape)}");

    /// <summary>A copy of the values.</summary>
    public float[] ToArray() => (float[])Data.Clone();

    /// <summary>Creates a tensor from values (copied) and a shape.</summary>
    public static Tensor FromArray(float[] values, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        return new Tensor((float[])values.Clone(), (int[])shape.Clone());
    }

    /// <summary>A scalar.</summary>
    public static Tensor Scalar(float value) => new([value], []);

    /// <summary>Zeros.</summary>
    public static Tensor Zeros(params int[] shape) => new(new float[Shapes.Size(shape)], (int[])shape.Clone());

    /// <summary>Ones.</summary>
    public static Tensor Ones(params int[] shape) => Full(1f, shape);

    /// <summary>Every value <paramref name="value"/>.</summary>
    public static Tensor Full(float value, params int[] shape)
    {
        var data = new float[Shapes.Size(shape)];
        Array.Fill(data, value);
        return new Tensor(data, (int[])shape.Clone());
    }

    /// <summary>Normally distributed values (Box-Muller on <paramref name="random"/>).</summary>
    public static Tensor RandomNormal(Random random, float mean, float std, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(random);
        var data = new float[Shapes.Size(shape)];
        for (var i = 0; i < data.Length; i += 2)
        {
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            var r = Math.Sqrt(-2.0 * Math.Log(u1));
            data[i] = (float)(mean + std * r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < data.Length)
            {
                data[i + 1] = (float)(mean + std * r * Math.Sin(2 * Math.PI * u2));
            }
        }
        return new Tensor(data, (int[])shape.Clone());
    }

    /// <summary>Uniformly distributed values in <c>[low, high)</c>.</summary>
    public static Tensor RandomUniform(Random random, float low, float high, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(random);
        var data = new float[Shapes.Size(shape)];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (float)(low + (high - low) * random.NextDouble());
        }
        return new Tensor(data, (int[])shape.Clone());
    }

    /// <summary>A tensor that shares nothing with this one and records no history.</summary>
    public Tensor Detach() => new((float[])Data.Clone(), (int[])Shape.Clone());

    /// <summary>
    /// Reverse-mode differentiation from this scalar: fills <see cref="Grad"/> of every tensor that requires
    /// gradients and contributed to it (gradients accumulate until cleared).
    /// </summary>
    public void Backward()
    {
        if (Length != 1)
        {
            throw new InvalidOperationException($"Backward() starts from a scalar (a loss); this tensor has shape {Shapes.Format(Shape)}");
        }
        Autograd.Backward(this, Ones(Shape));
    }

    /// <summary>a + b with broadcasting.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);

    /// <summary>a − b with broadcasting.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Ops.Sub(a, b);

    /// <summary>Element-wise a · b with broadcasting.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);

    /// <summary>Element-wise a / b with broadcasting.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Ops.Div(a, b);

    /// <summary>−x.</summary>
    public static Tensor operator -(Tensor x) => Ops.Neg(x);

    /// <summary>x · s.</summary>
    public static Tensor operator *(Tensor x, float s) => Ops.Scale(x, s);

    /// <summary>a + b (named alternative to the operator).</summary>
    public static Tensor Add(Tensor left, Tensor right) => Ops.Add(left, right);

    /// <summary>a − b (named alternative to the operator).</summary>
    public static Tensor Subtract(Tensor left, Tensor right) => Ops.Sub(left, right);

    /// <summary>a · b (named alternative to the operator).</summary>
    public static Tensor Multiply(Tensor left, Tensor right) => Ops.Mul(left, right);

    /// <summary>x · s (named alternative to the operator).</summary>
    public static Tensor Multiply(Tensor left, float right) => Ops.Scale(left, right);

    /// <summary>a / b (named alternative to the operator).</summary>
    public static Tensor Divide(Tensor left, Tensor right) => Ops.Div(left, right);

    /// <summary>−x (named alternative to the operator).</summary>
    public static Tensor Negate(Tensor item) => Ops.Neg(item);

    /// <summary>Shape and the first values, for debugging.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("Tensor").Append(Shapes.Format(Shape)).Append(" [");
        for (var i = 0; i < Math.Min(8, Length); i++)
        {
            sb.Append(i == 0 ? "" : ", ").Append(Data[i].ToString("G6", CultureInfo.InvariantCulture));
        }
        return sb.Append(Length > 8 ? ", ...]" : "]").ToString();
    }
}

/// <summary>Shape arithmetic: sizes, offsets, broadcasting.</summary>
internal static class Shapes
{
    public static int Size(ReadOnlySpan<int> shape)
    {
        long size = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"dimension {d} is negative");
            }
            size *= d;
            if (size > Array.MaxLength)
            {
                throw new ArgumentException("the tensor is too large for one array");
            }
        }
        return (int)size;
    }

    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public static int[] Strides(ReadOnlySpan<int> shape)
    {
        var strides = new int[shape.Length];
        var s = 1;
        for (var i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= shape[i];
        }
        return strides;
    }

    public static int Offset(int[] shape, int[] index)
    {
        if (index.Length != shape.Length)
        {
            throw new ArgumentException($"{index.Length} indices for a tensor of rank {shape.Length}");
        }
        var offset = 0;
        for (var i = 0; i < shape.Length; i++)
        {
            if ((uint)index[i] >= (uint)shape[i])
            {
                throw new ArgumentOutOfRangeException(nameof(index), $"index {index[i]} is outside dimension {i} of size {shape[i]}");
            }
            offset = offset * shape[i] + index[i];
        }
        return offset;
    }

    /// <summary>The broadcast shape of two shapes (NumPy / ONNX multidirectional broadcasting).</summary>
    public static int[] Broadcast(int[] a, int[] b)
    {
        var rank = Math.Max(a.Length, b.Length);
        var result = new int[rank];
        for (var i = 0; i < rank; i++)
        {
            var da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            var db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
            {
                throw new ArgumentException($"shapes {Format(a)} and {Format(b)} do not broadcast (dimension {i}: {da} vs {db})");
            }
            result[i] = da == 1 ? db : da;
        }
        return result;
    }

    /// <summary>Strides of <paramref name="shape"/> seen through the broadcast <paramref name="target"/> shape (0 on broadcast dimensions).</summary>
    public static int[] BroadcastStrides(int[] shape, int[] target)
    {
        var strides = Strides(shape);
        var result = new int[target.Length];
        var offset = target.Length - shape.Length;
        for (var i = 0; i < shape.Length; i++)
        {
            result[i + offset] = shape[i] == 1 && target[i + offset] != 1 ? 0 : strides[i];
        }
        return result;
    }

    public static bool SameShape(int[] a, int[] b) => a.AsSpan().SequenceEqual(b);

    /// <summary>A negative axis counts from the end.</summary>
    public static int Axis(int axis, int rank) =>
        axis < -rank || axis >= Math.Max(rank, 1) ? throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is outside a tensor of rank {rank}") : axis < 0 ? axis + rank : axis;
}
