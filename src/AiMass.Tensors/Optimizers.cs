namespace AiMass.Tensors;

/// <summary>
/// Updates parameters from their gradients. Update rules follow PyTorch's definitions (torch.optim), so results can
/// be compared step by step. State (moments, step count) is saved and restored by parameter name.
/// </summary>
public abstract class Optimizer
{
    private readonly List<(string Name, Tensor Param)> _parameters;
    private readonly Dictionary<string, float[]> _state = new(StringComparer.Ordinal);

    /// <summary>Creates an optimizer over named parameters.</summary>
    protected Optimizer(IEnumerable<(string Name, Tensor Param)> parameters, float learningRate, float weightDecay)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters.ToList();
        if (_parameters.Select(p => p.Name).Distinct(StringComparer.Ordinal).Count() != _parameters.Count)
        {
            throw new ArgumentException("parameter names must be unique");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(learningRate);
        ArgumentOutOfRangeException.ThrowIfNegative(weightDecay);
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    /// <summary>The step size (a schedule may change it before every step).</summary>
    public float LearningRate { get; set; }

    /// <summary>Weight decay (L2 added to the gradient; decoupled in AdamW).</summary>
    public float WeightDecay { get; }

    /// <summary>Steps taken.</summary>
    public long Steps { get; private set; }

    /// <summary>The parameters with their names.</summary>
    public IReadOnlyList<(string Name, Tensor Param)> Parameters => _parameters;

    /// <summary>Applies one update to every parameter that has a gradient.</summary>
    public void Step()
    {
        Steps++;
        using var _ = Autograd.NoGrad();
        foreach (var (name, param) in _parameters)
        {
            if (param.Grad is { } grad)
            {
                Update(name, param.Span, grad.Span);
            }
        }
    }

    /// <summary>Clears the gradients.</summary>
    public void ZeroGrad()
    {
        foreach (var (_, p) in _parameters)
        {
            p.Grad = null;
        }
    }

    /// <summary>The update of one parameter.</summary>
    protected abstract void Update(string name, Span<float> param, ReadOnlySpan<float> grad);

    /// <summary>A state buffer of a parameter (zeros at first), e.g. <c>State(name, "exp_avg", n)</c>.</summary>
    protected Span<float> State(string name, string key, int length)
    {
        var full = name + "." + key;
        if (!_state.TryGetValue(full, out var buffer))
        {
            _state[full] = buffer = new float[length];
        }
        return buffer;
    }

    /// <summary>Whether a state buffer exists yet.</summary>
    protected bool HasState(string name, string key) => _state.ContainsKey(name + "." + key);

    /// <summary>Step count and every state buffer, by name (copies).</summary>
    public IReadOnlyDictionary<string, float[]> StateDict()
    {
        var state = _state.ToDictionary(p => p.Key, p => (float[])p.Value.Clone(), StringComparer.Ordinal);
        state["__steps"] = [BitConverter.Int32BitsToSingle((int)Steps), BitConverter.Int32BitsToSingle((int)(Steps >> 32))];
        state["__lr"] = [LearningRate];
        return state;
    }

    /// <summary>Restores what <see cref="StateDict"/> returned.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, float[]> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        _state.Clear();
        foreach (var (key, value) in state)
        {
            if (key == "__steps")
            {
                Steps = (uint)BitConverter.SingleToInt32Bits(value[0]) | ((long)BitConverter.SingleToInt32Bits(value[1]) << 32);
            }
            else if (key == "__lr")
            {
                LearningRate = value[0];
            }
            else
            {
                _state[key] = (float[])value.Clone();
            }
        }
    }
}

