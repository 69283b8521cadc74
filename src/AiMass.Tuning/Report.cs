using System.Globalization;
using AiMass.IO;
using ScottPlot;

namespace AiMass.Tuning;

/// <summary>One trial in the optimisation history.</summary>
/// <param name="Number">The trial.</param>
/// <param name="State">running, complete, pruned or failed.</param>
/// <param name="Value">Its value (complete, or pruned at its last intermediate value).</param>
/// <param name="Best">The best complete value up to and including this trial.</param>
public sealed record HistoryPoint(int Number, string State, double? Value, double? Best);

/// <summary>An axis of the parallel-coordinates view: a parameter, scaled as the sampler sees it.</summary>
/// <param name="Name">The parameter.</param>
/// <param name="Kind">float, int or categorical.</param>
/// <param name="Low">Lower bound (numeric).</param>
/// <param name="High">Upper bound (numeric).</param>
/// <param name="Log">Whether the axis is logarithmic.</param>
/// <param name="Choices">The choices of a categorical, bottom to top.</param>
public sealed record ParallelAxis(string Name, string Kind, double Low, double High, bool Log, IReadOnlyList<string> Choices);

/// <summary>A complete trial across the axes.</summary>
/// <param name="Number">The trial.</param>
/// <param name="Value">Its value.</param>
/// <param name="Positions">Per axis, its place from 0 (bottom) to 1 (top); absent when the parameter is inactive in it.</param>
/// <param name="Params">Its parameters as written.</param>
public sealed record ParallelLine(int Number, double Value, IReadOnlyDictionary<string, double> Positions, IReadOnlyDictionary<string, string> Params);

/// <summary>How much of the variation of the objective one parameter explains.</summary>
/// <param name="Name">The parameter.</param>
/// <param name="Importance">Its share, from 0 to 1; the shares of a study add up to 1 (when any is above 0).</param>
/// <param name="Trials">Complete trials it was estimated from.</param>
public sealed record ParameterImportance(string Name, double Importance, int Trials);

