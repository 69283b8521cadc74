using System.Globalization;
using AiMass.Client;
using AiMass.Jobs;
using AiMass.Server;

namespace AiMass.Bench.Scheduling;

/// <summary>
/// Job submission to process start on an idle local node: the time from just before <c>POST /api/v1/jobs</c> to the
/// first instruction of the task, which prints the wall clock (<c>date +%s%N</c>) into its log.
/// </summary>
internal static class SubmitBenchmark
{
    public static async Task<int> RunAsync(int jobs)
    {
        var dir = Path.Combine(Environment.GetEnvironmentVariable("AIMASS_BENCH_DIR") ?? "/var/tmp/aimass-bench", "submit-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var app = AiMassServer.Build(new Dictionary<string, string?>
        {
            ["Storage:DataDirectory"] = dir,
            ["Server:Port"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        await using (app)
        {
            await app.StartAsync();
            using var client = new AiMassClient(app.GetListeningAddress());
            const string Spec = "name: probe\nresources: {cpu: 100m, memory: 64Mi}\ncommand: [/bin/sh, -c, 'date +%s%N']\n";
            var samples = new List<double>();
            for (var i = 0; i < jobs + 5; i++)
            {
                var before = DateTimeOffset.UtcNow;
                var job = await client.SubmitJobAsync(Spec);
                JobInfo done;
                while ((done = await client.GetJobAsync(job.Id)).State is not (JobState.Succeeded or JobState.Failed))
                {
                    await Task.Delay(20);
                }
                using var log = new MemoryStream();
                await client.CopyJobLogsAsync(job.Id, log);
                var line = System.Text.Encoding.UTF8.GetString(log.ToArray()).Split('\n')[1].Trim();
                var started = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(line, CultureInfo.InvariantCulture) / 1_000_000);
                if (i >= 5)
                {
                    samples.Add((started - before).TotalMilliseconds); // the first five warm up the JIT
                }
            }
            await app.StopAsync();
            samples.Sort();
            double P(double q) => samples[(int)Math.Min(samples.Count - 1, Math.Floor(q * samples.Count))];
            Console.WriteLine($"## Job submission to process start on an idle local node ({samples.Count} jobs, one at a time)");
            Console.WriteLine();
            Console.WriteLine("| measure | p50 ms | p90 ms | max ms |");
            Console.WriteLine("|---|---:|---:|---:|");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| POST /api/v1/jobs -> first instruction of the task | {P(0.5):F1} | {P(0.9):F1} | {samples[^1]:F1} |"));
        }
        Directory.Delete(dir, recursive: true);
        return 0;
    }
}
