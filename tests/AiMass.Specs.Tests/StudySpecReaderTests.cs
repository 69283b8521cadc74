using AiMass.Tuning;

namespace AiMass.Specs.Tests;

public sealed class StudySpecReaderTests
{
    [Fact]
    public void Parse_AFullSpec_ReadsEveryField()
    {
        var spec = StudySpecReader.Parse("""
            name: s1
            direction: maximize
            metric: accuracy
            space:
              lr: {type: float, low: 1e-4, high: 1, log: true}
              opt: [adam, sgd]
              momentum: {type: float, low: 0, high: 1, when: {opt: sgd}}
            sampler: hmcts
            pruner: {type: asha, min_resource: 2, reduction_factor: 4, max_resource: 32}
            trials: 50
            parallel: 3
            max_retries: 1
            heartbeat_timeout: 5m
            seed: 9
            objective: {command: [python3, train.py, --lr, "{{lr}}", --momentum, "{{momentum|0}}"]}
            job:
              resources: {cpu: 2, memory: 1Gi, gpu: 1}
              queue: gpu
              env: {A: b}
            register: {model: tuned, alias: staging, artifact: model.onnx}
            """, baseDirectory: "/srv/specs");
        Assert.Equal(("s1", Direction.Maximize, "accuracy", "hmcts", 50, 3, 1, 9), (spec.Name, spec.Direction, spec.Metric, spec.Sampler, spec.Trials, spec.Parallel, spec.MaxRetries, spec.Seed));
        Assert.Equal(new PrunerSpec("asha", 2, 32, 4), spec.Pruner);
        Assert.IsType<SuccessiveHalvingPruner>(spec.Pruner.Create());
        Assert.IsType<HierarchicalMctsSampler>(spec.CreateSampler());
        Assert.Equal(TimeSpan.FromMinutes(5), spec.HeartbeatTimeout);
        Assert.Equal(["python3", "train.py", "--lr", "{{lr}}", "--momentum", "{{momentum|0}}"], spec.Command);
        Assert.Equal((2000, 1L << 30, 1L), (spec.Job.Resources.CpuMillis, spec.Job.Resources.MemoryBytes, spec.Job.Resources.Gpus));
        Assert.Equal("gpu", spec.Job.Queue);
        Assert.Equal(new StudyRegisterSpec("tuned", "staging", "model.onnx"), spec.Register);
        Assert.Equal("/srv/specs", spec.BaseDirectory);
        Assert.Equal(3, spec.Space.Parameters.Count);
    }

    [Fact]
    public void Parse_Mistakes_AreAllReportedWithTheirFields()
    {
        var e = Assert.Throws<SpecException>(() => StudySpecReader.Parse("""
            name: "bad name"
            direction: upward
            space: {lr: {type: float, low: 0.1, high: 1}}
            sampler: bayes
            pruner: {type: asha, reduction_factor: 1}
            trails: 5
            objective: {command: 'run --lr {{lrr}}'}
            job: {name: x}
            """));
        var fields = e.Errors.Select(x => x.Field).ToList();
        Assert.True(e.Errors.Count >= 7, string.Join("\n", e.Errors));
        Assert.Contains("name", fields);
        Assert.Contains("direction", fields);
        Assert.Contains("sampler", fields);
        Assert.Contains("pruner.reduction_factor", fields);
        Assert.Contains(e.Errors, x => x.Field == "trails" && x.Message.Contains("did you mean 'trials'", StringComparison.Ordinal));
        Assert.Contains(e.Errors, x => x.Field == "objective.command" && x.Message.Contains("{{lrr}} names no parameter of the space; did you mean 'lr'?", StringComparison.Ordinal));
        Assert.Contains(e.Errors, x => x.Field == "job.name");
        Assert.All(e.Errors, x => Assert.True(x.Line > 0, $"{x.Field} has no line"));
    }

    [Fact]
    public void Parse_TrainingObjective_NeedsItsTextAndAMetric_AndMustReadWellOnceFilled()
    {
        const string Study = """
            name: t
            space: {width: {type: int, low: 8, high: 64}}
            objective: {training: train.yaml}
            """;
        var missing = Assert.Throws<SpecException>(() => StudySpecReader.Parse(Study));
        Assert.Contains(missing.Errors, x => x.Field == "objective.training" && x.Message.Contains("must be sent with the study", StringComparison.Ordinal));
        Assert.Equal("train.yaml", StudySpecReader.TrainingFile(Study));

        const string Training = """
            # {{comment}} placeholders in comments are not checked
            name: m
            model: {type: mlp, width: {{width}}, depth: 2}
            data: {format: csv, train: {path: train.csv}, label: [y]}
            training: {epochs: 1}
            """;
        var noMetric = Assert.Throws<SpecException>(() => StudySpecReader.Parse(Study, trainingText: Training, baseDirectory: "/data"));
        Assert.Contains(noMetric.Errors, x => x.Field == "metric");

        var spec = StudySpecReader.Parse(Study + "\nmetric: accuracy\n", trainingText: Training, baseDirectory: "/data");
        Assert.Equal(Training, spec.TrainingText);
        Assert.Equal("/data", spec.TrainingBaseDirectory);

        var broken = Assert.Throws<SpecException>(() => StudySpecReader.Parse(Study + "\nmetric: accuracy\n",
            trainingText: Training.Replace("depth: 2", "depth: {{width}}x", StringComparison.Ordinal), baseDirectory: "/data"));
        Assert.Contains(broken.Errors, x => x.Field == "objective.training" && x.Message.Contains("the training spec is not valid", StringComparison.Ordinal));
    }

    [Fact]
    public void Template_FillsPlaceholders_DefaultsAndEnvNames()
    {
        var values = new Dictionary<string, string> { ["lr"] = "0.01", ["opt"] = "sgd" };
        Assert.Equal("--lr 0.01 --opt sgd --m 0.9 --b ", StudyTemplate.Render("--lr {{lr}} --opt {{ opt }} --m {{momentum|0.9}} --b {{beta}}", values));
        Assert.Equal([("lr", null), ("momentum", "0.9")], StudyTemplate.Placeholders("{{lr}} {{momentum|0.9}}").ToList());
        Assert.Equal("AIMASS_PARAM_LEARNING_RATE", StudyTemplate.EnvName("learning-rate"));
        Assert.Equal("AIMASS_PARAM_OPT_BETA1", StudyTemplate.EnvName("opt.beta1"));
    }

    [Fact]
    public void TrainingSpec_WidthAndDepth_AreHiddenLayers()
    {
        var spec = TrainingSpecReader.Parse("""
            name: m
            model: {type: mlp, width: 32, depth: 3}
            data: {format: csv, train: {path: train.csv}, label: [y]}
            training: {epochs: 1}
            """, baseDirectory: "/data");
        Assert.Equal([32, 32, 32], spec.Model.Hidden);
        var e = Assert.Throws<SpecException>(() => TrainingSpecReader.Parse("""
            name: m
            model: {type: mlp, width: 32}
            data: {format: csv, train: {path: train.csv}, label: [y]}
            """));
        Assert.Contains(e.Errors, x => x.Field == "model.width" && x.Message.Contains("width and depth go together", StringComparison.Ordinal));
    }
}
