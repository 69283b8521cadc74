// Benchmark of the samplers against Optuna 3.1's TPE (Debian's python3-optuna), in the same run:
//   dotnet AiMass.Bench.Tuning.dll [SEEDS=20] [BUDGET=200] [--no-peer] [--samplers a,b,...] [--functions a,b,...]
// Functions: Branin (2-d), Hartmann-6, Levy-10, Rosenbrock-10, and a conditional one (a categorical switch selecting
// one of three sub-functions with their own parameters; the branch with the best optimum, "b", looks worse at first).
// For each: simple regret (best found minus the known optimum) at 50, 100 and 200 evaluations, median and
// interquartile range over the seeds, per sampler; Optuna's TPE runs through peer.py. Then the sampler overhead: the
// time to sample one trial once 1,000 trials of Hartmann-6 are complete.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AiMass.Tuning;

var seeds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20;
var budget = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200;
int[] checkpoints = [.. ((int[])[50, 100, 200]).Where(c => c <= budget)];

var functions = new (string Name, SearchSpace Space, Func<Trial, double> F, double Optimum)[]
{
    ("branin", Functions.BraninSpace, Functions.Branin, 0.397887),
    ("hartmann6", Functions.Box("x", 6, 0, 1), Functions.Hartmann6, -3.32237),
    ("levy10", Functions.Box("x", 10, -10, 10), Functions.Levy10, 0),
    ("rosenbrock10", Functions.Box("x", 10, -5, 10), Functions.Rosenbrock10, 0),
    ("conditional", Functions.ConditionalSpace, Functions.Conditional, 0),
};
var samplers = new (string Name, Func<ISampler> Make)[]
{
    ("random", () => new RandomSampler()),
    ("tpe", () => new TpeSampler(new TpeOptions { Multivariate = false })),
    ("tpe-density", () => new TpeSampler(new TpeOptions { UnitPeakKernels = false })),
    ("tpe-multivariate", () => new TpeSampler(new TpeOptions { Multivariate = true })),
    ("mcts", () => new MctsSampler()),
    ("hmcts", () => new HierarchicalMctsSampler()),
    ("hmcts-norefine", () => new HierarchicalMctsSampler(MctsOptions.Hierarchical with { LeafRefinement = 0 })),
};
if (Array.IndexOf(args, "--samplers") is var at and >= 0 && at + 1 < args.Length)
{
    var wanted = args[at + 1].Split(',');
    samplers = [.. samplers.Where(s => wanted.Contains(s.Name))];
}
if (Array.IndexOf(args, "--functions") is var fat and >= 0 && fat + 1 < args.Length)
{
    var wanted = args[fat + 1].Split(',');
    functions = [.. functions.Where(f => wanted.Contains(f.Name))];
}

var regrets = new Dictionary<string, Dictionary<string, List<double[]>>>();
foreach (var (name, space, f, optimum) in functions)
{
    regrets[name] = [];
    foreach (var (sampler, make) in samplers)
    {
        var runs = new List<double[]>();
        for (var seed = 0; seed < seeds; seed++)
        {
            var study = new Study(space, make(), seed: seed);
            study.Optimize(f, budget);
            var values = study.Trials.Select(t => t.Value!.Value).ToList();
            runs.Add(checkpoints.Select(c => values.Take(c).Min() - optimum).ToArray());
        }
        regrets[name][sampler] = runs;
    }
}

// Overhead: one Ask with 1,000 complete trials.
var overhead = new Dictionary<string, double>();
foreach (var (sampler, make) in samplers)
{
    var study = new Study(Functions.Box("x", 6, 0, 1), make(), seed: 0);
    study.Optimize(Functions.Hartmann6, 1000);
    var watch = Stopwatch.StartNew();
    study.Optimize(Functions.Hartmann6, 20);
    overhead[sampler] = watch.Elapsed.TotalMilliseconds / 20;
}

// The peer, in the same run.
var peer = Path.Combine(AppContext.BaseDirectory, "peer.py");
var peerNote = args.Contains("--no-peer") ? "Optuna not run (--no-peer)" : await RunPeerAsync();

