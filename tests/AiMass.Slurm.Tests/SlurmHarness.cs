using System.Diagnostics;
using AiMass.TestSupport;

namespace AiMass.Slurm.Tests;

/// <summary>
/// Control planes whose executor is the one-node Slurm cluster ./test.sh starts (scripts/slurm-test-cluster.sh). A test
/// that finds no cluster fails with the reason: the Slurm backend is never reported as tested when it was not.
/// </summary>
internal static class SlurmHarness
{
    /// <summary>The test cluster's slurm.conf.</summary>
    public static string Conf
    {
        get
        {
            var conf = Environment.GetEnvironmentVariable("SLURM_CONF");
            if (string.IsNullOrEmpty(conf) || !File.Exists(conf))
            {
                throw new InvalidOperationException(Environment.GetEnvironmentVariable("AIMASS_SLURM_ERROR")
                    ?? "no Slurm cluster to test against: SLURM_CONF is not set; start one with 'scripts/slurm-test-cluster.sh start DIR' and export the SLURM_CONF it prints (./test.sh does both)");
            }
            return conf;
        }
    }

    public static Task<TestServer> StartAsync(TempDirectory? directory = null, IReadOnlyDictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?>
        {
            ["Execution:Backend"] = "slurm",
            ["Slurm:Conf"] = Conf,
            ["Slurm:PollInterval"] = "00:00:00.200",
            ["Jobs:Tick"] = "00:00:00.100",
            ["Jobs:KillGrace"] = "00:00:03",
            ["Jobs:RestartBackoff"] = "00:00:00.200",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            all[k] = v;
        }
        return TestServer.StartAsync(all, directory: directory);
    }

    /// <summary>Runs a Slurm command against the test cluster and returns its output.</summary>
    public static string Run(string tool, params string[] arguments)
    {
        var info = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }
        info.Environment["SLURM_CONF"] = Conf;
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{tool} {string.Join(' ', arguments)} failed: {error}");
        return output;
    }

    /// <summary>State, partition and nodes of a Slurm job: <c>squeue -j ID -h -o "%T %P %N"</c> over every state.</summary>
    public static string[] Job(string id) =>
        Run("squeue", "--states=all", "-h", "-j", id, "-o", "%T %P %j").Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>True when a process with this id runs (and is not a zombie).</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state is not ("Z" or "X");
        }
        catch (IOException)
        {
            return false;
        }
    }
}
