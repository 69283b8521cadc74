using System.Globalization;

namespace AiMass.Simulation;

/// <summary>The shapes a random duration can take.</summary>
public enum DistributionKind
{
    /// <summary>Always the same value.</summary>
    Constant,

    /// <summary>Exponential with the given mean (memoryless: Poisson arrivals, constant failure rate).</summary>
    Exponential,

    /// <summary>Weibull with the given mean and shape (shape &lt; 1: infant mortality; &gt; 1: wear-out).</summary>
    Weibull,

    /// <summary>Log-normal with the given median and sigma (job run times).</summary>
    LogNormal,
}

/// <summary>A distribution of durations, sampled with the simulation's seeded random numbers.</summary>
/// <param name="Kind">Its shape.</param>
/// <param name="Scale">The mean (constant, exponential, Weibull) or the median (log-normal).</param>
/// <param name="Shape">Weibull's shape k, or log-normal's sigma; unused otherwise.</param>
public sealed record Distribution(DistributionKind Kind, TimeSpan Scale, double Shape = 1)
{
    /// <summary>No draw is longer than a century (a heavy tail must not overflow the simulated calendar).</summary>
    private const double MaxSeconds = 100 * 365.25 * 86_400;

    /// <summary>An exponential distribution of mean <paramref name="mean"/>.</summary>
    public static Distribution Exponential(TimeSpan mean) => new(DistributionKind.Exponential, mean);

    /// <summary>Draws one value.</summary>
    public TimeSpan Sample(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var u = 1.0 - random.NextDouble(); // (0, 1]
        var seconds = Scale.TotalSeconds;
        var value = Kind switch
        {
            DistributionKind.Constant => seconds,
            DistributionKind.Exponential => -seconds * Math.Log(u),
            // Scale λ from the mean: mean = λ Γ(1 + 1/k).
            DistributionKind.Weibull => seconds / Gamma(1 + (1 / Shape)) * Math.Pow(-Math.Log(u), 1 / Shape),
            _ => seconds * Math.Exp(Shape * Normal(random)),
        };
        return TimeSpan.FromSeconds(Math.Min(value, MaxSeconds));
    }

    /// <summary>The mean of the distribution.</summary>
    public TimeSpan Mean => Kind == DistributionKind.LogNormal ? Scale * Math.Exp(Shape * Shape / 2) : Scale;

    /// <summary>A standard normal variate (Box–Muller).</summary>
    internal static double Normal(Random random)
    {
        var u1 = 1.0 - random.NextDouble();
        var u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Γ(x) for x &gt; 0 (Lanczos approximation, g = 7; about 15 significant digits).</summary>
    internal static double Gamma(double x)
    {
        if (x < 0.5)
        {
            return Math.PI / (Math.Sin(Math.PI * x) * Gamma(1 - x));
        }
        ReadOnlySpan<double> c =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        x -= 1;
        var a = c[0];
        var t = x + 7.5;
        for (var i = 1; i < 9; i++)
        {
            a += c[i] / (x + i);
        }
        return Math.Sqrt(2 * Math.PI) * Math.Pow(t, x + 0.5) * Math.Exp(-t) * a;
    }

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        DistributionKind.Constant => $"constant {Resources.Quantity.FormatDuration(Scale)}",
        DistributionKind.Exponential => $"exponential, mean {Resources.Quantity.FormatDuration(Scale)}",
        DistributionKind.Weibull => string.Create(CultureInfo.InvariantCulture, $"weibull, mean {Resources.Quantity.FormatDuration(Scale)}, shape {Shape}"),
        _ => string.Create(CultureInfo.InvariantCulture, $"log-normal, median {Resources.Quantity.FormatDuration(Scale)}, sigma {Shape}"),
    };
}

/// <summary>
/// A synthetic DL workload: Poisson arrivals, log-normal run times, a mix of GPU counts, users drawn uniformly — the
/// shape the Philly and PAI analyses report, with every parameter in the scenario.
/// </summary>
public sealed record SyntheticWorkload
{
    /// <summary>How many jobs.</summary>
    public int Jobs { get; init; } = 1000;

