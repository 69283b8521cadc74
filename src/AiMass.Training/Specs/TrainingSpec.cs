namespace AiMass.Training.Specs;

/// <summary>
/// A training run as <c>aimass train SPEC.yaml</c> describes it (the YAML fields are the snake_case names of these
/// properties; docs/training.md lists them). AiMass.Specs reads it; <see cref="SpecTrainer"/> runs it.
/// </summary>
public sealed record TrainingSpec
{
    /// <summary>Name of the run (and of the job when submitted).</summary>
    public required string Name { get; init; }

    /// <summary>The model.</summary>
    public required ModelSection Model { get; init; }

    /// <summary>The data.</summary>
    public required DataSection Data { get; init; }

    /// <summary>How to train.</summary>
    public TrainingSection Training { get; init; } = new();

    /// <summary>How the model is exported.</summary>
    public ExportSection Export { get; init; } = new();

    /// <summary>Where the exported model is registered, if anywhere.</summary>
    public RegisterSection? Register { get; init; }

    /// <summary>Job settings for <c>--submit</c>.</summary>
    public JobSection Job { get; init; } = new();

    /// <summary>Directory of the spec file: relative paths in the spec are relative to it.</summary>
    public string BaseDirectory { get; init; } = Environment.CurrentDirectory;

    /// <summary>A path of the spec resolved against <see cref="BaseDirectory"/>.</summary>
    public string Resolve(string path) => Path.GetFullPath(path, BaseDirectory);
}

/// <summary>Built-in architectures and user classes.</summary>
public enum ModelType
{
    /// <summary>Multi-layer perceptron: <c>hidden</c> layer sizes, <c>activation</c>, <c>dropout</c>.</summary>
    Mlp,

    /// <summary>Convolutional network: <c>channels</c> (3x3 convolutions, each followed by 2x2 max pooling), <c>fc</c>, <c>dropout</c>, <c>batch_norm</c>.</summary>
    Cnn,

    /// <summary>A class implementing <see cref="IModelFactory"/> from a user assembly.</summary>
    Class,
}

/// <summary>The model section.</summary>
public sealed record ModelSection
{
    /// <summary>Architecture.</summary>
    public ModelType Type { get; init; } = ModelType.Mlp;

    /// <summary>Hidden layer sizes of an MLP.</summary>
    public IReadOnlyList<int> Hidden { get; init; } = [256, 128];

    /// <summary>Activation: relu, gelu, tanh, sigmoid, leaky_relu.</summary>
    public string Activation { get; init; } = "relu";

    /// <summary>Dropout after each hidden layer (0: none).</summary>
    public double Dropout { get; init; }

    /// <summary>Convolution channels of a CNN.</summary>
    public IReadOnlyList<int> Channels { get; init; } = [32, 64];

    /// <summary>Convolution kernel size.</summary>
    public int Kernel { get; init; } = 3;

    /// <summary>Width of the CNN's fully connected layer.</summary>
    public int Fc { get; init; } = 128;

    /// <summary>Batch normalisation after each convolution.</summary>
    public bool BatchNorm { get; init; }

    /// <summary>Weight initialisation: default, kaiming, xavier.</summary>
    public string Init { get; init; } = "default";

    /// <summary>Number of outputs (classes); default: the largest training label + 1, or the number of targets.</summary>
    public int? Outputs { get; init; }

    /// <summary>Assembly of a <see cref="ModelType.Class"/> model.</summary>
    public string? Assembly { get; init; }

    /// <summary>Full type name of a <see cref="ModelType.Class"/> model.</summary>
    public string? Class { get; init; }

    /// <summary>Hyperparameters passed to a class model (and recorded with the registered version).</summary>
    public IReadOnlyDictionary<string, string> Params { get; init; } = new Dictionary<string, string>();
}

/// <summary>Data formats.</summary>
public enum DataFormat
{
    /// <summary>IDX files (MNIST, Fashion-MNIST), plain or gzip.</summary>
    Idx,

    /// <summary>CSV with a header.</summary>
    Csv,
}

/// <summary>One split of the data.</summary>
/// <param name="Path">IDX images or the CSV file.</param>
/// <param name="Labels">IDX labels.</param>
public sealed record DataFiles(string Path, string? Labels);

/// <summary>The data section.</summary>
public sealed record DataSection
{
    /// <summary>Format of the files.</summary>
    public DataFormat Format { get; init; } = DataFormat.Idx;

    /// <summary>Training split.</summary>
    public required DataFiles Train { get; init; }

    /// <summary>Evaluation split.</summary>
    public DataFiles? Eval { get; init; }

    /// <summary>Use only the first N training examples.</summary>
    public int? Limit { get; init; }

    /// <summary>Use only the first N evaluation examples.</summary>
    public int? EvalLimit { get; init; }

    /// <summary>CSV label columns.</summary>
    public IReadOnlyList<string> Label { get; init; } = [];

    /// <summary>CSV: labels are real-valued targets.</summary>
    public bool Regression { get; init; }

    /// <summary>CSV: read row by row every epoch instead of loading it.</summary>
    public bool Stream { get; init; }

    /// <summary>Raw values are multiplied by this (1/255 for pixels); part of the exported model.</summary>
    public float Scale { get; init; } = 1f;

    /// <summary>Mean subtracted after scaling (one value or one per feature); part of the exported model.</summary>
    public IReadOnlyList<float>? Mean { get; init; }