/// <summary>
/// What a study's report shows (served as JSON for a UI, drawn as PNG and SVG by <see cref="Write"/>): the optimisation
/// history, the complete trials in parallel coordinates, and each parameter's importance.
/// </summary>
/// <param name="Direction">minimize or maximize.</param>
/// <param name="History">Every ended trial, by number.</param>
/// <param name="Axes">The parallel-coordinates axes (the space's parameters).</param>
/// <param name="Lines">The complete trials.</param>
/// <param name="Importance">Parameters from most to least important.</param>
public sealed record StudyReport(string Direction, IReadOnlyList<HistoryPoint> History, IReadOnlyList<ParallelAxis> Axes, IReadOnlyList<ParallelLine> Lines,
    IReadOnlyList<ParameterImportance> Importance)
{
    private const int Width = 1000;
    private const int Height = 560;

    /// <summary>The report of a study's trials.</summary>
    public static StudyReport Of(IStudyView study)
    {
        ArgumentNullException.ThrowIfNull(study);
        var trials = study.Trials;
        var history = new List<HistoryPoint>();
        double? best = null;
        foreach (var t in trials.Where(t => t.State != TrialState.Running))
        {
            if (t.State == TrialState.Complete && (best is null || study.Loss(t.Value!.Value) < study.Loss(best.Value)))
            {
                best = t.Value;
            }
            history.Add(new HistoryPoint(t.Number, Name(t.State), t.Value, best));
        }
        var axes = study.Space.Parameters.Select(p => new ParallelAxis(p.Name, Name(p.Kind), p.Low, p.High, p.Log, p.Choices)).ToList();
        var complete = trials.Where(t => t.State == TrialState.Complete).ToList();
        var lines = complete.Select(t => new ParallelLine(t.Number, t.Value!.Value,
            t.Values.ToDictionary(v => v.Key, v => Position(study.Space[v.Key], v.Value), StringComparer.Ordinal), t.Params)).ToList();
        return new StudyReport(Name(study.Direction), history, axes, lines, Importances(study, complete));
    }

    /// <summary>Writes <c>history</c>, <c>parallel-coordinates</c> and <c>importance</c> as .png and .svg, and <c>report.json</c>; returns the files written.</summary>
    public IReadOnlyList<string> Write(string directory, string title)
    {
        Directory.CreateDirectory(directory);
        var files = new List<string>();
        files.AddRange(Save(directory, "history", HistoryPlot(title)));
        files.AddRange(Save(directory, "parallel-coordinates", ParallelPlot(title)));
        files.AddRange(Save(directory, "importance", ImportancePlot(title)));
        var json = Path.Combine(directory, "report.json");
        AtomicFile.Write(json, System.Text.Json.JsonSerializer.Serialize(this, ReportJson) + "\n");
        files.Add(json);
        return files;
    }

    private static readonly System.Text.Json.JsonSerializerOptions ReportJson = new()
    {
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    private static string Name<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    /// <summary>A parameter's value placed on its axis, 0 to 1 (log axes in log space; choices evenly spaced).</summary>
    private static double Position(Parameter p, double value) => p.Kind == ParameterKind.Categorical
        ? (p.Choices.Count == 1 ? 0.5 : value / (p.Choices.Count - 1))
        : Math.Clamp(p.ToUnit(value), 0, 1);

    /// <summary>
    /// Each parameter's share of the variation of the objective: a first-order variance decomposition. The complete
    /// trials are grouped by the parameter (its choices; numbers in equal-count bins; "inactive" as a group of its own,
    /// so a conditional parameter and its parent are both seen), and the share of the variance of the trials' ranks
    /// between the groups is estimated with epsilon-squared, which removes the part that noise alone puts between
    /// groups — so a parameter that does nothing gets about 0 rather than a share that grows with its number of
    /// groups. Ranks, not values, so one diverged trial does not decide everything. Shares are normalised to add up
    /// to 1. Simpler than fANOVA (no random forest, no interactions); it is what the report shows.
    /// </summary>
    internal static IReadOnlyList<ParameterImportance> Importances(IStudyView study, IReadOnlyList<Trial> complete)
    {
        var n = complete.Count;
        if (n < 3)
        {
            return study.Space.Parameters.Select(p => new ParameterImportance(p.Name, 0, n)).ToList();
        }
        var order = complete.Select((t, i) => (Loss: study.Loss(t.Value!.Value), i)).OrderBy(x => x.Loss).ToList();
        var rank = new double[n];
        for (var i = 0; i < n;)
        {
            var j = i;
            while (j + 1 < n && order[j + 1].Loss == order[i].Loss)
            {
                j++;
            }
            for (var k = i; k <= j; k++)
            {
                rank[order[k].i] = (i + j) / 2.0; // ties share their mean rank
            }
            i = j + 1;
        }
        var mean = rank.Average();
        var total = rank.Sum(r => (r - mean) * (r - mean));
        var raw = new List<(string Name, double Share)>();
        foreach (var p in study.Space.Parameters)
        {
            var groups = Groups(p, complete);
            var k = groups.Distinct().Count();
            double share = 0;
            if (k > 1 && total > 0 && n > k)
            {
                var between = groups.Select((g, i) => (g, r: rank[i])).GroupBy(x => x.g)
                    .Sum(g => g.Count() * Math.Pow(g.Average(x => x.r) - mean, 2));
                var within = (total - between) / (n - k);
                share = Math.Max(0, (between - ((k - 1) * within)) / (total + within));
            }
            raw.Add((p.Name, share));
        }
        var sum = raw.Sum(r => r.Share);
        return raw.Select(r => new ParameterImportance(r.Name, sum > 0 ? r.Share / sum : 0, n))
            .OrderByDescending(r => r.Importance).ThenBy(r => r.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>The group of each trial for one parameter: -1 inactive, else its choice or its value's bin.</summary>
    private static int[] Groups(Parameter p, IReadOnlyList<Trial> trials)
    {
        var groups = new int[trials.Count];
        if (p.Kind == ParameterKind.Categorical)
        {
            for (var i = 0; i < trials.Count; i++)
            {
                groups[i] = trials[i].Values.TryGetValue(p.Name, out var v) ? (int)v : -1;
            }
            return groups;
        }
        var active = trials.Select((t, i) => (Has: t.Values.TryGetValue(p.Name, out var v), V: v, i)).Where(x => x.Has).OrderBy(x => x.V).ToList();
        Array.Fill(groups, -1);
        if (active.Count == 0)
        {
            return groups;
        }
        // Equal-count bins, about sqrt(n) of them (2 to 8); equal values stay in one bin.
        var bins = Math.Clamp((int)Math.Round(Math.Sqrt(active.Count)), 2, 8);
        var bin = 0;
        for (var j = 0; j < active.Count; j++)
        {
            var target = j * bins / active.Count;
            if (target > bin && active[j].V != active[j - 1].V)
            {
                bin = target;
            }
            groups[active[j].i] = bin;
        }
        return groups;
    }

    private Plot HistoryPlot(string title)
    {
        var plot = new Plot();
        foreach (var state in new[] { "complete", "pruned" })
        {
            var points = History.Where(h => h.State == state && h.Value is not null).ToList();
            if (points.Count == 0)
            {
                continue;
            }
            var markers = plot.Add.ScatterPoints(points.Select(h => (double)h.Number).ToArray(), points.Select(h => h.Value!.Value).ToArray());
            markers.LegendText = state == "complete" ? "complete trials" : "pruned trials (last intermediate value)";
            markers.MarkerSize = state == "complete" ? 6 : 4;
            if (state == "pruned")
            {
                markers.Color = Colors.Gray.WithAlpha(0.6);
            }
        }
        var best = History.Where(h => h.Best is not null).ToList();
        if (best.Count > 0)
        {
            var line = plot.Add.ScatterLine(best.Select(h => (double)h.Number).ToArray(), best.Select(h => h.Best!.Value).ToArray());
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.LegendText = "best so far";
            line.LineWidth = 2;
            line.Color = Colors.OrangeRed;
        }
        plot.ShowLegend(Direction == "minimize" ? Alignment.UpperRight : Alignment.LowerRight);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.Title($"{title}: optimisation history ({Direction})");
        plot.XLabel("Trial");
        plot.YLabel("Objective");
        return plot;
    }

    private Plot ParallelPlot(string title)
    {
        var plot = new Plot();
        var count = Axes.Count + 1;
        if (Lines.Count > 0)
        {
            var low = Lines.Min(l => l.Value);
            var high = Lines.Max(l => l.Value);
            var colormap = new ScottPlot.Colormaps.Viridis();
            // Worst first, so the best trials are drawn on top.
            foreach (var line in Lines.OrderBy(l => Direction == "minimize" ? -l.Value : l.Value))
            {
                var objective = high > low ? (line.Value - low) / (high - low) : 0.5;
                var xs = new List<double>();
                var ys = new List<double>();
                for (var a = 0; a < Axes.Count; a++)
                {
                    if (line.Positions.TryGetValue(Axes[a].Name, out var y))
                    {
                        xs.Add(a);
                        ys.Add(y);
                    }
                }
                xs.Add(Axes.Count);
                ys.Add(objective);
                var goodness = Direction == "minimize" ? 1 - objective : objective;
                var drawn = plot.Add.ScatterLine(xs.ToArray(), ys.ToArray());
                drawn.Color = colormap.GetColor(goodness).WithAlpha(0.75);
                drawn.LineWidth = 1.5f;
                drawn.MarkerSize = 3;
            }
        }
        var positions = Enumerable.Range(0, count).Select(i => (double)i).ToArray();
        var labels = Axes.Select(a => a.Name + "\n" + Range(a)).Append("objective\n" + (Lines.Count > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{Lines.Min(l => l.Value):G4}..{Lines.Max(l => l.Value):G4}") : "")).ToArray();
        plot.Axes.Bottom.SetTicks(positions, labels);
        plot.Axes.Left.SetTicks([0, 0.5, 1], ["low", "", "high"]);
        foreach (var x in positions)
        {
            var axis = plot.Add.VerticalLine(x);
            axis.Color = Colors.Black.WithAlpha(0.4);
            axis.LineWidth = 1;
        }
        plot.Axes.SetLimits(-0.3, count - 0.7, -0.05, 1.05);
        plot.Title($"{title}: parallel coordinates of {Lines.Count} complete trials (brighter is better)");
        return plot;
    }

    private static string Range(ParallelAxis a) => a.Kind == "categorical"
        ? string.Join("|", a.Choices)
        : string.Create(CultureInfo.InvariantCulture, $"{a.Low:G3}..{a.High:G3}{(a.Log ? " log" : "")}");

    private Plot ImportancePlot(string title)
    {
        var plot = new Plot();
        var rows = Importance.Reverse().ToList(); // most important at the top
        var bars = rows.Select((r, i) => new Bar { Position = i, Value = r.Importance, FillColor = Colors.SteelBlue }).ToList();
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        plot.Axes.Left.SetTicks(rows.Select((_, i) => (double)i).ToArray(), rows.Select(r => r.Name).ToArray());
        plot.Axes.SetLimitsX(0, Math.Max(0.05, rows.Count == 0 ? 1 : rows.Max(r => r.Importance) * 1.1));
        plot.Title($"{title}: parameter importance ({(rows.Count > 0 ? rows[0].Trials : 0)} complete trials)");
        plot.XLabel("Share of the objective's variation (first-order, ranks)");
        return plot;
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
