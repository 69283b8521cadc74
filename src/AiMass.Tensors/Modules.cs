namespace AiMass.Tensors;

/// <summary>
/// A layer or model: a forward function with named parameters (<c>layer1.weight</c>) and named buffers (batch norm's
/// running statistics), a training flag, and children. Parameters are flat float buffers addressable by name, which
/// is what checkpoints, the ONNX exporter and the parameter server work with.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1716", Justification = "The name every deep-learning user knows (PyTorch's nn.Module); C# is the language of this API.")]
public abstract class Module
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = [];
    private readonly List<(string Name, Tensor Tensor)> _buffers = [];
    private readonly List<(string Name, Module Module)> _children = [];

    /// <summary>Whether the module is in training mode (dropout active, batch norm on batch statistics).</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Computes the output.</summary>
    public abstract Tensor Forward(Tensor input);

    /// <summary>Switches this module and its children to training mode.</summary>
    public Module Train(bool training = true)
    {
        Training = training;
        foreach (var (_, child) in _children)
        {
            child.Train(training);
        }
        return this;
    }

    /// <summary>Switches to inference mode.</summary>
    public Module Eval() => Train(false);

    /// <summary>Every parameter with its dotted name, children first in registration order.</summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> NamedParameters() => Named(Collect(m => m._parameters));

    /// <summary>Every buffer (state that is saved but not trained) with its dotted name.</summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> NamedBuffers() => Named(Collect(m => m._buffers));

    // The tensors take their dotted names (the exporter names initializers after them).
    private static List<(string Name, Tensor Tensor)> Named(List<(string Name, Tensor Tensor)> list)
    {
        foreach (var (name, t) in list)
        {
            t.Name = name;
        }
        return list;
    }

    /// <summary>The parameters.</summary>
    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Tensor);

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters())
        {
            p.Grad = null;
        }
    }

    /// <summary>Parameters and buffers by name (copies), for checkpoints.</summary>
    public IReadOnlyDictionary<string, float[]> StateDict()
    {
        var state = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, t) in NamedParameters().Concat(NamedBuffers()))
        {
            state[name] = t.ToArray();
        }
        return state;
    }

    /// <summary>Loads parameters and buffers by name; every one must be present with the right size.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, float[]> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        foreach (var (name, t) in NamedParameters().Concat(NamedBuffers()))
        {
            if (!state.TryGetValue(name, out var values))
            {
                throw new ArgumentException($"the state has no '{name}'");
            }
            if (values.Length != t.Length)
            {
                throw new ArgumentException($"'{name}' has {values.Length} values in the state but {t.Length} in the model {Shapes.Format(t.Shape)}");
            }
            values.CopyTo(t.Span);
        }
    }

    /// <summary>Registers a trainable parameter under <paramref name="name"/>.</summary>
    protected Tensor Parameter(string name, Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        value.RequiresGrad = true;
        _parameters.Add((name, value));
        return value;
    }

    /// <summary>Registers a buffer under <paramref name="name"/>.</summary>
    protected Tensor Buffer(string name, Tensor value)
    {
        _buffers.Add((name, value));
        return value;
    }

    /// <summary>Registers a child module under <paramref name="name"/>.</summary>
    protected T Child<T>(string name, T module)
        where T : Module
    {
        _children.Add((name, module));
        return module;
    }

    private List<(string Name, Tensor Tensor)> Collect(Func<Module, List<(string Name, Tensor Tensor)>> select)
    {
        var result = new List<(string Name, Tensor Tensor)>();
        foreach (var (name, child) in _children)
        {
            foreach (var (inner, t) in child.Collect(select))
            {
                result.Add(($"{name}.{inner}", t));
            }
        }
        result.AddRange(select(this));
        return result;
    }
}

/// <summary>Weight initialisation from a seeded generator.</summary>
public static class Init
{
    /// <summary>Kaiming (He) uniform for ReLU networks: U(−b, b) with b = √(6 / fan_in).</summary>
    public static Tensor KaimingUniform(Random random, int fanIn, params int[] shape)
    {
        var bound = MathF.Sqrt(6f / Math.Max(1, fanIn));
        return Tensor.RandomUniform(random, -bound, bound, shape);
    }

    /// <summary>Xavier (Glorot) uniform: U(−b, b) with b = √(6 / (fan_in + fan_out)).</summary>
    public static Tensor XavierUniform(Random random, int fanIn, int fanOut, params int[] shape)
    {
        var bound = MathF.Sqrt(6f / Math.Max(1, fanIn + fanOut));
        return Tensor.RandomUniform(random, -bound, bound, shape);
    }

