using AiMass.Jobs;

namespace AiMass.Specs.Tests;

public sealed class JobSpecReaderTests
{
    [Fact]
    public void Parse_FullSpec_ReadsEveryField()
    {
        var spec = JobSpecReader.Parse("""
            name: train-resnet
            command: [python3, train.py, --epochs, "10"]
            replicas: 2
            resources:
              cpu: 500m
              memory: 4Gi
              gpu: 1
              fpga: 2
            priority: 10
            queue: gpu
            owner: alice
            walltime: 1h30m
            max_restarts: 3
            preemptible: true
            env:
              DATA: /data/imagenet
            node_selector:
              gpu_model: A100
            working_dir: /tmp/work
            """);
        Assert.Equal("train-resnet", spec.Name);
        Assert.Equal(["python3", "train.py", "--epochs", "10"], spec.Command);
        Assert.Equal(2, spec.Replicas);
        Assert.Equal(500, spec.Resources.CpuMillis);
        Assert.Equal(4L << 30, spec.Resources.MemoryBytes);
        Assert.Equal(1, spec.Resources.Gpus);
        Assert.Equal(2, spec.Resources["fpga"]);
        Assert.Equal(10, spec.Priority);
        Assert.Equal("gpu", spec.Queue);
        Assert.Equal("alice", spec.Owner);
        Assert.Equal(TimeSpan.FromMinutes(90), spec.Walltime);
        Assert.Equal(3, spec.MaxRestarts);
        Assert.True(spec.Preemptible);
        Assert.Equal("/data/imagenet", spec.Env["DATA"]);
        Assert.Equal("A100", spec.NodeSelector["gpu_model"]);
        Assert.Equal("/tmp/work", spec.WorkingDir);
    }

    [Fact]
    public void Parse_MinimalSpec_UsesDefaults_AndAShellLine()
    {
        var spec = JobSpecReader.Parse("name: hello\ncommand: echo hello && sleep 1\n");
        Assert.Equal(["/bin/sh", "-c", "echo hello && sleep 1"], spec.Command);
        Assert.Equal(1, spec.Replicas);
        Assert.Equal(1000, spec.Resources.CpuMillis);
        Assert.Equal(512L << 20, spec.Resources.MemoryBytes);
        Assert.Equal(JobDefaults.Queue, spec.Queue);
        Assert.Null(spec.Walltime);
    }

    [Fact]
    public void Parse_Json_IsAccepted()
    {
        var spec = JobSpecReader.Parse("""{"name": "j", "command": ["true"], "resources": {"cpu": 2, "memory": "1Gi"}}""");
        Assert.Equal(2000, spec.Resources.CpuMillis);
    }

    [Fact]
    public void Parse_UnknownAndInvalidFields_AreAllReportedWithFieldAndLine()
    {
        var ex = Assert.Throws<SpecException>(() => JobSpecReader.Parse("""
            name: bad
            command: [run]
            replica: 2
            resources:
              cpu: two
              memory: 4Xi
            walltime: 90
            env:
              AIMASS_JOB_ID: "1"
            """, "bad.yaml"));
        var byField = ex.Errors.ToDictionary(e => e.Field);
        Assert.Equal(3, byField["replica"].Line);
        Assert.Contains("did you mean 'replicas'", byField["replica"].Message, StringComparison.Ordinal);
        Assert.Equal(5, byField["resources.cpu"].Line);
        Assert.Contains("not a CPU amount", byField["resources.cpu"].Message, StringComparison.Ordinal);
        Assert.Equal(6, byField["resources.memory"].Line);
        Assert.Equal(7, byField["walltime"].Line);
        Assert.Contains("set by the platform", byField["env.AIMASS_JOB_ID"].Message, StringComparison.Ordinal);
        Assert.StartsWith("bad.yaml: 5 problems", ex.Message, StringComparison.Ordinal);
        Assert.Contains("line 3, column 1: replica: unknown field", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("command: [x]\n", "name", "is required")]
    [InlineData("name: n\n", "command", "is required")]
    [InlineData("name: n\ncommand: []\n", "command", "must not be empty")]
    [InlineData("name: n\ncommand: [x]\nreplicas: 0\n", "replicas", "between 1 and")]
    [InlineData("name: n\ncommand: [x]\npreemptible: maybe\n", "preemptible", "not true or false")]
    [InlineData("name: n\ncommand: [x]\nworking_dir: rel/dir\n", "working_dir", "absolute path")]
    [InlineData("name: n\ncommand: [x]\nresources: {cpu: 1, Fpga: 1}\n", "resources.Fpga", "not a valid custom resource name")]
    [InlineData("name: n\ncommand: [x]\nresources: {cpu: 1, memroy: 1Gi}\n", "resources.memroy", "did you mean 'memory'")]
    [InlineData("name: n\ncommand: [x]\nenv: {1BAD: x}\n", "env.1BAD", "not a valid environment variable name")]
    public void Parse_InvalidField_NamesIt(string yaml, string field, string message)
    {
        var ex = Assert.Throws<SpecException>(() => JobSpecReader.Parse(yaml));
        var error = Assert.Single(ex.Errors, e => e.Field == field);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("name: [unclosed\n", "not valid YAML")]
    [InlineData("- a\n- b\n", "must be a mapping")]
    [InlineData("name: a\nname: b\ncommand: [x]\n", "not valid YAML")]
    public void Parse_NotASpec_SaysWhy(string yaml, string message)
    {
        var ex = Assert.Throws<SpecException>(() => JobSpecReader.Parse(yaml));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }
}
