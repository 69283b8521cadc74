namespace AiMass.Scheduling.Tests;

public sealed class AutoscalerTests
{
    private static TestCluster WithGpuPool(int min, int max, TimeSpan? idle = null)
    {
        var c = new TestCluster();
        c.Node("cpu1", 8);
        c.Scheduler.AddPool(new PoolSpec("gpu", PoolKind.Dynamic)
        {
            MinNodes = min,
            MaxNodes = max,
            IdleTimeout = idle ?? TimeSpan.FromMinutes(10),
            Template = new NodeSpec("template", "gpu", TestCluster.Res(16, 64, 2)) { GpuModel = "A100" },
        });
        return c;
    }

    [Fact]
    public void ScaleUp_OnDemandThatFitsNoNode_ThenTheJobStartsWhenTheNodeIsUp()
    {
        var c = WithGpuPool(0, 3);
        var job = c.Submit(c.Job(1, cpu: 4, gpu: 2, tasks: 2));
        var pass = c.Scheduler.Schedule();
        var up = Assert.Single(pass.ScaleUps);
        Assert.Equal(["gpu-1", "gpu-2"], up.Nodes);
        Assert.Contains($"job {job.Id} needs 2 task(s)", up.Reason, StringComparison.Ordinal);
        Assert.Contains(pass.Events, e => e.Kind == "scale_up");
        Assert.Equal(NodeState.Provisioning, c.Scheduler.GetNode("gpu-1")!.State);

        // Nodes on their way are counted: no second request for the same demand.
        Assert.Empty(c.Scheduler.Schedule().ScaleUps);

        c.Scheduler.SetNodeState("gpu-1", NodeState.Up);
        c.Scheduler.SetNodeState("gpu-2", NodeState.Up);
        Assert.Equal([job.Id], TestCluster.StartedIds(c.Scheduler.Schedule()));
    }

    [Fact]
    public void ScaleUp_RespectsMax_AndMinIsKeptFromTheStart()
    {
        var c = WithGpuPool(1, 2);
        var first = c.Scheduler.Schedule();
        Assert.Contains("below its minimum", Assert.Single(first.ScaleUps).Reason, StringComparison.Ordinal);
        c.Scheduler.SetNodeState("gpu-1", NodeState.Up);
        for (var i = 0; i < 5; i++)
        {
            c.Submit(c.Job(10 + i, cpu: 16, gpu: 2));
        }
        var pass = c.Scheduler.Schedule();
        Assert.Single(pass.Started);
        Assert.Equal(["gpu-2"], Assert.Single(pass.ScaleUps).Nodes);
        Assert.Empty(c.Scheduler.Schedule().ScaleUps);
        Assert.Equal(2, c.Scheduler.Nodes.Count(n => n.Spec.Pool == "gpu"));
    }

    [Fact]
    public void ScaleDown_AfterTheIdleTimeout_KeepingTheMinimum()
    {
        var idle = TimeSpan.FromMinutes(10);
        var c = WithGpuPool(1, 3, idle);
        c.Scheduler.Schedule();
        c.Scheduler.SetNodeState("gpu-1", NodeState.Up);
        c.Submit(c.Job(1, cpu: 16, gpu: 2));
        c.Submit(c.Job(2, cpu: 16, gpu: 2));
        c.Scheduler.Schedule();
        c.Scheduler.SetNodeState("gpu-2", NodeState.Up);
        c.Scheduler.Schedule();
        Assert.All(new long[] { 1, 2 }, id => Assert.Equal(JobPhase.Running, c.Phase(id)));

        c.Scheduler.Release(1);
        c.Scheduler.Release(2);
        c.Time.Advance(idle - TimeSpan.FromSeconds(1));
        Assert.Empty(c.Scheduler.Schedule().ScaleDowns);
        c.Time.Advance(TimeSpan.FromSeconds(1));
        var pass = c.Scheduler.Schedule();
        var down = Assert.Single(pass.ScaleDowns);
        Assert.Contains("idle since", down.Reason, StringComparison.Ordinal);
        Assert.Single(c.Scheduler.Nodes, n => n.Spec.Pool == "gpu");
        c.Time.Advance(idle * 3);
        Assert.Empty(c.Scheduler.Schedule().ScaleDowns);
    }

    [Fact]
    public void Submit_GangLargerThanThePoolsMaximum_IsRefused()
    {
        var c = WithGpuPool(0, 2);
        var ex = Assert.Throws<SchedulingException>(() => c.Scheduler.Submit(c.Job(1, cpu: 1, gpu: 2, tasks: 3)));
        Assert.Contains("at most 2", ex.Message, StringComparison.Ordinal);
    }
}
