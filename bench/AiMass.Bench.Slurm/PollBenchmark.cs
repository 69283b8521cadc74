using System.Diagnostics;
using System.Globalization;
using AiMass.Execution;
using AiMass.Execution.Slurm;
using AiMass.Resources;

namespace AiMass.Bench.Slurm;

/// <summary>
/// Following many Slurm jobs: JOBS one-task jobs submitted through the Slurm executor, all waited for at once; counts
/// the squeue calls (one per poll interval, whatever the number of jobs) and times them.
/// </summary>
internal static class PollBenchmark
{
    public static async Task<int> RunAsync(int jobs)
    {
        var dir = Path.Combine(Environment.GetEnvironmentVariable("AIMASS_BENCH_DIR") ?? "/var/tmp/aimass-bench", "slurm-poll-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var options = new SlurmOptions { PollInterval = TimeSpan.FromSeconds(1), Scheduling = "slurm" };
        var commands = new Timed(new SlurmProcessCommands(options));
        using var executor = new SlurmExecutor(options, commands, "aimass-bench-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture), Path.Combine(dir, "scripts"));
        await executor.DiscoverAsync(default);
        var submit = Stopwatch.StartNew();
        var handles = new List<TaskHandle>();
        for (var j = 1; j <= jobs; j++)
        {
            var launch = new TaskLaunch(j, 0, 1, "partition:batch", ["true"], Path.Combine(dir, "work"), new Dictionary<string, string>(), Path.Combine(dir, "logs", $"{j}.log"));
            handles.AddRange(await executor.StartAsync(new GangLaunch(j, 1, "default", "batch", new ResourceVector(1000, 16L << 20), null, [launch]), default));
        }
        submit.Stop();
        var follow = Stopwatch.StartNew();
        var before = commands.Calls;
        var exits = await Task.WhenAll(handles.Select(h => executor.WaitAsync(h, default)));
        follow.Stop();
        var polls = commands.Calls - before;
        Directory.Delete(dir, recursive: true);
        var durations = commands.Durations.OrderBy(d => d).ToList();
        Console.WriteLine($"## Following {jobs} Slurm jobs until they all ended (poll interval 1 s)");
        Console.WriteLine();
        Console.WriteLine("| measure | value |");
        Console.WriteLine("|---|---:|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| sbatch of {jobs} jobs, one after another | {submit.Elapsed.TotalSeconds:F1} s ({submit.Elapsed.TotalMilliseconds / jobs:F1} ms each) |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| time until every job was seen ended | {follow.Elapsed.TotalSeconds:F1} s |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| squeue calls meanwhile | {polls} ({polls / Math.Max(1, follow.Elapsed.TotalSeconds):F2} per second; {jobs} jobs) |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| squeue call with up to {jobs} jobs: p50 / max | {durations[durations.Count / 2]:F0} / {durations[^1]:F0} ms |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| jobs that ended with code 0 | {exits.Count(e => e.Succeeded)} of {jobs} |"));
        return 0;
    }

    /// <summary>Counts and times the squeue calls.</summary>
    private sealed class Timed(ISlurmCommands inner) : ISlurmCommands
    {
        public int Calls;
        public readonly List<double> Durations = [];

        public string Run(string tool, IReadOnlyList<string> arguments)
        {
            if (tool != "squeue")
            {
                return inner.Run(tool, arguments);
            }
            var watch = Stopwatch.StartNew();
            try
            {
                return inner.Run(tool, arguments);
            }
            finally
            {
                Interlocked.Increment(ref Calls);
                lock (Durations)
                {
                    Durations.Add(watch.Elapsed.TotalMilliseconds);
                }
            }
        }
    }
}