    /// <summary>Standard deviation divided by; part of the exported model.</summary>
    public IReadOnlyList<float>? Std { get; init; }

    /// <summary>Shuffle the training data every epoch.</summary>
    public bool Shuffle { get; init; } = true;
}

/// <summary>Optimizer settings.</summary>
public sealed record OptimizerSection
{
    /// <summary>sgd, adagrad, rmsprop, adam, adamw.</summary>
    public string Type { get; init; } = "adam";

    /// <summary>Learning rate.</summary>
    public float LearningRate { get; init; } = 1e-3f;

    /// <summary>Momentum (sgd, rmsprop).</summary>
    public float Momentum { get; init; }

    /// <summary>Nesterov momentum (sgd).</summary>
    public bool Nesterov { get; init; }

    /// <summary>Weight decay.</summary>
    public float? WeightDecay { get; init; }

    /// <summary>Adam's beta1.</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>Adam's beta2.</summary>
    public float Beta2 { get; init; } = 0.999f;
}

/// <summary>Learning-rate schedule.</summary>
public sealed record ScheduleSection
{
    /// <summary>constant, step, exponential, cosine.</summary>
    public string Type { get; init; } = "constant";

    /// <summary>Linear warm-up steps before the schedule.</summary>
    public long WarmupSteps { get; init; }

    /// <summary>Steps between decays (step).</summary>
    public long StepSize { get; init; } = 1000;

    /// <summary>Decay factor (step, exponential).</summary>
    public float Gamma { get; init; } = 0.1f;

    /// <summary>Final rate (cosine).</summary>
    public float MinRate { get; init; }
}

/// <summary>The training section.</summary>
public sealed record TrainingSection
{
    /// <summary>Epochs in total.</summary>
    public int? Epochs { get; init; }

    /// <summary>Steps in total.</summary>
    public long? MaxSteps { get; init; }

    /// <summary>Examples per batch.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Seed.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Threads (default: the machine's cores, or the job's CPUs).</summary>
    public int? Threads { get; init; }

    /// <summary>Optimizer.</summary>
    public OptimizerSection Optimizer { get; init; } = new();

    /// <summary>Schedule.</summary>
    public ScheduleSection Schedule { get; init; } = new();

    /// <summary>Clip the global gradient norm.</summary>
    public float? ClipNorm { get; init; }

    /// <summary>Loss for regression: mse or huber.</summary>
    public string Loss { get; init; } = "auto";

    /// <summary>Checkpoint every N steps.</summary>
    public long? CheckpointEverySteps { get; init; } = 500;

    /// <summary>Checkpoint when this much time passed.</summary>
    public TimeSpan? CheckpointEvery { get; init; }

    /// <summary>Checkpoints kept.</summary>
    public int KeepCheckpoints { get; init; } = 3;

    /// <summary>Evaluate every N steps (besides every epoch).</summary>
    public long? EvalEverySteps { get; init; }

    /// <summary>Evaluate when this much time passed.</summary>
    public TimeSpan? EvalEvery { get; init; }

    /// <summary>Metrics of evaluations (default: accuracy for classification, mae and rmse for regression).</summary>
    public IReadOnlyList<string>? Metrics { get; init; }

    /// <summary>Early stopping on an evaluation metric.</summary>
    public EarlyStoppingSection? EarlyStopping { get; init; }

    /// <summary>Log (and report) every N steps.</summary>
    public long LogEverySteps { get; init; } = 100;
}

/// <summary>Early stopping.</summary>
/// <param name="Metric">The watched metric.</param>
public sealed record EarlyStoppingSection(string Metric)
{
    /// <summary>Evaluations without improvement before stopping.</summary>
    public int Patience { get; init; } = 3;

    /// <summary>Smallest change that counts as improvement.</summary>
    public double MinDelta { get; init; }
}

/// <summary>The export section.</summary>
public sealed record ExportSection
{
    /// <summary>ONNX opset.</summary>
    public int Opset { get; init; } = 17;

    /// <summary>Export (and register) the best evaluation by this metric instead of the final model.</summary>
    public string? BestMetric { get; init; }

    /// <summary>Best exports kept.</summary>
    public int KeepBest { get; init; } = 1;
}

/// <summary>The register section.</summary>
/// <param name="Model">Registered model name.</param>
public sealed record RegisterSection(string Model)
{
    /// <summary>Alias moved to the new version.</summary>
    public string? Alias { get; init; }

    /// <summary>Description of the version.</summary>
    public string? Description { get; init; }

    /// <summary>Tags of the version.</summary>
    public IReadOnlyDictionary<string, string> Tags { get; init; } = new Dictionary<string, string>();
}

/// <summary>Job settings for <c>aimass train --submit</c>.</summary>
public sealed record JobSection
{
    /// <summary>CPU request, e.g. <c>2</c> or <c>1500m</c>.</summary>
    public string Cpu { get; init; } = "2";

    /// <summary>Memory request, e.g. <c>2Gi</c>.</summary>
    public string Memory { get; init; } = "2Gi";

    /// <summary>GPUs.</summary>
    public int Gpus { get; init; }

    /// <summary>Queue.</summary>
    public string? Queue { get; init; }

    /// <summary>Priority.</summary>
    public int Priority { get; init; }

    /// <summary>Restarts after failure; each resumes from the last reported checkpoint.</summary>
    public int MaxRestarts { get; init; } = 3;

    /// <summary>Walltime, e.g. <c>2h</c>.</summary>
    public string? Walltime { get; init; }
}
