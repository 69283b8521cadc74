using System.Numerics;
using System.Runtime.InteropServices;

namespace AiMass.Tensors;

/// <summary>
/// Single-precision GEMM: OpenBLAS's <c>cblas_sgemm</c> when a CBLAS library is found at run time (Debian:
/// <c>libopenblas0-pthread</c>), else a managed SIMD kernel. <c>AIMASS_BLAS=managed</c> forces the managed kernel.
/// </summary>
public static unsafe class Blas
{
    private const int RowMajor = 101;
    private const int NoTrans = 111;
    private const int Trans = 112;

    private static readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Native;
    private static readonly delegate* unmanaged<int, void> SetThreads;

    static Blas()
    {
        Backend = "managed";
        if (string.Equals(Environment.GetEnvironmentVariable("AIMASS_BLAS"), "managed", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }
        string[] candidates =
        [
            "libopenblas.so.0", "libopenblas.so", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
            "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0", "libcblas.so.3", "libblas.so.3",
        ];
        foreach (var name in candidates)
        {
            if (NativeLibrary.TryLoad(name, out var handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var sgemm))
            {
                Native = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
                if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var threads))
                {
                    SetThreads = (delegate* unmanaged<int, void>)threads;
                }
                if (NativeLibrary.TryGetExport(handle, "openblas_get_num_threads", out var current))
                {
                    // What the library starts with (OPENBLAS_NUM_THREADS or the cores), restored after small products.
                    _nativeThreads = ((delegate* unmanaged<int>)current)();
                }
                Backend = name;
                return;
            }
        }
    }

    /// <summary>The library GEMM runs on (<c>managed</c> when no CBLAS library was found).</summary>
    public static string Backend { get; }

    /// <summary>True when a native BLAS is used.</summary>
    public static bool IsNative => Native != null;

    /// <summary>Threads the native library uses (OpenBLAS only); the engine's own kernels use <see cref="Parallelism.Threads"/>.</summary>
    public static void SetNativeThreads(int threads)
    {
        _nativeThreads = threads;
        if (SetThreads != null)
        {
            SetThreads(threads);
        }
    }

    /// <summary>
    /// Below this many multiply-adds a product runs on one BLAS thread: waking OpenBLAS's threads costs more than
    /// they save (the MLP's 64×784×256 layer was 40 % slower on two threads than on one).
    /// </summary>
    private const long SmallGemm = 1L << 24;

    private static int _nativeThreads = 1;

    /// <summary>
    /// C = alpha · op(A) · op(B) + beta · C for row-major matrices: op(A) is M×K, op(B) is K×N, C is M×N.
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        if (m == 0 || n == 0)
        {
            return;
        }
        if (Native != null && k > 0)
        {
            var narrow = _nativeThreads > 1 && (long)m * n * k < SmallGemm && SetThreads != null;
            if (narrow)
            {
                SetThreads(1);
            }
            try
            {
                fixed (float* pa = a)
                fixed (float* pb = b)
                fixed (float* pc = c)
                {
                    Native(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
                }
            }
            finally
            {
                if (narrow)
                {
                    SetThreads(_nativeThreads);
                }
            }
            return;
        }
        ManagedSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /// <summary>The managed kernel (also used when forced, and by tests to check the native one).</summary>
    internal static void ManagedSgemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        // Row-major B (K×N) makes the inner loop a contiguous axpy over a row of C; transpose it once when needed.
        float[] bRows;
        int bStride;
        if (transB)
        {
            bRows = new float[k * n];
            for (var j = 0; j < n; j++)
            {
                for (var p = 0; p < k; p++)
                {
                    bRows[p * n + j] = b[j * ldb + p];
                }
            }
            bStride = n;
        }
        else
        {
            bRows = b.ToArray();
            bStride = ldb;
        }
        var aCopy = a.ToArray();
        var cArray = new float[m * ldc];
        c[..Math.Min(c.Length, m * ldc)].CopyTo(cArray);
        // Rows per chunk: about 64k multiply-adds of work each.
        Parallelism.For(m, Math.Max(1, 65_536 / Math.Max(1, n * k)), (from, to) =>
        {
            var row = new float[n];
            for (var i = from; i < to; i++)
            {
                Array.Clear(row);
                for (var p = 0; p < k; p++)
                {
                    var av = alpha * (transA ? aCopy[p * lda + i] : aCopy[i * lda + p]);
                    if (av == 0)
                    {
                        continue;
                    }
                    Axpy(av, bRows.AsSpan(p * bStride, n), row);
                }
                var cRow = cArray.AsSpan(i * ldc, n);
                for (var j = 0; j < n; j++)
                {
                    cRow[j] = (beta == 0 ? 0 : beta * cRow[j]) + row[j];
                }
            }
        });
        cArray.AsSpan(0, Math.Min(c.Length, m * ldc)).CopyTo(c);
    }

    /// <summary>y += a · x, vectorised.</summary>
    private static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var va = new Vector<float>(a);
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x);
            var yv = MemoryMarshal.Cast<float, Vector<float>>(y);
            for (var v = 0; v < xv.Length; v++)
            {
                yv[v] += va * xv[v];
            }
            i = xv.Length * Vector<float>.Count;
        }
        for (; i < x.Length; i++)
        {
            y[i] += a * x[i];
        }
    }
}

/// <summary>
/// The engine's own threads: work is split into chunks that depend only on its size, never on timing, so a run
/// with the same seed and thread count gives bit-identical results.
/// </summary>
public static class Parallelism
{
    private static int _threads = Environment.ProcessorCount;

    /// <summary>Threads for element-wise kernels, im2col and the managed GEMM (default: the processor count).</summary>
    public static int Threads
    {
        get => _threads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _threads = value;
            Blas.SetNativeThreads(value);
        }
    }

    /// <summary>Runs <paramref name="body"/> over <c>[0, count)</c> in chunks of at least <paramref name="grain"/> items.</summary>
    public static void For(int count, int grain, Action<int, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        grain = Math.Max(1, grain);
        var chunks = Math.Min(_threads * 4, (count + grain - 1) / grain);
        if (_threads == 1 || chunks <= 1)
        {
            body(0, count);
            return;
        }
        var size = (count + chunks - 1) / chunks;
        System.Threading.Tasks.Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = _threads }, c =>
        {
            var from = c * size;
            var to = Math.Min(count, from + size);
            if (from < to)
            {
                body(from, to);
            }
        });
    }
}