    /// <summary>Weights by the chosen scheme.</summary>
    public static Tensor Weights(WeightInit init, Random random, int fanIn, int fanOut, params int[] shape) => init switch
    {
        WeightInit.Kaiming => KaimingUniform(random, fanIn, shape),
        WeightInit.Xavier => XavierUniform(random, fanIn, fanOut, shape),
        _ => Tensor.RandomUniform(random, -1f / MathF.Sqrt(Math.Max(1, fanIn)), 1f / MathF.Sqrt(Math.Max(1, fanIn)), shape),
    };

    /// <summary>Bias initialisation as PyTorch does it: U(−1/√fan_in, 1/√fan_in).</summary>
    public static Tensor Bias(Random random, int fanIn, int size)
    {
        var bound = 1f / MathF.Sqrt(Math.Max(1, fanIn));
        return Tensor.RandomUniform(random, -bound, bound, size);
    }
}

/// <summary>How a layer's weights start.</summary>
public enum WeightInit
{
    /// <summary>
    /// PyTorch's default for linear and convolution layers (Kaiming uniform with a = √5, that is U(±1/√fan_in)), so a
    /// model ported from PyTorch starts from the same distribution.
    /// </summary>
    Default,

    /// <summary>Kaiming uniform (for ReLU-family activations).</summary>
    Kaiming,

    /// <summary>Xavier uniform (for tanh/sigmoid, or linear outputs).</summary>
    Xavier,
}

/// <summary>y = x · Wᵀ + b, W shaped [out, in] (exported as ONNX Gemm with transB).</summary>
public sealed class Linear : Module
{
    /// <summary>Creates the layer with weights from <paramref name="random"/>.</summary>
    public Linear(int inFeatures, int outFeatures, Random random, bool bias = true, WeightInit init = WeightInit.Default)
    {
        ArgumentNullException.ThrowIfNull(random);
        Weight = Parameter("weight", Init.Weights(init, random, inFeatures, outFeatures, outFeatures, inFeatures));
        BiasTensor = bias ? Parameter("bias", Init.Bias(random, inFeatures, outFeatures)) : null;
    }

    /// <summary>The weight [out, in].</summary>
    public Tensor Weight { get; }

    /// <summary>The bias [out], if any.</summary>
    public Tensor? BiasTensor { get; }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return input.Rank == 2
            ? Ops.Gemm(input, Weight, BiasTensor, transB: true)
            : BiasTensor is null ? Ops.MatMul(input, Ops.Transpose(Weight)) : Ops.Add(Ops.MatMul(input, Ops.Transpose(Weight)), BiasTensor);
    }
}

/// <summary>2-D convolution layer, weight [out, in/groups, k, k].</summary>
public sealed class Conv2d : Module
{
    private readonly int _stride;
    private readonly int _padding;
    private readonly int _dilation;
    private readonly int _groups;

    /// <summary>Creates the layer (square kernel, stride, padding and dilation).</summary>
    public Conv2d(int inChannels, int outChannels, int kernel, Random random, int stride = 1, int padding = 0, int dilation = 1, int groups = 1, bool bias = true,
        WeightInit init = WeightInit.Default)
    {
        ArgumentNullException.ThrowIfNull(random);
        var fanIn = inChannels / groups * kernel * kernel;
        Weight = Parameter("weight", Init.Weights(init, random, fanIn, outChannels * kernel * kernel, outChannels, inChannels / groups, kernel, kernel));
        BiasTensor = bias ? Parameter("bias", Init.Bias(random, fanIn, outChannels)) : null;
        (_stride, _padding, _dilation, _groups) = (stride, padding, dilation, groups);
    }

    /// <summary>The weight.</summary>
    public Tensor Weight { get; }

    /// <summary>The bias, if any.</summary>
    public Tensor? BiasTensor { get; }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) =>
        Ops.Conv2d(input, Weight, BiasTensor, _stride, _stride, _padding, _padding, _dilation, _dilation, _groups);
}

/// <summary>Batch normalisation over the channels of [N, C, H, W] (or [N, C]).</summary>
public sealed class BatchNorm : Module
{
    private readonly float _momentum;
    private readonly float _epsilon;

