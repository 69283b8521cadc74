using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiMass.Simulation;

/// <summary>Aggregate figures of a simulation.</summary>
public sealed record SimulationSummary
{
    /// <summary>The run time under which slowdown is bounded (the usual 10 s).</summary>
    public const long SlowdownThreshold = 10;

    /// <summary>Jobs that ran.</summary>
    public int Jobs { get; init; }

    /// <summary>Processors of the machine.</summary>
    public long Processors { get; init; }

    /// <summary>Busy processor-seconds over processors × makespan.</summary>
    public double Utilization { get; init; }

    /// <summary>Mean wait, seconds.</summary>
    public double MeanWait { get; init; }

    /// <summary>Median wait, seconds.</summary>
    public double P50Wait { get; init; }

    /// <summary>95th percentile of wait, seconds.</summary>
    public double P95Wait { get; init; }

    /// <summary>99th percentile of wait, seconds.</summary>
    public double P99Wait { get; init; }

    /// <summary>Mean bounded slowdown.</summary>
    public double MeanBoundedSlowdown { get; init; }

    /// <summary>From the first submission to the last end, seconds.</summary>
    public long Makespan { get; init; }

    /// <summary>Mean job completion time (wait + run), seconds.</summary>
    public double MeanJobCompletionTime { get; init; }

    /// <summary>Busy processor-seconds: the work of all jobs.</summary>
    public double BusyProcessorSeconds { get; init; }

    /// <summary>Jobs killed by node failures (none without a failure model).</summary>
    public int JobsKilledByFailures { get; init; }

    /// <summary>GPU-hours of work lost to failures (none without a failure model).</summary>
    public double LostGpuHours { get; init; }

    /// <summary>Computes the figures of a set of outcomes on a machine.</summary>
    public static SimulationSummary Of(IReadOnlyList<JobOutcome> jobs, long processors)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return new SimulationSummary { Processors = processors };
        }
        var waits = jobs.Select(j => (double)j.Wait).Order().ToArray();
        var first = jobs.Min(j => j.Submit);
        var last = jobs.Max(j => j.End);
        var busy = jobs.Sum(j => (double)j.Run * j.Processors);
        var makespan = last - first;
        return new SimulationSummary
        {
            Jobs = jobs.Count,
            Processors = processors,
            Utilization = makespan > 0 ? busy / (processors * (double)makespan) : 0,
            MeanWait = waits.Average(),
            P50Wait = Percentile(waits, 0.50),
            P95Wait = Percentile(waits, 0.95),
            P99Wait = Percentile(waits, 0.99),
            MeanBoundedSlowdown = jobs.Average(j => j.BoundedSlowdown),
            Makespan = makespan,
            MeanJobCompletionTime = jobs.Average(j => (double)(j.Wait + j.Run)),
            BusyProcessorSeconds = busy,
        };
    }

    /// <summary>The nearest-rank percentile of sorted values.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double q)
    {
        ArgumentNullException.ThrowIfNull(sorted);
        return sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
    }
}

/// <summary>Writes a replay's outputs: <c>jobs.csv</c> and <c>summary.json</c>.</summary>
public static class SimulationReport
{
    /// <summary>The header of <c>jobs.csv</c>.</summary>
    public const string JobsHeader = "job_id,submit,start,end,wait,run,processors,bounded_slowdown";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Writes <c>DIR/jobs.csv</c> and <c>DIR/summary.json</c> (each written aside, then renamed into place).</summary>
    public static void Write(string directory, ReplayResult result, string policy, string trace)
    {
        ArgumentNullException.ThrowIfNull(result);
        Directory.CreateDirectory(directory);
        var csv = new StringBuilder(JobsHeader).Append('\n');
        foreach (var j in result.Jobs)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{j.Id},{j.Submit},{j.Start},{j.End},{j.Wait},{j.Run},{j.Processors},{j.BoundedSlowdown:0.######}\n");
        }
        WriteAtomically(Path.Combine(directory, "jobs.csv"), csv.ToString());
        var summary = new
        {
            trace,
            policy,
            result.Summary,
            skipped = result.Skipped,
            events = result.Events,
            elapsed_seconds = result.Elapsed.TotalSeconds,
        };
        WriteAtomically(Path.Combine(directory, "summary.json"), JsonSerializer.Serialize(summary, Json) + "\n");
    }

    private static void WriteAtomically(string path, string text)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, text);
        File.Move(temporary, path, overwrite: true);
    }
}
