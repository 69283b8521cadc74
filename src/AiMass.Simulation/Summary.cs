using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using AiMass.IO;

namespace AiMass.Simulation;

/// <summary>Aggregate figures of an SWF replay (a scenario run has <see cref="ScenarioSummary"/>).</summary>
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

    /// <summary>Writes <c>DIR/jobs.csv</c>, <c>DIR/summary.json</c> and (unless told not to) the plots, each written aside, then renamed into place.</summary>
    public static void Write(string directory, ReplayResult result, string policy, string trace, bool plots = true)
    {
        ArgumentNullException.ThrowIfNull(result);
        Directory.CreateDirectory(directory);
        var csv = new StringBuilder(JobsHeader).Append('\n');
        foreach (var j in result.Jobs)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{j.Id},{j.Submit},{j.Start},{j.End},{j.Wait},{j.Run},{j.Processors},{j.BoundedSlowdown:0.######}\n");
        }
        AtomicFile.Write(Path.Combine(directory, "jobs.csv"), csv.ToString());
        var summary = new
        {
            trace,
            policy,
            result.Summary,
            skipped = result.Skipped,
            events = result.Events,
            elapsed_seconds = result.Elapsed.TotalSeconds,
        };
        AtomicFile.Write(Path.Combine(directory, "summary.json"), JsonSerializer.Serialize(summary, SimulationJson.Options) + "\n");
        if (plots)
        {
            SimulationPlots.Write(directory, [PlotRun.Of(result, policy)]);
        }
    }

}

/// <summary>CSV fields as RFC 4180 writes them.</summary>
public static class CsvText
{
    /// <summary>The field, double-quoted (quotes doubled) when it holds a comma, a quote or a line break; empty for null.</summary>
    public static string Quote(string? text) =>
        text is null ? ""
        : text.AsSpan().IndexOfAny(",\"\n\r") >= 0 ? "\"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\""
        : text;
}

/// <summary>How the simulator writes JSON: snake_case, indented.</summary>
internal static class SimulationJson
{
    internal static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

/// <summary>
/// Writes a scenario run's outputs: <c>jobs.csv</c> (one row per job), <c>summary.json</c>, <c>timeseries.csv</c>
/// (the cluster after each instant something changed) and the plots.
/// </summary>
public static class ScenarioReport
{
    /// <summary>The header of a scenario run's <c>jobs.csv</c>.</summary>
    public const string JobsHeader = "job_id,name,user,queue,submit,start,end,wait,run,jct,tasks,cpus,gpus,work,restarts,preemptions,failure_kills,lost_seconds,bounded_slowdown,nodes";

    /// <summary>The header of <c>timeseries.csv</c>.</summary>
    public const string SeriesHeader = "time,busy_cpus,busy_gpus,up_cpus,up_gpus,pending,running";

    /// <summary>Writes the outputs of <paramref name="result"/> to <paramref name="directory"/>; returns the files written.</summary>
    public static IReadOnlyList<string> Write(string directory, ScenarioResult result, Scenario scenario, bool plots = true)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(scenario);
        Directory.CreateDirectory(directory);
        var files = new List<string>();
        var csv = new StringBuilder(JobsHeader).Append('\n');
        foreach (var r in result.Jobs)
        {
            var j = r.Job;
            csv.Append(CultureInfo.InvariantCulture,
                $"{j.Id},{CsvText.Quote(j.Name)},{CsvText.Quote(j.User)},{CsvText.Quote(j.Queue)},{r.Submit:0.###},{N(r.Start)},{N(r.End)},{N(r.Wait)},{N(r.Run)},{N(r.CompletionTime)},{j.Tasks},{j.CpuMillis / 1000.0:0.###},{j.Gpus},{j.Duration.TotalSeconds:0.###},{r.Restarts},{r.Preemptions},{r.FailureKills},{r.LostSeconds:0.###},{(r.BoundedSlowdown is { } b ? b.ToString("0.######", CultureInfo.InvariantCulture) : "")},{CsvText.Quote(r.Runs.Count > 0 ? string.Join(';', r.Runs[^1].Nodes) : null)}\n");
        }
        files.Add(Put(directory, "jobs.csv", csv.ToString()));
        var series = new StringBuilder(SeriesHeader).Append('\n');
        foreach (var s in result.Series)
        {
            series.Append(CultureInfo.InvariantCulture, $"{s.Time:0.###},{s.BusyCpus:0.###},{s.BusyGpus},{s.UpCpus:0.###},{s.UpGpus},{s.Pending},{s.Running}\n");
        }
        files.Add(Put(directory, "timeseries.csv", series.ToString()));
        var summary = new
        {
            scenario = scenario.Name,
            seed = scenario.Seed,
            policy = result.Policy,
            result.Summary,
            skipped = result.Skipped,
            events = result.Events,
            elapsed_seconds = result.Elapsed.TotalSeconds,
        };
        files.Add(Put(directory, "summary.json", JsonSerializer.Serialize(summary, SimulationJson.Options) + "\n"));
        if (plots)
        {
            files.AddRange(SimulationPlots.Write(directory, [PlotRun.Of(result)]));
        }
        return files;
    }

    private static string Put(string directory, string name, string text)
    {
        var path = Path.Combine(directory, name);
        AtomicFile.Write(path, text);
        return path;
    }

    private static string N(double? value) => value is { } v ? v.ToString("0.###", CultureInfo.InvariantCulture) : "";

}
