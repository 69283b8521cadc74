using AiMass.Training.Specs;

namespace AiMass.Specs.Tests;

public sealed class TrainingSpecReaderTests
{
    private static string Examples([System.Runtime.CompilerServices.CallerFilePath] string here = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "..", "..", "examples", "fashion-mnist"));

    [Fact]
    public void The_fashion_mnist_examples_read_with_every_section()
    {
        var mlp = TrainingSpecReader.ReadFile(Path.Combine(Examples(), "mlp.yaml"));
        Assert.Equal("fashion-mnist-mlp", mlp.Name);
        Assert.Equal(ModelType.Mlp, mlp.Model.Type);
        Assert.Equal([256, 128], mlp.Model.Hidden);
        Assert.Equal(DataFormat.Idx, mlp.Data.Format);
        Assert.EndsWith("train-labels-idx1-ubyte.gz", mlp.Data.Train.Labels, StringComparison.Ordinal);
        Assert.Equal([0.2860f], mlp.Data.Mean);
        Assert.Equal(5, mlp.Training.Epochs);
        Assert.Equal("adam", mlp.Training.Optimizer.Type);
        Assert.Equal(0.001f, mlp.Training.Optimizer.LearningRate);
        Assert.Equal(["accuracy", "f1", "auc"], mlp.Training.Metrics);
        Assert.Equal("accuracy", mlp.Export.BestMetric);
        Assert.Equal("staging", mlp.Register!.Alias);
        Assert.Equal("2Gi", mlp.Job.Memory);

        var cnn = TrainingSpecReader.ReadFile(Path.Combine(Examples(), "cnn.yaml"));
        Assert.Equal(ModelType.Cnn, cnn.Model.Type);
        Assert.Equal([32, 64], cnn.Model.Channels);
        Assert.Equal(128, cnn.Model.Fc);
        Assert.Equal("accuracy", cnn.Training.EarlyStopping!.Metric);
    }

    [Fact]
    public void Csv_specs_need_a_label_and_relative_paths_resolve_against_the_spec()
    {
        var spec = TrainingSpecReader.Parse("""
            name: load
            model: {type: mlp, hidden: [16]}
            data: {format: csv, train: {path: data/train.csv}, label: [load_mw], regression: true}
            training: {max_steps: 100, checkpoint_every: 5m, schedule: {type: cosine, warmup_steps: 10}}
            """, "load.yaml", "/srv/specs");
        Assert.Equal("/srv/specs/data/train.csv", spec.Resolve(spec.Data.Train.Path));
        Assert.Equal(["load_mw"], spec.Data.Label);
        Assert.True(spec.Data.Regression);
        Assert.Equal(TimeSpan.FromMinutes(5), spec.Training.CheckpointEvery);
        Assert.Equal(10, spec.Training.Schedule.WarmupSteps);

        var error = Assert.Throws<SpecException>(() => TrainingSpecReader.Parse("""
            name: load
            model: {type: class}
            data: {format: csv, train: {path: x.csv}}
            training: {epochs: 1, early_stopping: {metric: acc}}
            export: {best_metric: accuracy}
            register: {model: "bad name"}
            """));
        var text = error.Message;
        Assert.Contains("type class needs assembly", text, StringComparison.Ordinal);
        Assert.Contains("CSV data needs the label column(s)", text, StringComparison.Ordinal);
        Assert.Contains("unknown metric 'acc'", text, StringComparison.Ordinal);
        Assert.Contains("export.best_metric: needs evaluation data", text, StringComparison.Ordinal);
        Assert.Contains("'bad name' is not a valid model name", text, StringComparison.Ordinal);
    }
}