/// <summary>Stochastic gradient descent with optional momentum (heavy ball or Nesterov) and weight decay.</summary>
public sealed class Sgd(IEnumerable<(string Name, Tensor Param)> parameters, float learningRate, float momentum = 0, bool nesterov = false, float weightDecay = 0, float dampening = 0)
    : Optimizer(parameters, learningRate, weightDecay)
{
    /// <inheritdoc />
    protected override void Update(string name, Span<float> param, ReadOnlySpan<float> grad)
    {
        var first = !HasState(name, "momentum_buffer");
        var buffer = momentum != 0 ? State(name, "momentum_buffer", param.Length) : default;
        for (var i = 0; i < param.Length; i++)
        {
            var g = grad[i] + WeightDecay * param[i];
            if (momentum != 0)
            {
                buffer[i] = first ? g : momentum * buffer[i] + (1 - dampening) * g;
                g = nesterov ? g + momentum * buffer[i] : buffer[i];
            }
            param[i] -= LearningRate * g;
        }
    }
}

/// <summary>AdaGrad: per-coordinate step sizes from the sum of squared gradients.</summary>
public sealed class AdaGrad(IEnumerable<(string Name, Tensor Param)> parameters, float learningRate = 0.01f, float epsilon = 1e-10f, float weightDecay = 0)
    : Optimizer(parameters, learningRate, weightDecay)
{
    /// <inheritdoc />
    protected override void Update(string name, Span<float> param, ReadOnlySpan<float> grad)
    {
        var sum = State(name, "sum", param.Length);
        for (var i = 0; i < param.Length; i++)
        {
            var g = grad[i] + WeightDecay * param[i];
            sum[i] += g * g;
            param[i] -= LearningRate * g / (MathF.Sqrt(sum[i]) + epsilon);
        }
    }
}

/// <summary>RMSprop: step sizes from a moving average of squared gradients, with optional momentum.</summary>
public sealed class RmsProp(IEnumerable<(string Name, Tensor Param)> parameters, float learningRate = 0.01f, float alpha = 0.99f, float epsilon = 1e-8f, float momentum = 0, float weightDecay = 0)
    : Optimizer(parameters, learningRate, weightDecay)
{
    /// <inheritdoc />
    protected override void Update(string name, Span<float> param, ReadOnlySpan<float> grad)
    {
        var square = State(name, "square_avg", param.Length);
        var buffer = momentum > 0 ? State(name, "momentum_buffer", param.Length) : default;
        for (var i = 0; i < param.Length; i++)
        {
            var g = grad[i] + WeightDecay * param[i];
            square[i] = alpha * square[i] + (1 - alpha) * g * g;
            var avg = MathF.Sqrt(square[i]) + epsilon;
            if (momentum > 0)
            {
                buffer[i] = momentum * buffer[i] + g / avg;
                param[i] -= LearningRate * buffer[i];
            }
            else
            {
                param[i] -= LearningRate * g / avg;
            }
        }
    }
}

/// <summary>Adam, with L2 weight decay in the gradient; <see cref="AdamW"/> decouples it.</summary>
public class Adam(IEnumerable<(string Name, Tensor Param)> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0)
    : Optimizer(parameters, learningRate, weightDecay)
{
    /// <summary>Whether weight decay is decoupled from the gradient (AdamW).</summary>
    protected virtual bool Decoupled => false;

    /// <inheritdoc />
    protected override void Update(string name, Span<float> param, ReadOnlySpan<float> grad)
    {
        var m = State(name, "exp_avg", param.Length);
        var v = State(name, "exp_avg_sq", param.Length);
        var bias1 = 1 - Math.Pow(beta1, Steps);
        var bias2 = 1 - Math.Pow(beta2, Steps);
        var stepSize = (float)(LearningRate / bias1);
        var bias2Sqrt = (float)Math.Sqrt(bias2);
        var decoupled = Decoupled;
        var decay = 1 - LearningRate * WeightDecay;
        var l2 = WeightDecay;
        float b1 = beta1, b2 = beta2, c1 = 1 - beta1, c2 = 1 - beta2, eps = epsilon;
        var i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            // The same operations in the same order as the scalar loop below, so results are identical.
            var vp = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(param);
            var vg = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(grad);
            var vm = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(m);
            var vv = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(v);
            for (var k = 0; k < vp.Length; k++)
            {
                var g = vg[k];
                if (decoupled)
                {
                    vp[k] *= decay;
                }
                else
                {
                    g += l2 * vp[k];
                }
                vm[k] = b1 * vm[k] + c1 * g;
                vv[k] = b2 * vv[k] + c2 * g * g;
                vp[k] -= stepSize * vm[k] / (System.Numerics.Vector.SquareRoot(vv[k]) / bias2Sqrt + new System.Numerics.Vector<float>(eps));
            }
            i = vp.Length * System.Numerics.Vector<float>.Count;
        }
        for (; i < param.Length; i++)
        {
            var g = grad[i];
            if (decoupled)
            {
                param[i] *= decay;
            }
            else
            {
                g += l2 * param[i];
            }
            m[i] = b1 * m[i] + c1 * g;
            v[i] = b2 * v[i] + c2 * g * g;
            param[i] -= stepSize * m[i] / (MathF.Sqrt(v[i]) / bias2Sqrt + eps);
        }
    }
}