    /// <summary>Creates the layer: scale 1, bias 0, running mean 0, running variance 1.</summary>
    public BatchNorm(int channels, float momentum = 0.9f, float epsilon = 1e-5f)
    {
        Scale = Parameter("weight", Tensor.Ones(channels));
        Shift = Parameter("bias", Tensor.Zeros(channels));
        RunningMean = Buffer("running_mean", Tensor.Zeros(channels));
        RunningVar = Buffer("running_var", Tensor.Ones(channels));
        (_momentum, _epsilon) = (momentum, epsilon);
    }

    /// <summary>γ.</summary>
    public Tensor Scale { get; }

    /// <summary>β.</summary>
    public Tensor Shift { get; }

    /// <summary>Running mean (updated in training).</summary>
    public Tensor RunningMean { get; }

    /// <summary>Running variance (updated in training).</summary>
    public Tensor RunningVar { get; }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) =>
        Ops.BatchNormalization(input, Scale, Shift, RunningMean, RunningVar, Training, _momentum, _epsilon);
}

/// <summary>Layer normalisation over the last dimension.</summary>
public sealed class LayerNorm : Module
{
    private readonly float _epsilon;

    /// <summary>Creates the layer.</summary>
    public LayerNorm(int features, float epsilon = 1e-5f)
    {
        Scale = Parameter("weight", Tensor.Ones(features));
        Shift = Parameter("bias", Tensor.Zeros(features));
        _epsilon = epsilon;
    }

    /// <summary>γ.</summary>
    public Tensor Scale { get; }

    /// <summary>β.</summary>
    public Tensor Shift { get; }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.LayerNormalization(input, Scale, Shift, -1, _epsilon);
}

/// <summary>A lookup table [count, dim]: integer ids → vectors.</summary>
public sealed class Embedding : Module
{
    /// <summary>Creates the table with N(0, 1) entries.</summary>
    public Embedding(int count, int dim, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        Table = Parameter("weight", Tensor.RandomNormal(random, 0, 1, count, dim));
    }

    /// <summary>The table.</summary>
    public Tensor Table { get; }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.Gather(Table, input);
}

/// <summary>Dropout, active only in training mode; draws from its own seeded generator.</summary>
public sealed class Dropout(float p, Random random) : Module
{
    /// <summary>The generator (its state is part of a checkpoint).</summary>
    public Random Random { get; } = random;

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.Dropout(input, p, Training, Random);
}

/// <summary>An activation or another stateless function as a module.</summary>
public sealed class Lambda(string name, Func<Tensor, Tensor> function) : Module
{
    /// <summary>What it computes.</summary>
    public string Name { get; } = name;

    /// <summary>ReLU.</summary>
    public static Lambda Relu() => new("relu", Ops.Relu);

    /// <summary>Sigmoid.</summary>
    public static Lambda Sigmoid() => new("sigmoid", Ops.Sigmoid);

    /// <summary>Tanh.</summary>
    public static Lambda Tanh() => new("tanh", Ops.Tanh);

    /// <summary>GELU.</summary>
    public static Lambda Gelu() => new("gelu", Ops.Gelu);

    /// <summary>LeakyReLU.</summary>
    public static Lambda LeakyRelu(float alpha = 0.01f) => new("leaky_relu", x => Ops.LeakyRelu(x, alpha));

    /// <summary>Flatten to [N, rest].</summary>
    public static Lambda Flatten() => new("flatten", x => Ops.Flatten(x, 1));

    /// <summary>Max pooling.</summary>
    public static Lambda MaxPool(int kernel, int stride = 0) => new("max_pool", x => Ops.MaxPool2d(x, kernel, stride));

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => function(input);
}

/// <summary>Modules applied in order; children are named by their index (<c>0.weight</c>, <c>3.bias</c>).</summary>
public sealed class Sequential : Module
{
    private readonly List<Module> _layers = [];

    /// <summary>Creates the chain.</summary>
    public Sequential(params Module[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        for (var i = 0; i < layers.Length; i++)
        {
            _layers.Add(Child(i.ToString(System.Globalization.CultureInfo.InvariantCulture), layers[i]));
        }
    }

    /// <summary>The layers.</summary>
    public IReadOnlyList<Module> Layers => _layers;

    /// <inheritdoc />
    public override Tensor Forward(Tensor input)
    {
        var x = input;
        foreach (var layer in _layers)
        {
            x = layer.Forward(x);
        }
        return x;
    }
}