    /// <summary>Mean time between submissions (Poisson arrivals).</summary>
    public TimeSpan MeanInterarrival { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Run times.</summary>
    public Distribution Duration { get; init; } = new(DistributionKind.LogNormal, TimeSpan.FromHours(1), 1.5);

    /// <summary>No run time is longer than this (a cluster's time limit); null: unbounded.</summary>
    public TimeSpan? MaxDuration { get; init; } = TimeSpan.FromDays(7);

    /// <summary>GPU counts and their weights (0 GPUs: a CPU job).</summary>
    public IReadOnlyList<KeyValuePair<long, double>> GpuMix { get; init; } =
        [new(1, 0.7), new(2, 0.1), new(4, 0.1), new(8, 0.1)];

    /// <summary>CPU cores of a job without GPUs.</summary>
    public double CpusWithoutGpu { get; init; } = 4;

    /// <summary>Number of users (<c>user1</c> ... <c>userN</c>), each job's drawn uniformly.</summary>
    public int Users { get; init; } = 10;

    /// <summary>Queues and their weights (empty: the default queue).</summary>
    public IReadOnlyList<KeyValuePair<string, double>> Queues { get; init; } = [];

    /// <summary>
    /// How users over-estimate: each estimate is the run time times a factor drawn uniformly from [1, this]; 0 means
    /// jobs give no estimate (as DL jobs mostly do).
    /// </summary>
    public double EstimateFactor { get; init; }

    /// <summary>The GPU model every GPU job asks for (node selector <c>gpu_model</c>); null: any.</summary>
    public string? GpuModel { get; init; }

    /// <summary>The first job's number.</summary>
    public long FirstId { get; init; } = 1;

    /// <summary>When the first arrival may happen.</summary>
    public TimeSpan Start { get; init; }

    /// <summary>Draws the jobs (the same seed gives the same jobs).</summary>
    public IReadOnlyList<SimJob> Generate(Random random, WorkloadDefaults? defaults = null)
    {
        ArgumentNullException.ThrowIfNull(random);
        defaults ??= new WorkloadDefaults();
        var jobs = new List<SimJob>(Jobs);
        var gpuWeight = GpuMix.Sum(p => p.Value);
        var queueWeight = Queues.Sum(p => p.Value);
        var time = Start;
        var arrivals = Distribution.Exponential(MeanInterarrival);
        for (var i = 0; i < Jobs; i++)
        {
            time += arrivals.Sample(random);
            var duration = Duration.Sample(random);
            if (MaxDuration is { } max && duration > max)
            {
                duration = max;
            }
            duration = TimeSpan.FromSeconds(Math.Max(1, Math.Round(duration.TotalSeconds)));
            var gpus = Pick(GpuMix, gpuWeight, random);
            var resources = defaults.Resources(gpus, gpus > 0 ? null : (long)Math.Round(CpusWithoutGpu * 1000), null);
            var queue = Queues.Count == 0 ? defaults.Queue : Pick(Queues, queueWeight, random);
            var user = "user" + (1 + random.Next(Math.Max(1, Users))).ToString(CultureInfo.InvariantCulture);
            TimeSpan? estimate = EstimateFactor >= 1 ? duration * (1 + ((EstimateFactor - 1) * random.NextDouble())) : null;
            jobs.Add(new SimJob(FirstId + i, TimeSpan.FromSeconds(Math.Round(time.TotalSeconds)), duration, 1, resources)
            {
                User = user,
                Queue = queue,
                Estimate = estimate is { } e ? TimeSpan.FromSeconds(Math.Ceiling(e.TotalSeconds)) : null,
                NodeSelector = GpuModel is not null && gpus > 0
                    ? new Dictionary<string, string>(StringComparer.Ordinal) { ["gpu_model"] = GpuModel }
                    : new Dictionary<string, string>(StringComparer.Ordinal),
                Preemptible = defaults.Preemptible,
                StageInBytes = defaults.StageInBytes,
                StageOutBytes = defaults.StageOutBytes,
                CommBandwidth = defaults.CommBandwidth,
            });
        }
        return jobs;
    }

    private static T Pick<T>(IReadOnlyList<KeyValuePair<T, double>> mix, double total, Random random)
    {
        var x = random.NextDouble() * total;
        foreach (var (value, weight) in mix)
        {
            x -= weight;
            if (x < 0)
            {
                return value;
            }
        }
        return mix[^1].Key;
    }
}
