using System.Diagnostics;
using System.Globalization;
using AiMass.Client;
using AiMass.Jobs;
using AiMass.Server;

namespace AiMass.Bench.Slurm;

/// <summary>
/// Submission to RUNNING on an idle cluster (each submission waits until the node is idle again): from just before the
/// submission to the first instruction of the task,
/// which prints the wall clock (<c>date +%s%N</c>). Through AI Mass (<c>POST /api/v1/jobs</c>, Slurm backend) and,
/// alternately in the same run, with <c>sbatch</c> directly (the reference).
/// </summary>
internal static class SubmitBenchmark
{
    public static async Task<int> RunAsync(int jobs)
    {
        var dir = Path.Combine(Environment.GetEnvironmentVariable("AIMASS_BENCH_DIR") ?? "/var/tmp/aimass-bench", "slurm-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var app = AiMassServer.Build(new Dictionary<string, string?>
        {
            ["Storage:DataDirectory"] = dir,
            ["Server:Port"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Execution:Backend"] = "slurm",
            ["Slurm:PollInterval"] = "00:00:00.250",
            ["Jobs:Tick"] = "00:00:00.100",
        });
        var aimass = new List<double>();
        var sbatch = new List<double>();
        await using (app)
        {
            await app.StartAsync();
            using var client = new AiMassClient(app.GetListeningAddress());
            const string Spec = "name: probe\nresources: {cpu: 1, memory: 64Mi}\ncommand: [/bin/sh, -c, 'date +%s%N']\n";
            for (var i = 0; i < jobs + 3; i++)
            {
                await IdleAsync();
                var before = DateTimeOffset.UtcNow;
                var job = await client.SubmitJobAsync(Spec);
                while ((await client.GetJobAsync(job.Id)).State is not (JobState.Succeeded or JobState.Failed))
                {
                    await Task.Delay(20);
                }
                using var log = new MemoryStream();
                await client.CopyJobLogsAsync(job.Id, log);
                var line = System.Text.Encoding.UTF8.GetString(log.ToArray()).Split('\n').First(l => l.Length > 0 && char.IsAsciiDigit(l[0])).Trim();
                await IdleAsync();
                var direct = await SbatchAsync(dir, i);
                if (i >= 3)
                {
                    aimass.Add((Started(line) - before).TotalMilliseconds); // the first three warm up the JIT and Slurm
                    sbatch.Add(direct);
                }
            }
            await app.StopAsync();
        }
        Directory.Delete(dir, recursive: true);
        aimass.Sort();
        sbatch.Sort();
        Console.WriteLine($"## Submission to the task's first instruction on an idle one-node Slurm ({aimass.Count} jobs each, one at a time, alternating)");
        Console.WriteLine();
        Console.WriteLine("| path | p50 ms | p90 ms | max ms |");
        Console.WriteLine("|---|---:|---:|---:|");
        Row("AI Mass: POST /api/v1/jobs -> sbatch -> srun -> task", aimass);
        Row("sbatch --wrap directly (reference)", sbatch);
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"AI Mass / sbatch p50 ratio: {P(aimass, 0.5) / P(sbatch, 0.5):F2}"));
        return 0;
    }

    /// <summary>Waits until every node is idle again (a job that just ended leaves its node "completing" for a moment).</summary>
    private static async Task IdleAsync()
    {
        while (true)
        {
            var info = new ProcessStartInfo("sinfo") { RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in (string[])["-h", "-N", "-o", "%T"])
            {
                info.ArgumentList.Add(a);
            }
            using var process = Process.Start(info)!;
            var states = (await process.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await process.WaitForExitAsync();
            if (states.All(s => s == "idle"))
            {
                return;
            }
            await Task.Delay(50);
        }
    }

    private static async Task<double> SbatchAsync(string dir, int i)
    {
        var output = Path.Combine(dir, $"direct-{i}.out");
        var before = DateTimeOffset.UtcNow;
        var info = new ProcessStartInfo("sbatch") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in (string[])["--parsable", "--cpus-per-task=1", "--mem=64M", "--output=" + output, "--wrap", "date +%s%N"])
        {
            info.ArgumentList.Add(a);
        }
        using (var process = Process.Start(info)!)
        {
            await process.WaitForExitAsync();
        }
        while (!File.Exists(output) || new FileInfo(output).Length == 0)
        {
            await Task.Delay(10);
        }
        var line = (await File.ReadAllTextAsync(output)).Trim();
        return (Started(line) - before).TotalMilliseconds;
    }

    private static DateTimeOffset Started(string nanoseconds) =>
        DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(nanoseconds, CultureInfo.InvariantCulture) / 1_000_000);

    private static double P(List<double> sorted, double q) => sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(q * sorted.Count))];

    private static void Row(string name, List<double> sorted) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {P(sorted, 0.5):F0} | {P(sorted, 0.9):F0} | {sorted[^1]:F0} |"));
}