/// <summary>AdamW: Adam with decoupled weight decay (Loshchilov and Hutter).</summary>
public sealed class AdamW(IEnumerable<(string Name, Tensor Param)> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f)
    : Adam(parameters, learningRate, beta1, beta2, epsilon, weightDecay)
{
    /// <inheritdoc />
    protected override bool Decoupled => true;
}

/// <summary>Gradient clipping.</summary>
public static class GradientClipping
{
    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static float ClipByNorm(IEnumerable<Tensor> parameters, float maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var grads = parameters.Select(p => p.Grad).OfType<Tensor>().ToList();
        double sum = 0;
        foreach (var g in grads)
        {
            foreach (var v in g.Span)
            {
                sum += (double)v * v;
            }
        }
        var norm = (float)Math.Sqrt(sum);
        if (norm > maxNorm && norm > 0)
        {
            var scale = maxNorm / (norm + 1e-6f);
            foreach (var g in grads)
            {
                foreach (ref var v in g.Span)
                {
                    v *= scale;
                }
            }
        }
        return norm;
    }
}

/// <summary>A learning rate as a function of the step (0-based: the rate of the first step is <c>Rate(0)</c>).</summary>
public interface ILearningRateSchedule
{
    /// <summary>The rate for a step.</summary>
    float Rate(long stepIndex);
}

/// <summary>Learning-rate schedules.</summary>
public static class Schedules
{
    /// <summary>The same rate throughout.</summary>
    public static ILearningRateSchedule Constant(float rate) => new Fn(_ => rate);

    /// <summary>Multiplied by <paramref name="gamma"/> every <paramref name="stepSize"/> steps.</summary>
    public static ILearningRateSchedule Step(float baseRate, long stepSize, float gamma) =>
        new Fn(s => baseRate * MathF.Pow(gamma, s / stepSize));

    /// <summary>Multiplied by <paramref name="gamma"/> every step.</summary>
    public static ILearningRateSchedule Exponential(float baseRate, float gamma) => new Fn(s => (float)(baseRate * Math.Pow(gamma, s)));

    /// <summary>Cosine annealing from the base rate to <paramref name="minRate"/> over <paramref name="totalSteps"/>.</summary>
    public static ILearningRateSchedule Cosine(float baseRate, long totalSteps, float minRate = 0) =>
        new Fn(s => (float)(minRate + (baseRate - minRate) * (1 + Math.Cos(Math.PI * Math.Min(s, totalSteps) / totalSteps)) / 2));

    /// <summary>Linear warm-up from 0 over <paramref name="warmupSteps"/>, then <paramref name="after"/> (counted from the end of the warm-up).</summary>
    public static ILearningRateSchedule LinearWarmup(long warmupSteps, ILearningRateSchedule after)
    {
        ArgumentNullException.ThrowIfNull(after);
        return new Fn(s => s < warmupSteps ? after.Rate(0) * (s + 1) / warmupSteps : after.Rate(s - warmupSteps));
    }

    private sealed class Fn(Func<long, float> rate) : ILearningRateSchedule
    {
        public float Rate(long stepIndex) => rate(stepIndex);
    }
}