async Task<string?> RunPeerAsync()
{
    try
    {
        var info = new ProcessStartInfo("/usr/bin/python3", [peer, seeds.ToString(CultureInfo.InvariantCulture), budget.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            return $"peer.py failed ({process.ExitCode}): {(await stderr).Trim().Split('\n').LastOrDefault()}";
        }
        using var json = JsonDocument.Parse(await stdout);
        foreach (var function in json.RootElement.GetProperty("regrets").EnumerateObject().Where(f => regrets.ContainsKey(f.Name)))
        {
            foreach (var sampler in function.Value.EnumerateObject())
            {
                regrets[function.Name][sampler.Name] = sampler.Value.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToList();
            }
        }
        foreach (var s in json.RootElement.GetProperty("overhead_ms").EnumerateObject())
        {
            overhead[s.Name] = s.Value.GetDouble();
        }
    }
    catch (System.ComponentModel.Win32Exception e)
    {
        return $"peer.py could not run: {e.Message}";
    }
    return null;
}

Console.WriteLine($"## Samplers, {seeds} seeds, {budget} evaluations: simple regret, median [IQR]");
Console.WriteLine();
Console.WriteLine("| function | sampler | " + string.Join(" | ", checkpoints.Select(c => $"@{c}")) + " | ratio to optuna-tpe @" + checkpoints[^1] + " |");
Console.WriteLine("|---|---|" + string.Concat(checkpoints.Select(_ => "---:|")) + "---:|");
foreach (var (name, _, _, _) in functions)
{
    regrets[name].TryGetValue("optuna-tpe", out var reference);
    foreach (var (sampler, runs) in regrets[name].OrderBy(p => p.Key, StringComparer.Ordinal))
    {
        var cells = checkpoints.Select((_, i) => Stat(runs.Select(r => r[i]).ToList()));
        var ratio = reference is null ? "" : (Median(runs.Select(r => r[^1]).ToList()) / Math.Max(Median(reference.Select(r => r[^1]).ToList()), 1e-12)).ToString("0.00", CultureInfo.InvariantCulture);
        Console.WriteLine($"| {name} | {sampler} | {string.Join(" | ", cells)} | {ratio} |");
    }
}
Console.WriteLine();
Console.WriteLine("| sampler | ms per trial with 1,000 complete trials (Hartmann-6) |");
Console.WriteLine("|---|---:|");
foreach (var (sampler, ms) in overhead.OrderBy(p => p.Key, StringComparer.Ordinal))
{
    Console.WriteLine($"| {sampler} | {ms.ToString("0.00", CultureInfo.InvariantCulture)} |");
}
if (peerNote is not null)
{
    Console.WriteLine();
    Console.WriteLine(peerNote);
}
return 0;

static double Median(List<double> values)
{
    values.Sort();
    return values.Count % 2 == 1 ? values[values.Count / 2] : (values[(values.Count / 2) - 1] + values[values.Count / 2]) / 2;
}

static string Stat(List<double> values)
{
    values.Sort();
    double Q(double q) => values[(int)Math.Clamp(Math.Round(q * (values.Count - 1)), 0, values.Count - 1)];
    return string.Create(CultureInfo.InvariantCulture, $"{Median(values):G3} [{Q(0.25):G3}, {Q(0.75):G3}]");
}

/// <summary>The benchmark functions, as in peer.py.</summary>
internal static class Functions
{
    public static readonly SearchSpace BraninSpace = SearchSpace.Builder().Float("x", -5, 10).Float("y", 0, 15).Build();

    public static readonly SearchSpace ConditionalSpace = SearchSpace.Builder()
        .Categorical("f", ["a", "b", "c"])
        .Float("a1", -5, 5, when: new Condition("f", ["a"]))
        .Float("b1", -5, 5, when: new Condition("f", ["b"]))
        .Float("b2", -5, 5, when: new Condition("f", ["b"]))
        .Int("c1", 0, 100, when: new Condition("f", ["c"]))
        .Build();

    private static readonly double[,] A = { { 10, 3, 17, 3.5, 1.7, 8 }, { 0.05, 10, 17, 0.1, 8, 14 }, { 3, 3.5, 1.7, 10, 17, 8 }, { 17, 8, 0.05, 10, 0.1, 14 } };
    private static readonly double[,] P = { { 1312, 1696, 5569, 124, 8283, 5886 }, { 2329, 4135, 8307, 3736, 1004, 9991 }, { 2348, 1451, 3522, 2883, 3047, 6650 }, { 4047, 8828, 8732, 5743, 1091, 381 } };
    private static readonly double[] Alpha = [1.0, 1.2, 3.0, 3.2];

    public static SearchSpace Box(string prefix, int dims, double low, double high)
    {
        var builder = SearchSpace.Builder();
        for (var i = 0; i < dims; i++)
        {
            builder.Float(prefix + i.ToString(CultureInfo.InvariantCulture), low, high);
        }
        return builder.Build();
    }

    private static double[] X(Trial t, int dims) => Enumerable.Range(0, dims).Select(i => t.Float("x" + i.ToString(CultureInfo.InvariantCulture))).ToArray();

    public static double Branin(Trial t)
    {
        var x = t.Float("x");
        var y = t.Float("y");
        double b = 5.1 / (4 * Math.PI * Math.PI), c = 5 / Math.PI, tt = 1 / (8 * Math.PI);
        return Math.Pow(y - (b * x * x) + (c * x) - 6, 2) + (10 * (1 - tt) * Math.Cos(x)) + 10;
    }

    public static double Hartmann6(Trial t)
    {
        var x = X(t, 6);
        var sum = 0.0;
        for (var i = 0; i < 4; i++)
        {
            var inner = 0.0;
            for (var j = 0; j < 6; j++)
            {
                inner += A[i, j] * Math.Pow(x[j] - (P[i, j] * 1e-4), 2);
            }
            sum += Alpha[i] * Math.Exp(-inner);
        }
        return -sum;
    }

    public static double Levy10(Trial t)
    {
        var w = X(t, 10).Select(v => 1 + ((v - 1) / 4)).ToArray();
        var s = Math.Pow(Math.Sin(Math.PI * w[0]), 2);
        for (var i = 0; i < w.Length - 1; i++)
        {
            s += Math.Pow(w[i] - 1, 2) * (1 + (10 * Math.Pow(Math.Sin((Math.PI * w[i]) + 1), 2)));
        }
        return s + (Math.Pow(w[^1] - 1, 2) * (1 + Math.Pow(Math.Sin(2 * Math.PI * w[^1]), 2)));
    }

    public static double Rosenbrock10(Trial t)
    {
        var x = X(t, 10);
        var s = 0.0;
        for (var i = 0; i < 9; i++)
        {
            s += (100 * Math.Pow(x[i + 1] - (x[i] * x[i]), 2)) + Math.Pow(1 - x[i], 2);
        }
        return s;
    }

    public static double Conditional(Trial t) => t.Choice("f") switch
    {
        "a" => 1 + Math.Abs(t.Float("a1")),
        "b" => Math.Pow(t.Float("b1") - 1.5, 2) + Math.Pow(t.Float("b2") + 2, 2),
        _ => 2 + (Math.Abs(t.Int("c1") - 37) / 10.0),
    };
}
