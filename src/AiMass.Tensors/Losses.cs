namespace AiMass.Tensors;

/// <summary>Training losses, each the mean over the batch, with fused, numerically stable gradients.</summary>
public static class Losses
{
    /// <summary>
    /// Cross-entropy of logits [N, C] against integer class labels (length N): mean of −log softmax(logits)[label]
    /// (ONNX SoftmaxCrossEntropyLoss, reduction "mean").
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        if (logits.Rank != 2 || logits.Shape[0] != labels.Length)
        {
            throw new ArgumentException($"CrossEntropy needs logits [N, C] and N labels; got {Shapes.Format(logits.Shape)} and {labels.Length} labels");
        }
        var (n, c) = (logits.Shape[0], logits.Shape[1]);
        Tensor logProbs;
        using (Autograd.NoGrad())
        {
            logProbs = Ops.LogSoftmax(logits, 1);
        }
        double loss = 0;
        for (var i = 0; i < n; i++)
        {
            var label = labels[i];
            if ((uint)label >= (uint)c)
            {
                throw new ArgumentOutOfRangeException(nameof(labels), $"label {label} of sample {i} is not a class of {c}");
            }
            loss -= logProbs.Data[i * c + label];
        }
        var y = Tensor.Scalar((float)(loss / n));
        var labelTensor = Tensor.FromArray(labels.Select(l => (float)l).ToArray(), n);
        return Autograd.Record(y, "SoftmaxCrossEntropyLoss", [logits, labelTensor], g =>
        {
            var scale = g.Data[0] / n;
            var dx = TensorArena.Allocate(logits.Length);
            for (var i = 0; i < n; i++)
            {
                for (var j = 0; j < c; j++)
                {
                    dx[i * c + j] = MathF.Exp(logProbs.Data[i * c + j]) * scale;
                }
                dx[i * c + labels[i]] -= scale;
            }
            return [new Tensor(dx, (int[])logits.Shape.Clone()), null];
        }, new Dictionary<string, object> { ["reduction"] = "mean" });
    }

    /// <summary>Binary cross-entropy of logits against targets in [0, 1], mean over all elements, computed stably.</summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        RequireSameShape(logits, targets, "BinaryCrossEntropyWithLogits");
        var n = logits.Length;
        double loss = 0;
        for (var i = 0; i < n; i++)
        {
            var x = logits.Data[i];
            loss += Math.Max(x, 0) - x * targets.Data[i] + Math.Log(1 + Math.Exp(-Math.Abs(x)));
        }
        var y = Tensor.Scalar((float)(loss / n));
        return Autograd.Record(y, "BinaryCrossEntropyWithLogits", [logits, targets], g =>
        {
            var scale = g.Data[0] / n;
            var dx = TensorArena.Allocate(n);
            var dt = targets.RequiresGrad ? TensorArena.Allocate(n) : null;
            for (var i = 0; i < n; i++)
            {
                var x = logits.Data[i];
                var s = x >= 0 ? 1f / (1f + MathF.Exp(-x)) : MathF.Exp(x) / (1f + MathF.Exp(x));
                dx[i] = (s - targets.Data[i]) * scale;
                if (dt is not null)
                {
                    dt[i] = -x * scale;
                }
            }
            return [new Tensor(dx, (int[])logits.Shape.Clone()), dt is null ? null : new Tensor(dt, (int[])targets.Shape.Clone())];
        });
    }

    /// <summary>Mean squared error.</summary>
    public static Tensor MeanSquaredError(Tensor predictions, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(targets);
        RequireSameShape(predictions, targets, "MeanSquaredError");
        var n = predictions.Length;
        double loss = 0;
        for (var i = 0; i < n; i++)
        {
            double d = predictions.Data[i] - targets.Data[i];
            loss += d * d;
        }
        var y = Tensor.Scalar((float)(loss / n));
        return Autograd.Record(y, "MeanSquaredError", [predictions, targets], g =>
        {
            var scale = 2 * g.Data[0] / n;
            var dp = TensorArena.Allocate(n);
            for (var i = 0; i < n; i++)
            {
                dp[i] = (predictions.Data[i] - targets.Data[i]) * scale;
            }
            var gp = new Tensor(dp, (int[])predictions.Shape.Clone());
            return [gp, targets.RequiresGrad ? Ops.Neg(gp) : null];
        });
    }

    /// <summary>Huber loss: quadratic within <paramref name="delta"/> of the target, linear beyond; mean over all elements.</summary>
    public static Tensor Huber(Tensor predictions, Tensor targets, float delta = 1f)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(targets);
        RequireSameShape(predictions, targets, "Huber");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(delta);
        var n = predictions.Length;
        double loss = 0;
        for (var i = 0; i < n; i++)
        {
            double d = predictions.Data[i] - targets.Data[i];
            loss += Math.Abs(d) <= delta ? 0.5 * d * d : delta * (Math.Abs(d) - 0.5 * delta);
        }
        var y = Tensor.Scalar((float)(loss / n));
        return Autograd.Record(y, "HuberLoss", [predictions, targets], g =>
        {
            var scale = g.Data[0] / n;
            var dp = TensorArena.Allocate(n);
            for (var i = 0; i < n; i++)
            {
                var d = predictions.Data[i] - targets.Data[i];
                dp[i] = (MathF.Abs(d) <= delta ? d : delta * MathF.Sign(d)) * scale;
            }
            var gp = new Tensor(dp, (int[])predictions.Shape.Clone());
            return [gp, targets.RequiresGrad ? Ops.Neg(gp) : null];
        }, new Dictionary<string, object> { ["delta"] = delta });
    }

    private static void RequireSameShape(Tensor a, Tensor b, string loss)
    {
        if (!Shapes.SameShape(a.Shape, b.Shape))
        {
            throw new ArgumentException($"{loss}: predictions {Shapes.Format(a.Shape)} and targets {Shapes.Format(b.Shape)} differ in shape");
        }
    }
}
