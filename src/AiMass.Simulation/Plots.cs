using AiMass.IO;
using ScottPlot;

namespace AiMass.Simulation;

/// <summary>What the plots of one run show: the cluster over time and the distributions of wait and slowdown.</summary>
/// <param name="Label">The run's name in legends (its policy).</param>
/// <param name="Series">The cluster after each instant something changed.</param>
/// <param name="Waits">Wait of each finished job, seconds.</param>
/// <param name="Slowdowns">Bounded slowdown of each finished job.</param>
public sealed record PlotRun(string Label, IReadOnlyList<ClusterSample> Series, IReadOnlyList<double> Waits, IReadOnlyList<double> Slowdowns)
{
    /// <summary>The plot data of a scenario run.</summary>
    public static PlotRun Of(ScenarioResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var done = result.Jobs.Where(j => j.End is not null).ToList();
        return new PlotRun(result.Policy, result.Series, done.Select(j => j.Wait!.Value).ToArray(), done.Select(j => j.BoundedSlowdown!.Value).ToArray());
    }

    /// <summary>The plot data of an SWF replay: the series is rebuilt from the jobs' submissions, starts and ends.</summary>
    public static PlotRun Of(ReplayResult result, string label)
    {
        ArgumentNullException.ThrowIfNull(result);
        var changes = new List<(long Time, int Kind, long Processors)>(result.Jobs.Count * 3);
        foreach (var j in result.Jobs)
        {
            changes.Add((j.Submit, 2, 0));
            changes.Add((j.Start, 1, j.Processors));
            changes.Add((j.End, 0, -j.Processors));
        }
        changes.Sort();
        var series = new List<ClusterSample>();
        long busy = 0;
        int pending = 0, running = 0;
        for (var i = 0; i < changes.Count; i++)
        {
            var (time, kind, processors) = changes[i];
            busy += processors;
            (pending, running) = kind switch
            {
                2 => (pending + 1, running),
                1 => (pending - 1, running + 1),
                _ => (pending, running - 1),
            };
            if (i + 1 == changes.Count || changes[i + 1].Time != time)
            {
                series.Add(new ClusterSample(time, busy, 0, result.Summary.Processors, 0, pending, running));
            }
        }
        return new PlotRun(label, series, result.Jobs.Select(j => (double)j.Wait).ToArray(), result.Jobs.Select(j => j.BoundedSlowdown).ToArray());
    }
}

/// <summary>
/// Draws a simulation's plots as PNG and SVG (ScottPlot): utilisation and queue length over time, and the CDFs of wait
/// and bounded slowdown, with one line per run when several policies are compared.
/// </summary>
public static class SimulationPlots
{
    private const int Width = 1000;
    private const int Height = 560;
    private const int MaxPoints = 2000;

    /// <summary>Writes <c>utilisation</c>, <c>queue</c>, <c>wait-cdf</c> and <c>slowdown-cdf</c> as .png and .svg; returns the files written.</summary>
    public static IReadOnlyList<string> Write(string directory, IReadOnlyList<PlotRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        Directory.CreateDirectory(directory);
        var files = new List<string>();
        var gpus = runs.Any(r => r.Series.Any(s => s.UpGpus > 0));
        files.AddRange(Save(directory, "utilisation", Utilisation(runs, gpus)));
        files.AddRange(Save(directory, "queue", Queue(runs)));
        files.AddRange(Save(directory, "wait-cdf", Cdf(runs, r => r.Waits, "Wait (s)", "Wait time", logX: true)));
        files.AddRange(Save(directory, "slowdown-cdf", Cdf(runs, r => r.Slowdowns, "Bounded slowdown (10 s)", "Bounded slowdown", logX: true)));
        return files;
    }

    private static Plot Utilisation(IReadOnlyList<PlotRun> runs, bool gpus)
    {
        var plot = new Plot();
        foreach (var run in runs)
        {
            var (x, y) = Downsample(run.Series, s => gpus
                ? (s.UpGpus > 0 ? 100.0 * s.BusyGpus / s.UpGpus : 0)
                : (s.UpCpus > 0 ? 100.0 * s.BusyCpus / s.UpCpus : 0));
            Line(plot, x, y, runs.Count > 1 ? run.Label : (gpus ? "GPUs" : "CPU cores"));
        }
        plot.Title((gpus ? "GPU" : "CPU") + " utilisation (allocated / up)");
        plot.XLabel("Time (hours)");
        plot.YLabel("Utilisation (%)");
        plot.Axes.SetLimitsY(0, 105);
        return plot;
    }

