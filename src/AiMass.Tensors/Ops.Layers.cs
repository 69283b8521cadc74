namespace AiMass.Tensors;

public static partial class Ops
{
    // ------------------------------------------------------------------------------------------- joining and cutting

    /// <summary>Joins tensors along <paramref name="axis"/> (ONNX Concat).</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> inputs, int axis)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0)
        {
            throw new ArgumentException("Concat needs at least one tensor");
        }
        var rank = inputs[0].Rank;
        var a = Shapes.Axis(axis, rank);
        foreach (var t in inputs)
        {
            if (t.Rank != rank || Enumerable.Range(0, rank).Any(d => d != a && t.Shape[d] != inputs[0].Shape[d]))
            {
                throw new ArgumentException($"Concat along axis {a}: {Shapes.Format(t.Shape)} does not match {Shapes.Format(inputs[0].Shape)} outside that axis");
            }
        }
        var shape = (int[])inputs[0].Shape.Clone();
        shape[a] = inputs.Sum(t => t.Shape[a]);
        var (outer, _, inner) = Split(shape, a);
        var y = TensorArena.Allocate(Shapes.Size(shape));
        var offset = 0;
        foreach (var t in inputs)
        {
            var block = t.Shape[a] * inner;
            for (var o = 0; o < outer; o++)
            {
                Array.Copy(t.Data, o * block, y, o * shape[a] * inner + offset, block);
            }
            offset += block;
        }
        var result = new Tensor(y, shape);
        var parts = inputs.ToArray();
        return Autograd.Record(result, "Concat", parts, g =>
        {
            var grads = new Tensor?[parts.Length];
            var off = 0;
            for (var k = 0; k < parts.Length; k++)
            {
                var block = parts[k].Shape[a] * inner;
                var d = TensorArena.Allocate(parts[k].Length);
                for (var o = 0; o < outer; o++)
                {
                    Array.Copy(g.Data, o * shape[a] * inner + off, d, o * block, block);
                }
                off += block;
                grads[k] = new Tensor(d, (int[])parts[k].Shape.Clone());
            }
            return grads;
        }, new Dictionary<string, object> { ["axis"] = (long)a });
    }

    /// <summary>Elements <c>starts[i] ≤ index &lt; ends[i]</c> along <paramref name="axes"/> with step 1 (ONNX Slice); negative bounds count from the end.</summary>
    public static Tensor Slice(Tensor x, int[] starts, int[] ends, int[] axes)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (starts.Length != ends.Length || starts.Length != axes.Length)
        {
            throw new ArgumentException("Slice: starts, ends and axes must have the same length");
        }
        var lo = new int[x.Rank];
        var hi = (int[])x.Shape.Clone();
        for (var i = 0; i < axes.Length; i++)
        {
            var a = Shapes.Axis(axes[i], x.Rank);
            var size = x.Shape[a];
            lo[a] = Math.Clamp(starts[i] < 0 ? starts[i] + size : starts[i], 0, size);
            hi[a] = Math.Clamp(ends[i] < 0 ? ends[i] + size : ends[i], lo[a], size);
        }
        var shape = hi.Select((h, d) => h - lo[d]).ToArray();
        var strides = Shapes.Strides(x.Shape);
        var y = TensorArena.Allocate(Shapes.Size(shape));
        var sources = new int[y.Length];
        var index = new int[x.Rank];
        for (var i = 0; i < y.Length; i++)
        {
            var source = 0;
            for (var d = 0; d < x.Rank; d++)
            {
                source += (index[d] + lo[d]) * strides[d];
            }
            sources[i] = source;
            y[i] = x.Data[source];
            for (var d = x.Rank - 1; d >= 0; d--)
            {
                if (++index[d] < shape[d])
                {
                    break;
                }
                index[d] = 0;
            }
        }
        var result = new Tensor(y, shape);
        return Autograd.Record(result, "Slice", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            for (var i = 0; i < sources.Length; i++)
            {
                dx[sources[i]] = g.Data[i];
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, new Dictionary<string, object>
        {
            ["starts"] = lo.Select(v => (long)v).ToArray(),
            ["ends"] = hi.Select(v => (long)v).ToArray(),
            ["axes"] = Enumerable.Range(0, x.Rank).Select(v => (long)v).ToArray(),
        });
    }

    /// <summary>
    /// Rows of <paramref name="data"/> picked by integer <paramref name="indices"/> along axis 0 (ONNX Gather; an
    /// embedding lookup). The result has shape indices.Shape + data.Shape[1..].
    /// </summary>
    public static Tensor Gather(Tensor data, Tensor indices)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(indices);
        var rows = data.Shape[0];
        var width = data.Length / Math.Max(1, rows);
        var picks = new int[indices.Length];
        for (var i = 0; i < picks.Length; i++)
        {
            var v = indices.Data[i];
            var k = (int)v;
            if (k != v || k < -rows || k >= rows)
            {
                throw new ArgumentOutOfRangeException(nameof(indices), $"index {v} at position {i} is not a row of {rows}");
            }
            picks[i] = k < 0 ? k + rows : k;
        }
        var shape = indices.Shape.Concat(data.Shape.Skip(1)).ToArray();
        var y = TensorArena.Allocate(picks.Length * width);
        for (var i = 0; i < picks.Length; i++)
        {
            Array.Copy(data.Data, picks[i] * width, y, i * width, width);
        }
        var result = new Tensor(y, shape);
        return Autograd.Record(result, "Gather", [data, indices], g =>
        {
            var d = TensorArena.Allocate(data.Length);
            for (var i = 0; i < picks.Length; i++)
            {
                var src = g.Data.AsSpan(i * width, width);
                var dst = d.AsSpan(picks[i] * width, width);
                for (var j = 0; j < width; j++)
                {
                    dst[j] += src[j];
                }
            }
            return [new Tensor(d, (int[])data.Shape.Clone()), null];
        }, new Dictionary<string, object> { ["axis"] = 0L });
    }

    // ------------------------------------------------------------------------------------------- convolution

    /// <summary>
    /// 2-D convolution of x [N, C, H, W] with w [M, C/groups, kH, kW] and an optional bias [M] (ONNX Conv), by im2col
    /// and one GEMM per group over the whole batch.
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor w, Tensor? bias = null, int strideH = 1, int strideW = 1, int padH = 0, int padW = 0,
        int dilationH = 1, int dilationW = 1, int groups = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(w);
        if (x.Rank != 4 || w.Rank != 4)
        {
            throw new ArgumentException($"Conv2d needs x [N, C, H, W] and w [M, C/groups, kH, kW]; got {Shapes.Format(x.Shape)} and {Shapes.Format(w.Shape)}");
        }
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], wd = x.Shape[3];
        int m = w.Shape[0], kh = w.Shape[2], kw = w.Shape[3];
        if (groups < 1 || c % groups != 0 || m % groups != 0 || w.Shape[1] != c / groups)
        {
            throw new ArgumentException($"Conv2d: {c} input channels and {m} filters do not split into {groups} group(s) matching w {Shapes.Format(w.Shape)}");
        }
        if (bias is not null && (bias.Rank != 1 || bias.Shape[0] != m))
        {
            throw new ArgumentException($"Conv2d: bias must be [{m}], got {Shapes.Format(bias.Shape)}");
        }
        var geo = new ConvGeometry(n, c / groups, h, wd, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW);
        if (geo.OutH <= 0 || geo.OutW <= 0)
        {
            throw new ArgumentException($"Conv2d: a {kh}x{kw} kernel (dilation {dilationH}x{dilationW}, padding {padH}x{padW}) does not fit a {h}x{wd} input");
        }
        var mg = m / groups;
        var ckk = geo.Channels * kh * kw;
        var hw = geo.OutH * geo.OutW;
        var xd = x.Data;
        var wdata = w.Data;
        var y = TensorArena.Allocate(n * m * hw);
        if (bias is not null)
        {
            var bd = bias.Data;
            for (var img = 0; img < n; img++)
            {
                for (var f = 0; f < m; f++)
                {
                    y.AsSpan((img * m + f) * hw, hw).Fill(bd[f]);
                }
            }
        }
        // Per image and group: im2col into a per-thread scratch block [ckk, hw] that stays in cache, then one GEMM
        // straight into y [N, M, HW]. Columns are not kept: backward recomputes them, which costs less than writing
        // and re-reading them through memory.
        for (var gi = 0; gi < groups; gi++)
        {
            var group = gi;
            PerImage(n, img =>
            {
                var cols = Scratch.Columns(ckk * hw);
                geo.Im2ColImage(xd, c, group, img, cols);
                Blas.Sgemm(false, false, mg, hw, ckk, 1, wdata.AsSpan(group * mg * ckk), ckk, cols, hw,
                    bias is null ? 0 : 1, y.AsSpan((img * m + group * mg) * hw), hw);
            });
        }
        var result = new Tensor(y, [n, m, geo.OutH, geo.OutW]);
        Tensor[] inputs = bias is null ? [x, w] : [x, w, bias];
        return Autograd.Record(result, "Conv", inputs, g =>
        {
            var gd = g.Data;
            var dw = w.RequiresGrad ? TensorArena.Allocate(w.Length) : null;
            var dx = x.RequiresGrad ? TensorArena.Allocate(x.Length) : null;
            var db = bias is { RequiresGrad: true } ? TensorArena.Allocate(m) : null;
            // dW sums over images in a fixed number of partial sums (independent of the thread count), added in order;
            // dx gets each image's columns gradient folded back at once (images write disjoint parts of dx).
            var parts = Math.Min(n, ConvPartialSums);
            var partial = dw is null ? null : TensorArena.Allocate(parts * mg * ckk);
            for (var gi = 0; gi < groups; gi++)
            {
                var group = gi;
                PerImage(parts, part =>
                {
                    var first = part * n / parts;
                    for (int img = first, end = (part + 1) * n / parts; img < end; img++)
                    {
                        var gImg = gd.AsSpan((img * m + group * mg) * hw, mg * hw);
                        if (partial is not null)
                        {
                            var cols = Scratch.Columns(ckk * hw);
                            geo.Im2ColImage(xd, c, group, img, cols);
                            Blas.Sgemm(false, true, mg, ckk, hw, 1, gImg, hw, cols, hw, img == first ? 0 : 1, partial.AsSpan(part * mg * ckk, mg * ckk), ckk);
                        }
                        if (dx is not null)
                        {
                            var dcols = Scratch.ColumnGradients(ckk * hw);
                            Blas.Sgemm(true, false, ckk, hw, mg, 1, wdata.AsSpan(group * mg * ckk), ckk, gImg, hw, 0, dcols, hw);
                            geo.Col2ImImage(dcols, dx, c, group, img);
                        }
                    }
                });
                if (partial is not null)
                {
                    var target = dw!.AsSpan(gi * mg * ckk, mg * ckk);
                    for (var part = 0; part < parts; part++)
                    {
                        ConvGeometry.AddInto(target, partial.AsSpan(part * mg * ckk, mg * ckk));
                    }
                }
                if (db is not null)
                {
                    for (var f = 0; f < mg; f++)
                    {
                        double sum = 0;
                        for (var img = 0; img < n; img++)
                        {
                            foreach (var v in gd.AsSpan((img * m + gi * mg + f) * hw, hw))
                            {
                                sum += v;
                            }
                        }
                        db[gi * mg + f] = (float)sum;
                    }
                }
            }
            var grads = new Tensor?[inputs.Length];
            grads[0] = dx is null ? null : new Tensor(dx, (int[])x.Shape.Clone());
            grads[1] = dw is null ? null : new Tensor(dw, (int[])w.Shape.Clone());
            if (inputs.Length == 3)
            {
                grads[2] = db is null ? null : new Tensor(db, [m]);
            }
            return grads;
        }, new Dictionary<string, object>
        {
            ["kernel_shape"] = new long[] { kh, kw },
            ["strides"] = new long[] { strideH, strideW },
            ["pads"] = new long[] { padH, padW, padH, padW },
            ["dilations"] = new long[] { dilationH, dilationW },
            ["group"] = (long)groups,
        });
    }

    /// <summary>Per-thread scratch blocks of the convolution (reused across calls, so they stay warm).</summary>
    private static class Scratch
    {
        [ThreadStatic]
        private static float[]? _columns;

        [ThreadStatic]
        private static float[]? _gradients;

        public static Span<float> Columns(int length) => Get(ref _columns, length);

        public static Span<float> ColumnGradients(int length) => Get(ref _gradients, length);

        private static Span<float> Get(ref float[]? buffer, int length)
        {
            if (buffer is null || buffer.Length < length)
            {
                buffer = new float[length];
            }
            return buffer.AsSpan(0, length);
        }
    }

    /// <summary>Partial sums of a convolution's weight gradient over the batch (fixed, so results do not depend on threads).</summary>
    private const int ConvPartialSums = 8;

    /// <summary>
    /// Runs one single-threaded GEMM per item on the engine's threads: small per-image products parallelise better
    /// over images than inside the BLAS library. Items write disjoint outputs, so the result does not depend on threads.
    /// </summary>
    private static void PerImage(int count, Action<int> body)
    {
        if (Parallelism.Threads == 1 || count == 1)
        {
            for (var i = 0; i < count; i++)
            {
                body(i);
            }
            return;
        }
        Blas.SetNativeThreads(1);
        try
        {
            Parallelism.For(count, 1, (from, to) =>
            {
                for (var i = from; i < to; i++)
                {
                    body(i);
                }
            });
        }
        finally
        {
            Blas.SetNativeThreads(Parallelism.Threads);
        }
    }

    /// <summary>Max over windows (ONNX MaxPool); the gradient goes to the first maximum of each window.</summary>
    public static Tensor MaxPool2d(Tensor x, int kernel, int stride = 0, int padding = 0) => Pool(x, kernel, stride == 0 ? kernel : stride, padding, max: true);

    /// <summary>Mean over windows, padding not counted (ONNX AveragePool, count_include_pad = 0).</summary>
    public static Tensor AvgPool2d(Tensor x, int kernel, int stride = 0, int padding = 0) => Pool(x, kernel, stride == 0 ? kernel : stride, padding, max: false);

    /// <summary>Mean over H and W: [N, C, H, W] → [N, C, 1, 1] (ONNX GlobalAveragePool).</summary>
    public static Tensor GlobalAveragePool(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 4)
        {
            throw new ArgumentException($"GlobalAveragePool needs [N, C, H, W]; got {Shapes.Format(x.Shape)}");
        }
        var hw = x.Shape[2] * x.Shape[3];
        var planes = x.Shape[0] * x.Shape[1];
        var y = TensorArena.Allocate(planes);
        for (var p = 0; p < planes; p++)
        {
            double s = 0;
            foreach (var v in x.Data.AsSpan(p * hw, hw))
            {
                s += v;
            }
            y[p] = (float)(s / hw);
        }
        var result = new Tensor(y, [x.Shape[0], x.Shape[1], 1, 1]);
        return Autograd.Record(result, "GlobalAveragePool", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            for (var p = 0; p < planes; p++)
            {
                dx.AsSpan(p * hw, hw).Fill(g.Data[p] / hw);
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        });
    }

    private static Tensor Pool(Tensor x, int kernel, int stride, int padding, bool max)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 4)
        {
            throw new ArgumentException($"pooling needs [N, C, H, W]; got {Shapes.Format(x.Shape)}");
        }
        int planes = x.Shape[0] * x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var oh = (h + 2 * padding - kernel) / stride + 1;
        var ow = (w + 2 * padding - kernel) / stride + 1;
        if (oh <= 0 || ow <= 0 || padding * 2 > kernel)
        {
            throw new ArgumentException($"pooling: a {kernel}x{kernel} window with padding {padding} does not fit a {h}x{w} input");
        }
        var y = TensorArena.Allocate(planes * oh * ow);
        var from = max ? new int[y.Length] : null;
        var counts = max ? null : new int[oh * ow];
        var xd = x.Data;
        if (max && kernel == 2 && stride == 2 && padding == 0)
        {
            // The common 2x2 window: four loads and selects (the first maximum in scan order wins, as below).
            Parallelism.For(planes, 1, (p0, p1) =>
            {
                for (var p = p0; p < p1; p++)
                {
                    for (var i = 0; i < oh; i++)
                    {
                        var top = p * h * w + 2 * i * w;
                        var o = p * oh * ow + i * ow;
                        for (var j = 0; j < ow; j++)
                        {
                            var a = top + 2 * j;
                            var c = a + w;
                            float va = xd[a], vb = xd[a + 1], vc = xd[c], vd = xd[c + 1];
                            // Branch-free: comparisons become 0/1 integers (random data would mispredict branches).
                            var g1 = System.Runtime.CompilerServices.Unsafe.BitCast<bool, byte>(vb > va);
                            var g2 = System.Runtime.CompilerServices.Unsafe.BitCast<bool, byte>(vd > vc);
                            var m1 = MathF.Max(va, vb);
                            var m2 = MathF.Max(vc, vd);
                            var g3 = System.Runtime.CompilerServices.Unsafe.BitCast<bool, byte>(m2 > m1);
                            var i1 = a + g1;
                            var i2 = c + g2;
                            y[o + j] = MathF.Max(m1, m2);
                            from![o + j] = i1 + (i2 - i1) * g3;
                        }
                    }
                }
            });
        }
        else
        {
            Parallelism.For(planes, 1, (p0, p1) =>
            {
                for (var p = p0; p < p1; p++)
                {
                    for (var i = 0; i < oh; i++)
                    {
                        for (var j = 0; j < ow; j++)
                        {
                            var best = float.NegativeInfinity;
                            var bestAt = -1;
                            double sum = 0;
                            var count = 0;
                            for (var a = 0; a < kernel; a++)
                            {
                                var r = i * stride - padding + a;
                                if ((uint)r >= (uint)h)
                                {
                                    continue;
                                }
                                for (var b = 0; b < kernel; b++)
                                {
                                    var col = j * stride - padding + b;
                                    if ((uint)col >= (uint)w)
                                    {
                                        continue;
                                    }
                                    var at = p * h * w + r * w + col;
                                    var v = xd[at];
                                    if (v > best)
                                    {
                                        best = v;
                                        bestAt = at;
                                    }
                                    sum += v;
                                    count++;
                                }
                            }
                            var o = p * oh * ow + i * ow + j;
                            if (max)
                            {
                                y[o] = best;
                                from![o] = bestAt;
                            }
                            else
                            {
                                y[o] = (float)(sum / count);
                                counts![i * ow + j] = count;
                            }
                        }
                    }
                }
            });
        }
        var result = new Tensor(y, [x.Shape[0], x.Shape[1], oh, ow]);
        var attributes = new Dictionary<string, object>
        {
            ["kernel_shape"] = new long[] { kernel, kernel },
            ["strides"] = new long[] { stride, stride },
            ["pads"] = new long[] { padding, padding, padding, padding },
        };
        return Autograd.Record(result, max ? "MaxPool" : "AveragePool", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            var gd = g.Data;
            if (max)
            {
                for (var o = 0; o < y.Length; o++)
                {
                    dx[from![o]] += gd[o];
                }
            }
            else
            {
                for (var p = 0; p < planes; p++)
                {
                    for (var i = 0; i < oh; i++)
                    {
                        for (var j = 0; j < ow; j++)
                        {
                            var share = g.Data[p * oh * ow + i * ow + j] / counts![i * ow + j];
                            for (var a = 0; a < kernel; a++)
                            {
                                var r = i * stride - padding + a;
                                for (var b = 0; b < kernel && (uint)r < (uint)h; b++)
                                {
                                    var col = j * stride - padding + b;
                                    if ((uint)col < (uint)w)
                                    {
                                        dx[p * h * w + r * w + col] += share;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, attributes);
    }

    // ------------------------------------------------------------------------------------------- normalisation

    /// <summary>
    /// Batch normalisation of x [N, C, ...] per channel (ONNX BatchNormalization). Training uses the batch's mean and
    /// (biased) variance and updates the running statistics in place: running = momentum · running + (1 − momentum) · batch
    /// (the unbiased variance, as PyTorch does); inference uses the running statistics.
    /// </summary>
    public static Tensor BatchNormalization(Tensor x, Tensor scale, Tensor bias, Tensor runningMean, Tensor runningVar, bool training,
        float momentum = 0.9f, float epsilon = 1e-5f)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2)
        {
            throw new ArgumentException($"BatchNormalization needs [N, C, ...]; got {Shapes.Format(x.Shape)}");
        }
        int n = x.Shape[0], c = x.Shape[1];
        var spatial = x.Length / Math.Max(1, n * c);
        var count = n * spatial;
        var mean = TensorArena.Allocate(c);
        var invStd = TensorArena.Allocate(c);
        for (var ch = 0; ch < c; ch++)
        {
            if (!training)
            {
                mean[ch] = runningMean.Data[ch];
                invStd[ch] = 1f / MathF.Sqrt(runningVar.Data[ch] + epsilon);
                continue;
            }
            double s = 0, s2 = 0;
            for (var i = 0; i < n; i++)
            {
                foreach (var v in x.Data.AsSpan((i * c + ch) * spatial, spatial))
                {
                    s += v;
                    s2 += (double)v * v;
                }
            }
            var mu = s / count;
            var variance = Math.Max(0, s2 / count - mu * mu);
            mean[ch] = (float)mu;
            invStd[ch] = (float)(1 / Math.Sqrt(variance + epsilon));
            runningMean.Data[ch] = momentum * runningMean.Data[ch] + (1 - momentum) * (float)mu;
            runningVar.Data[ch] = momentum * runningVar.Data[ch] + (1 - momentum) * (float)(count > 1 ? variance * count / (count - 1) : variance);
        }
        var xhat = TensorArena.Allocate(x.Length);
        var y = TensorArena.Allocate(x.Length);
        for (var i = 0; i < n; i++)
        {
            for (var ch = 0; ch < c; ch++)
            {
                var o = (i * c + ch) * spatial;
                for (var k = 0; k < spatial; k++)
                {
                    xhat[o + k] = (x.Data[o + k] - mean[ch]) * invStd[ch];
                    y[o + k] = scale.Data[ch] * xhat[o + k] + bias.Data[ch];
                }
            }
        }
        var result = new Tensor(y, (int[])x.Shape.Clone());
        return Autograd.Record(result, "BatchNormalization", [x, scale, bias, runningMean, runningVar], g =>
        {
            var dScale = TensorArena.Allocate(c);
            var dBias = TensorArena.Allocate(c);
            var dx = TensorArena.Allocate(x.Length);
            for (var ch = 0; ch < c; ch++)
            {
                double sg = 0, sgx = 0;
                for (var i = 0; i < n; i++)
                {
                    var o = (i * c + ch) * spatial;
                    for (var k = 0; k < spatial; k++)
                    {
                        sg += g.Data[o + k];
                        sgx += g.Data[o + k] * xhat[o + k];
                    }
                }
                dScale[ch] = (float)sgx;
                dBias[ch] = (float)sg;
                for (var i = 0; i < n; i++)
                {
                    var o = (i * c + ch) * spatial;
                    for (var k = 0; k < spatial; k++)
                    {
                        dx[o + k] = training
                            ? (float)(scale.Data[ch] * invStd[ch] * (g.Data[o + k] - sg / count - xhat[o + k] * sgx / count))
                            : scale.Data[ch] * invStd[ch] * g.Data[o + k];
                    }
                }
            }
            return [new Tensor(dx, (int[])x.Shape.Clone()), new Tensor(dScale, [c]), new Tensor(dBias, [c]), null, null];
        }, new Dictionary<string, object> { ["epsilon"] = epsilon, ["momentum"] = momentum, ["training_mode"] = training ? 1L : 0L });
    }

    /// <summary>Layer normalisation over the dimensions from <paramref name="axis"/> on (ONNX LayerNormalization).</summary>
    public static Tensor LayerNormalization(Tensor x, Tensor scale, Tensor bias, int axis = -1, float epsilon = 1e-5f)
    {
        ArgumentNullException.ThrowIfNull(x);
        var a = Shapes.Axis(axis, x.Rank);
        var width = Shapes.Size(x.Shape.AsSpan(a));
        var rows = x.Length / Math.Max(1, width);
        if (scale.Length != width || bias.Length != width)
        {
            throw new ArgumentException($"LayerNormalization: scale and bias must have {width} values (the normalised dimensions {Shapes.Format(x.Shape.AsSpan(a))})");
        }
        var xhat = TensorArena.Allocate(x.Length);
        var invStd = TensorArena.Allocate(rows);
        var y = TensorArena.Allocate(x.Length);
        for (var r = 0; r < rows; r++)
        {
            var row = x.Data.AsSpan(r * width, width);
            double s = 0, s2 = 0;
            foreach (var v in row)
            {
                s += v;
                s2 += (double)v * v;
            }
            var mu = s / width;
            var inv = (float)(1 / Math.Sqrt(Math.Max(0, s2 / width - mu * mu) + epsilon));
            invStd[r] = inv;
            for (var k = 0; k < width; k++)
            {
                var h = (float)(row[k] - mu) * inv;
                xhat[r * width + k] = h;
                y[r * width + k] = scale.Data[k] * h + bias.Data[k];
            }
        }
        var result = new Tensor(y, (int[])x.Shape.Clone());
        return Autograd.Record(result, "LayerNormalization", [x, scale, bias], g =>
        {
            var dScale = TensorArena.Allocate(width);
            var dBias = TensorArena.Allocate(width);
            var dx = TensorArena.Allocate(x.Length);
            var gh = new double[width];
            for (var r = 0; r < rows; r++)
            {
                double sum = 0, sumH = 0;
                for (var k = 0; k < width; k++)
                {
                    var gv = g.Data[r * width + k];
                    var h = xhat[r * width + k];
                    dScale[k] += gv * h;
                    dBias[k] += gv;
                    gh[k] = gv * scale.Data[k];
                    sum += gh[k];
                    sumH += gh[k] * h;
                }
                for (var k = 0; k < width; k++)
                {
                    dx[r * width + k] = (float)(invStd[r] * (gh[k] - sum / width - xhat[r * width + k] * sumH / width));
                }
            }
            return [new Tensor(dx, (int[])x.Shape.Clone()), new Tensor(dScale, (int[])scale.Shape.Clone()), new Tensor(dBias, (int[])bias.Shape.Clone())];
        }, new Dictionary<string, object> { ["axis"] = (long)a, ["epsilon"] = epsilon });
    }

    /// <summary>
    /// Inverted dropout: in training, zeroes each value with probability <paramref name="p"/> and scales the rest by
    /// 1/(1−p), drawing from <paramref name="random"/>; outside training it is the identity and records nothing.
    /// </summary>
    public static Tensor Dropout(Tensor x, float p, bool training, Random random)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(random);
        if (p is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability must be in [0, 1), got {p}");
        }
        if (!training || p == 0)
        {
            return x;
        }
        var keep = 1f / (1 - p);
        var mask = TensorArena.Allocate(x.Length);
        for (var i = 0; i < mask.Length; i++)
        {
            mask[i] = random.NextSingle() >= p ? keep : 0f;
        }
        var y = TensorArena.Allocate(x.Length);
        for (var i = 0; i < y.Length; i++)
        {
            y[i] = x.Data[i] * mask[i];
        }
        var result = new Tensor(y, (int[])x.Shape.Clone());
        return Autograd.Record(result, "Dropout", [x], g =>
        {
            var dx = TensorArena.Allocate(x.Length);
            for (var i = 0; i < dx.Length; i++)
            {
                dx[i] = g.Data[i] * mask[i];
            }
            return [new Tensor(dx, (int[])x.Shape.Clone())];
        }, new Dictionary<string, object> { ["ratio"] = p });
    }
}

/// <summary>Geometry of a 2-D convolution and the im2col / col2im transforms over a whole batch.</summary>
internal sealed record ConvGeometry(int Batch, int Channels, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW)
{
    public int OutH { get; } = (H + 2 * PH - DH * (KH - 1) - 1) / SH + 1;

    public int OutW { get; } = (W + 2 * PW - DW * (KW - 1) - 1) / SW + 1;

    /// <summary>
    /// A row of the columns: its channel and kernel position, and the output columns [first, last) whose input column
    /// oj·SW − PW + kj·DW lies inside [0, W) (one contiguous range; the others read padding).
    /// </summary>
    private (int Channel, int Ki, int Kj, int First, int Last) Row(int row)
    {
        var kj = row % KW;
        return (row / (KH * KW), row / KW % KH, kj, Math.Max(0, CeilDiv(PW - kj * DW, SW)), Math.Min(OutW, CeilDiv(W + PW - kj * DW, SW)));
    }

    /// <summary>The columns [Channels·KH·KW, OutH·OutW] of one image and channel group of x [Batch, totalChannels, H, W].</summary>
    public void Im2ColImage(float[] x, int totalChannels, int group, int image, Span<float> columns)
    {
        int outH = OutH, outW = OutW, h = H, w = W, kh = KH, kw = KW, sh = SH, sw = SW, ph = PH, pw = PW, dh = DH, dw = DW;
        var hw = outH * outW;
        for (var row = 0; row < Channels * kh * kw; row++)
        {
            var (ch, ki, kj, first, last) = Row(row);
            var dst = columns.Slice(row * hw, hw);
            var plane = ((image * totalChannels) + group * Channels + ch) * h * w;
            for (var oi = 0; oi < outH; oi++)
            {
                var r = oi * sh - ph + ki * dh;
                var line = dst.Slice(oi * outW, outW);
                if ((uint)r >= (uint)h || first >= last)
                {
                    line.Clear();
                    continue;
                }
                line[..first].Clear();
                line[last..].Clear();
                var source = plane + r * w - pw + kj * dw;
                if (sw == 1)
                {
                    x.AsSpan(source + first, last - first).CopyTo(line[first..last]);
                }
                else
                {
                    for (var oj = first; oj < last; oj++)
                    {
                        line[oj] = x[source + oj * sw];
                    }
                }
            }
        }
    }

    /// <summary>Adds one image's columns gradient (laid out as <see cref="Im2ColImage"/> makes it) back into dx.</summary>
    public void Col2ImImage(ReadOnlySpan<float> columns, float[] dx, int totalChannels, int group, int image)
    {
        int outH = OutH, outW = OutW, h = H, w = W, kh = KH, kw = KW, sh = SH, sw = SW, ph = PH, pw = PW, dh = DH, dw = DW;
        var hw = outH * outW;
        for (var row = 0; row < Channels * kh * kw; row++)
        {
            var (ch, ki, kj, first, last) = Row(row);
            if (first >= last)
            {
                continue;
            }
            var plane = ((image * totalChannels) + group * Channels + ch) * h * w;
            for (var oi = 0; oi < outH; oi++)
            {
                var r = oi * sh - ph + ki * dh;
                if ((uint)r >= (uint)h)
                {
                    continue;
                }
                var line = columns.Slice(row * hw + oi * outW, outW);
                var target = plane + r * w - pw + kj * dw;
                if (sw == 1)
                {
                    AddInto(dx.AsSpan(target + first, last - first), line[first..last]);
                }
                else
                {
                    for (var oj = first; oj < last; oj++)
                    {
                        dx[target + oj * sw] += line[oj];
                    }
                }
            }
        }
    }

    /// <summary>destination += source, element-wise (SIMD).</summary>
    internal static void AddInto(Span<float> destination, ReadOnlySpan<float> source)
    {
        var i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var vd = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(destination);
            var vs = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(source);
            for (var k = 0; k < vd.Length; k++)
            {
                vd[k] += vs[k];
            }
            i = vd.Length * System.Numerics.Vector<float>.Count;
        }
        for (; i < destination.Length; i++)
        {
            destination[i] += source[i];
        }
    }

    /// <summary>⌈a / b⌉ for b &gt; 0 and any sign of a.</summary>
    private static int CeilDiv(int a, int b) => a >= 0 ? (a + b - 1) / b : -(-a / b);
}
