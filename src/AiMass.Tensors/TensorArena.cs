using System.Runtime.CompilerServices;

namespace AiMass.Tensors;

/// <summary>
/// Recycles the memory of one training step for the next. Inside <see cref="Enter"/>, the results of operators (and
/// their gradients and scratch buffers) take their arrays from the arena; when the scope ends, those arrays go back to
/// the arena and the tensors that held them are released. The next step, with the same shapes, reuses the same warm
/// memory: no page faults for fresh pages and no large-object-heap churn, which on virtual machines costs more than the
/// arithmetic. Parameters, optimizer state and tensors made by <see cref="Tensor"/>'s factories never come from it.
/// </summary>
/// <remarks>
/// A tensor computed inside a scope must not be used after it: reading a released tensor throws an error that says so
/// (copy values out with <see cref="Tensor.ToArray"/> or <see cref="Tensor.Item"/> inside the scope). Only arrays of
/// at least <see cref="MinLength"/> values are pooled; small ones are cheap for the garbage collector. Scopes are per
/// thread and do not nest.
/// </remarks>
public sealed class TensorArena
{
    /// <summary>Arrays shorter than this are allocated normally.</summary>
    public const int MinLength = 8192;

    [ThreadStatic]
    private static TensorArena? _current;

    private readonly Dictionary<int, Stack<float[]>> _free = [];
    private readonly List<float[]> _lent = [];
    private readonly HashSet<float[]> _owned = new(ReferenceEqualityComparer.Instance);
    private readonly List<Tensor> _tensors = [];
    private long _freeBytes;

    /// <summary>Most memory kept between scopes (default 1 GiB); arrays beyond it are left to the garbage collector.</summary>
    public long MaxPooledBytes { get; init; } = 1L << 30;

    /// <summary>Bytes held for reuse now.</summary>
    public long PooledBytes => _freeBytes;

    /// <summary>Starts a scope on this thread; disposing it recycles everything allocated inside.</summary>
    public IDisposable Enter()
    {
        if (_current is not null)
        {
            throw new InvalidOperationException("a tensor arena scope is already active on this thread; scopes do not nest");
        }
        _current = this;
        return new Scope(this);
    }

    /// <summary>A zeroed array of <paramref name="length"/> values: from the active arena when there is one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float[] Allocate(int length)
    {
        var arena = _current;
        return arena is null || length < MinLength ? new float[length] : arena.Rent(length);
    }

    /// <summary>A copy of <paramref name="source"/> (from the active arena when there is one).</summary>
    internal static float[] Copy(float[] source)
    {
        var arena = _current;
        if (arena is null || source.Length < MinLength)
        {
            return (float[])source.Clone();
        }
        var copy = arena.Rent(source.Length, clear: false);
        source.CopyTo(copy, 0);
        return copy;
    }

    /// <summary>Called by every tensor constructor: a tensor over an arena array is released with the scope.</summary>
    internal static void Track(Tensor tensor, float[] data)
    {
        if (_current is { } arena && data.Length >= MinLength && arena._owned.Contains(data))
        {
            arena._tensors.Add(tensor);
        }
    }

    private float[] Rent(int length, bool clear = true)
    {
        float[] array;
        if (_free.TryGetValue(length, out var stack) && stack.Count > 0)
        {
            array = stack.Pop();
            _freeBytes -= length * 4L;
            if (clear)
            {
                Array.Clear(array);
            }
        }
        else
        {
            array = new float[length];
        }
        _lent.Add(array);
        _owned.Add(array);
        return array;
    }

    private void Exit()
    {
        foreach (var tensor in _tensors)
        {
            tensor.Release();
        }
        _tensors.Clear();
        foreach (var array in _lent)
        {
            if (_freeBytes + array.Length * 4L > MaxPooledBytes)
            {
                continue;
            }
            if (!_free.TryGetValue(array.Length, out var stack))
            {
                _free[array.Length] = stack = new Stack<float[]>();
            }
            stack.Push(array);
            _freeBytes += array.Length * 4L;
        }
        _lent.Clear();
        _owned.Clear();
        _current = null;
    }

    private sealed class Scope(TensorArena arena) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (!_disposed)
            {
                _disposed = true;
                arena.Exit();
            }
        }
    }
}
