using AiMass.TestSupport;

namespace AiMass.Jobs.Tests;

/// <summary>A control plane with a cluster file of virtual nodes, short grace periods and a fast tick.</summary>
internal static class JobsHarness
{
    public const string TwoNodes = """
        policy:
          preemption_grace: 3s
        nodes:
          - name: n
            count: 2
            resources: {cpu: 2, memory: 2Gi}
        """;

    public static async Task<TestServer> StartAsync(string cluster = TwoNodes, TempDirectory? directory = null, IReadOnlyDictionary<string, string?>? settings = null)
    {
        directory ??= new TempDirectory();
        var file = directory.Combine("cluster.yaml");
        await File.WriteAllTextAsync(file, cluster);
        var all = new Dictionary<string, string?>
        {
            ["Jobs:ClusterFile"] = file,
            ["Jobs:KillGrace"] = "00:00:02",
            ["Jobs:Tick"] = "00:00:00.100",
            ["Jobs:UsageSampleInterval"] = "00:00:00.200",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            all[k] = v;
        }
        return await TestServer.StartAsync(all, directory: directory);
    }
}