    private static Plot Queue(IReadOnlyList<PlotRun> runs)
    {
        var plot = new Plot();
        foreach (var run in runs)
        {
            var (x, y) = Downsample(run.Series, s => s.Pending);
            Line(plot, x, y, runs.Count > 1 ? run.Label : "waiting jobs");
        }
        plot.Title("Queue length");
        plot.XLabel("Time (hours)");
        plot.YLabel("Jobs waiting");
        return plot;
    }

    private static Plot Cdf(IReadOnlyList<PlotRun> runs, Func<PlotRun, IReadOnlyList<double>> values, string axis, string title, bool logX)
    {
        var plot = new Plot();
        foreach (var run in runs)
        {
            var sorted = values(run).Order().ToArray();
            if (sorted.Length == 0)
            {
                continue;
            }
            // At most MaxPoints points: the value at evenly spaced ranks (always the first and the last).
            var count = Math.Min(sorted.Length, MaxPoints);
            var x = new double[count];
            var y = new double[count];
            for (var i = 0; i < count; i++)
            {
                var rank = count == 1 ? sorted.Length - 1 : (int)Math.Round((double)i * (sorted.Length - 1) / (count - 1));
                x[i] = logX ? Math.Log10(Math.Max(sorted[rank], 1)) : sorted[rank];
                y[i] = 100.0 * (rank + 1) / sorted.Length;
            }
            Line(plot, x, y, run.Label);
        }
        if (logX)
        {
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                LabelFormatter = v => Math.Pow(10, v).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture),
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
            };
        }
        plot.Title($"CDF of {title.ToLowerInvariant()}" + (logX ? " (log scale; values below 1 drawn at 1)" : ""));
        plot.XLabel(axis);
        plot.YLabel("Jobs (%)");
        plot.Axes.SetLimitsY(0, 101);
        return plot;
    }

    private static void Line(Plot plot, double[] x, double[] y, string label)
    {
        var line = plot.Add.ScatterLine(x, y);
        line.LegendText = label;
        line.LineWidth = 1.5f;
        plot.ShowLegend(Alignment.LowerRight);
    }

    /// <summary>The series as a step function in hours, averaged over time buckets when it has too many points.</summary>
    private static (double[] X, double[] Y) Downsample(IReadOnlyList<ClusterSample> series, Func<ClusterSample, double> value)
    {
        if (series.Count == 0)
        {
            return ([0], [0]);
        }
        var first = series[0].Time;
        var last = series[^1].Time;
        if (series.Count <= MaxPoints / 2 || last <= first)
        {
            var sx = new List<double>(series.Count * 2);
            var sy = new List<double>(series.Count * 2);
            for (var i = 0; i < series.Count; i++)
            {
                if (i > 0)
                {
                    sx.Add(series[i].Time / 3600);
                    sy.Add(value(series[i - 1])); // hold the previous value up to the change
                }
                sx.Add(series[i].Time / 3600);
                sy.Add(value(series[i]));
            }
            return (sx.ToArray(), sy.ToArray());
        }
        // Time-weighted mean of the step function over MaxPoints buckets.
        var buckets = MaxPoints;
        var width = (last - first) / buckets;
        var x = new double[buckets];
        var y = new double[buckets];
        var k = 0;
        for (var b = 0; b < buckets; b++)
        {
            var from = first + (b * width);
            var to = from + width;
            double area = 0;
            var t = from;
            while (t < to)
            {
                while (k + 1 < series.Count && series[k + 1].Time <= t)
                {
                    k++;
                }
                var next = k + 1 < series.Count ? Math.Min(series[k + 1].Time, to) : to;
                area += value(series[k]) * (next - t);
                t = next;
            }
            x[b] = (from + (width / 2)) / 3600;
            y[b] = area / width;
        }
        return (x, y);
    }

    private static IEnumerable<string> Save(string directory, string name, Plot plot)
    {
        var png = Path.Combine(directory, name + ".png");
        var svg = Path.Combine(directory, name + ".svg");
        AtomicFile.Write(png, plot.GetImageBytes(Width, Height, ImageFormat.Png));
        AtomicFile.Write(svg, plot.GetSvgXml(Width, Height));
        return [png, svg];
    }
}
