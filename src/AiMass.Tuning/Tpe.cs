namespace AiMass.Tuning;

/// <summary>Settings of the tree-structured Parzen estimator.</summary>
public sealed record TpeOptions
{
    /// <summary>Trials drawn at random before the model is used (Optuna's default 10).</summary>
    public int StartupTrials { get; init; } = 10;

    /// <summary>Candidates drawn from the good-trials model; the one with the best ratio l(x)/g(x) is taken (Optuna's 24).</summary>
    public int Candidates { get; init; } = 24;

    /// <summary>
    /// Model parameters jointly (their correlations count); off by default, as in Optuna. On a conditional space each
    /// group of parameters that share a condition is modelled jointly from the trials that took that branch — never
    /// falling back to independent draws.
    /// </summary>
    public bool Multivariate { get; init; }

    /// <summary>Weight of the prior (the whole range) among the kernels.</summary>
    public double PriorWeight { get; init; } = 1.0;

    /// <summary>Count trials still running as bad ones ("constant liar"), so parallel trials spread out.</summary>
    public bool ConstantLiar { get; init; } = true;

    /// <summary>
    /// Score candidates with every continuous kernel at the same peak height instead of as a density (divided by its
    /// width), as Optuna's TPE did up to 3.4 (its truncated normal's log-pdf left out the scale: optuna#5109, fixed in
    /// 3.5). Wide kernels then weigh more, which flattens the model of the bad trials where they are dense and favours
    /// candidates near good trials there. The default because it searched better in our benchmark (docs/benchmarks.md:
    /// Hartmann-6, Rosenbrock-10 and the conditional function clearly, Branin and Levy-10 slightly worse); false gives
    /// true densities.
    /// </summary>
    public bool UnitPeakKernels { get; init; } = true;

    /// <summary>How many of n trials count as good: min(ceil(0.1 n), 25), as Optuna.</summary>
    public Func<int, int> Gamma { get; init; } = n => Math.Min((int)Math.Ceiling(0.1 * n), 25);
}

/// <summary>
/// The tree-structured Parzen estimator (Bergstra et al. 2011; the defaults of Optuna 3): the trials so far are split
/// into good (the best γ) and the rest; each side is modelled as a mixture of truncated Gaussian kernels (categorical:
/// smoothed counts) around its observations plus a prior over the range; candidates are drawn from the good model and
/// the one maximising l(x)/g(x) is taken.
/// </summary>
public sealed class TpeSampler(TpeOptions? options = null) : ISampler, IConditionalSampler
{
    private readonly TpeOptions _options = options ?? new TpeOptions();

    /// <summary>The settings.</summary>
    public TpeOptions Options => _options;

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> Sample(IStudyView study, Random random) =>
        SampleGiven(study, random, new Dictionary<string, double>(StringComparer.Ordinal));

    /// <summary>The configuration with <paramref name="given"/> kept and every other active parameter drawn by TPE.</summary>
    public IReadOnlyDictionary<string, double> SampleGiven(IStudyView study, Random random, IReadOnlyDictionary<string, double> given)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(given);
        var space = study.Space;
        // Complete trials by loss, then pruned ones: those that got further first, then by their last value (Optuna's order).
        var finished = study.Trials
            .Where(t => t.State is TrialState.Complete or TrialState.Pruned && t.Value is not null)
            .OrderBy(t => t.State == TrialState.Complete ? 0 : 1)
            .ThenByDescending(t => t.State == TrialState.Complete || t.Intermediate.Count == 0 ? 0 : t.Intermediate.Keys.Max())
            .ThenBy(t => study.Loss(t.Value!.Value)).ThenBy(t => t.Number).ToList();
        var values = new Dictionary<string, double>(given, StringComparer.Ordinal);
        if (finished.Count < _options.StartupTrials)
        {
            return RandomSampler.Draw(space, random, values);
        }
        var goodCount = Math.Max(1, _options.Gamma(finished.Count));
        var good = finished.Take(goodCount).OrderBy(t => t.Number).ToList();
        var bad = finished.Skip(goodCount).ToList();
        if (_options.ConstantLiar)
        {
            bad.AddRange(study.Trials.Where(t => t.State == TrialState.Running));
        }
        bad = [.. bad.OrderBy(t => t.Number)];
        // Groups of parameters that share a condition, parents' groups first.
        var groups = space.Ordered.GroupBy(p => p.When is null ? "" : p.When.Parent + "=" + string.Join("|", p.When.Choices), StringComparer.Ordinal).ToList();
        foreach (var group in groups)
        {
            var members = group.Where(p => !values.ContainsKey(p.Name) && space.Active(p, values)).ToList();
            if (members.Count == 0)
            {
                continue;
            }
            if (_options.Multivariate)
            {
                SampleJointly(members, good, bad, random, values);
            }
            else
            {
                foreach (var p in members)
                {
                    SampleJointly([p], good, bad, random, values);
                }
            }
        }
        return values;
    }

    /// <summary>Draws the parameters of one group from the good model, keeping the candidate with the best l/g.</summary>
    private void SampleJointly(List<Parameter> group, List<Trial> good, List<Trial> bad, Random random, Dictionary<string, double> values)
    {
        // Observations: the trials in which every parameter of the group exists (they took this branch).
        var l = new Mixture(group, good.Where(t => group.All(p => t.Values.ContainsKey(p.Name))).ToList(), _options);
        var g = new Mixture(group, bad.Where(t => group.All(p => t.Values.ContainsKey(p.Name))).ToList(), _options);
        double[]? best = null;
        var bestScore = double.NegativeInfinity;
        for (var c = 0; c < _options.Candidates; c++)
        {
            var x = l.Draw(random);
            var score = l.LogDensity(x) - g.LogDensity(x);
            if (score > bestScore || best is null)
            {
                best = x;
                bestScore = score;
            }
        }
        for (var d = 0; d < group.Count; d++)
        {
            values[group[d].Name] = group[d].Snap(group[d].Log && group[d].Kind != ParameterKind.Categorical ? Math.Exp(best![d]) : best![d]);
        }
    }

    /// <summary>A mixture of product kernels over a group's dimensions: one component per observation, plus the prior.</summary>
    private sealed class Mixture
    {
        private readonly List<Parameter> _dims;
        private readonly int _k;
        private readonly int _observations;
        private readonly double[] _weights; // per component (observations, then the prior), summing to 1
        private readonly double[] _logWeights;
        // Flat [component * k + dim]: kernel centres (categorical: the observed index), widths, and log normalisers
        // (-log Z for discrete dims, -log(σ√(2π)) - log Z for continuous ones).
        private readonly double[] _mu;
        private readonly double[] _sigma;
        private readonly double[] _logNorm;
        private readonly double[] _low;
        private readonly double[] _high;
        private readonly DimKind[] _kind;
        private readonly double _categoricalSmoothing;
        // One continuous dimension (univariate TPE, the common case): 1/σ and log weight + log normaliser per component.
        private readonly double[]? _inverseSigma;
        private readonly double[]? _offset;

        private enum DimKind
        {
            Continuous,
            Binned,
            Categorical,
        }

        public Mixture(List<Parameter> dims, List<Trial> trials, TpeOptions options)
        {
            _dims = dims;
            var n = trials.Count;
            _observations = n;
            var k = _k = dims.Count;
            _low = new double[k];
            _high = new double[k];
            _kind = new DimKind[k];
            for (var d = 0; d < k; d++)
            {
                (_low[d], _high[d]) = Bounds(dims[d]);
                _kind[d] = dims[d].Kind == ParameterKind.Categorical ? DimKind.Categorical : IsBinned(dims[d]) ? DimKind.Binned : DimKind.Continuous;
            }
            // Weights: uniform under 25 observations, then the older ones fade (Optuna's default_weights).
            var w = new double[n + 1];
            for (var i = 0; i < n; i++)
            {
                w[i] = n < 25 || i >= n - 25 ? 1.0 : (1.0 / n) + ((1.0 - (1.0 / n)) * i / Math.Max(1, n - 25 - 1));
            }
            w[n] = options.PriorWeight;
            var total = w.Sum();
            _weights = new double[n + 1];
            _logWeights = new double[n + 1];
            for (var i = 0; i <= n; i++)
            {
                _weights[i] = w[i] / total;
                _logWeights[i] = Math.Log(_weights[i]);
            }
            _mu = new double[(n + 1) * k];
            _sigma = new double[(n + 1) * k];
            _logNorm = new double[(n + 1) * k];
            var column = new double[n + 1];
            var order = new int[n + 1];
            for (var d = 0; d < k; d++)
            {
                var p = dims[d];
                var range = _high[d] - _low[d];
                for (var i = 0; i < n; i++)
                {
                    _mu[(i * k) + d] = Transform(p, trials[i].Values[p.Name]);
                }
                _mu[(n * k) + d] = p.Kind == ParameterKind.Categorical ? -1 : (_low[d] + _high[d]) / 2;
                if (p.Kind == ParameterKind.Categorical)
                {
                    continue;
                }
                if (options.Multivariate && k > 1)
                {
                    // Scott's rule for joint kernels: 0.2 n^(-1/(k+4)) of the range (Optuna's multivariate TPE, as BOHB).
                    var sigma = 0.2 * Math.Pow(Math.Max(n, 1), -1.0 / (k + 4)) * range;
                    for (var i = 0; i < n; i++)
                    {
                        _sigma[(i * k) + d] = sigma;
                    }
                }
                else
                {
                    // Each kernel as wide as the larger gap to its neighbours, the prior's centre among them and the range's
                    // ends beyond them; the outermost two take their inner gap only.
                    for (var i = 0; i <= n; i++)
                    {
                        column[i] = _mu[(i * k) + d];
                        order[i] = i;
                    }
                    Array.Sort(column, order);
                    for (var r = 0; r <= n; r++)
                    {
                        var left = column[r] - (r > 0 ? column[r - 1] : _low[d]);
                        var right = (r < n ? column[r + 1] : _high[d]) - column[r];
                        _sigma[(order[r] * k) + d] = n >= 1 && r == 0 ? right : n >= 1 && r == n ? left : Math.Max(left, right);
                    }
                }
                // Magic clip: no kernel narrower than range / min(100, kernels + 1) or wider than the range.
                for (var i = 0; i < n; i++)
                {
                    var at = (i * k) + d;
                    _sigma[at] = Math.Max(Math.Clamp(_sigma[at], range / Math.Min(100.0, n + 2), range), 1e-12 + (range * 1e-9));
                }
                _sigma[(n * k) + d] = range;
                for (var j = 0; j <= n; j++)
                {
                    var at = (j * k) + d;
                    var s = _sigma[at];
                    var z = NormalCdf((_high[d] - _mu[at]) / s) - NormalCdf((_low[d] - _mu[at]) / s);
                    _logNorm[at] = -Math.Log(Math.Max(z, 1e-300))
                        - (_kind[d] == DimKind.Binned ? 0 : Math.Log((options.UnitPeakKernels ? 1 : s) * Math.Sqrt(2 * Math.PI)));
                }
            }
            _categoricalSmoothing = options.PriorWeight / (n + 1);
            if (k == 1 && _kind[0] == DimKind.Continuous)
            {
                _inverseSigma = new double[n + 1];
                _offset = new double[n + 1];
                for (var j = 0; j <= n; j++)
                {
                    _inverseSigma[j] = 1 / _sigma[j];
                    _offset[j] = _logWeights[j] + _logNorm[j];
                }
            }
        }

        /// <summary>Where a parameter's kernels live: its range in the transformed space, widened by half a step when discrete.</summary>
        private static (double Low, double High) Bounds(Parameter p)
        {
            if (p.Kind == ParameterKind.Categorical)
            {
                return (0, p.Choices.Count);
            }
            var half = (p.Step ?? 0) / 2;
            return p.Log
                ? (Math.Log(Math.Max(p.Low - half, p.Low / 2)), Math.Log(p.High + half))
                : (p.Low - half, p.High + half);
        }

        private static double Transform(Parameter p, double v) => p.Log && p.Kind != ParameterKind.Categorical ? Math.Log(v) : v;

        public double[] Draw(Random random)
        {
            var u = random.NextDouble();
            var j = 0;
            while (j < _weights.Length - 1 && (u -= _weights[j]) > 0)
            {
                j++;
            }
            var x = new double[_k];
            for (var d = 0; d < x.Length; d++)
            {
                var p = _dims[d];
                if (_kind[d] == DimKind.Categorical)
                {
                    x[d] = DrawCategorical(p, d, j, random);
                    continue;
                }
                double v;
                var tries = 0;
                var at = (j * _k) + d;
                do
                {
                    v = _mu[at] + (_sigma[at] * Normal(random));
                }
                while ((v < _low[d] || v > _high[d]) && ++tries < 100);
                x[d] = Math.Clamp(v, _low[d], _high[d]);
                // Snap in the parameter's own space so the density is scored at a legal value.
                x[d] = Transform(p, p.Snap(p.Log ? Math.Exp(x[d]) : x[d]));
            }
            return x;
        }

        private double DrawCategorical(Parameter p, int d, int component, Random random)
        {
            var k = p.Choices.Count;
            var u = random.NextDouble();
            for (var c = 0; c < k; c++)
            {
                u -= CategoricalProbability(component, d, c, k);
                if (u <= 0)
                {
                    return c;
                }
            }
            return k - 1;
        }

        private double CategoricalProbability(int component, int d, int choice, int k)
        {
            if (component == _observations)
            {
                return 1.0 / k; // the prior
            }
            var hit = (int)_mu[(component * _k) + d] == choice ? 1.0 : 0.0;
            return (hit + _categoricalSmoothing) / (1 + (k * _categoricalSmoothing));
        }

        /// <summary>Discrete without a log scale: a kernel's weight on a value is its mass on the value's bin.</summary>
        private static bool IsBinned(Parameter p) => p.Step is not null && !p.Log;

        public double LogDensity(double[] x)
        {
            if (_inverseSigma is not null)
            {
                return LogDensity1D(x[0]);
            }
            // log Σ_j exp(term_j), streamed: the running maximum rescales the running sum (no allocation per candidate).
            var max = double.NegativeInfinity;
            var sum = 0.0;
            var k = _k;
            for (var j = 0; j < _weights.Length; j++)
            {
                var log = _logWeights[j];
                var row = j * k;
                for (var d = 0; d < k; d++)
                {
                    var at = row + d;
                    switch (_kind[d])
                    {
                        case DimKind.Continuous:
                            var t = (x[d] - _mu[at]) / _sigma[at];
                            log += (-0.5 * t * t) + _logNorm[at];
                            break;
                        case DimKind.Binned:
                            var half = _dims[d].Step!.Value / 2;
                            var mass = NormalCdf((x[d] + half - _mu[at]) / _sigma[at]) - NormalCdf((x[d] - half - _mu[at]) / _sigma[at]);
                            log += Math.Log(Math.Max(mass, 1e-300)) + _logNorm[at];
                            break;
                        default:
                            log += Math.Log(CategoricalProbability(j, d, (int)x[d], _dims[d].Choices.Count));
                            break;
                    }
                }
                if (log <= max)
                {
                    sum += Math.Exp(log - max);
                }
                else
                {
                    sum = (sum * Math.Exp(max - log)) + 1;
                    max = log;
                }
            }
            return double.IsNegativeInfinity(max) ? max : max + Math.Log(sum);
        }

        /// <summary>The same for one continuous dimension: the largest term first, then one pass of exponentials.</summary>
        private double LogDensity1D(double x)
        {
            var mu = _mu;
            var inverse = _inverseSigma!;
            var offset = _offset!;
            var max = double.NegativeInfinity;
            for (var j = 0; j < mu.Length; j++)
            {
                var t = (x - mu[j]) * inverse[j];
                max = Math.Max(max, offset[j] - (0.5 * t * t));
            }
            if (double.IsNegativeInfinity(max))
            {
                return max;
            }
            var sum = 0.0;
            for (var j = 0; j < mu.Length; j++)
            {
                var t = (x - mu[j]) * inverse[j];
                var term = offset[j] - (0.5 * t * t) - max;
                if (term > -745)
                {
                    sum += Math.Exp(term);
                }
            }
            return max + Math.Log(sum);
        }
    }

    /// <summary>A standard normal variate (Box–Muller).</summary>
    internal static double Normal(Random random)
    {
        var u1 = 1.0 - random.NextDouble();
        var u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Φ(x), the standard normal CDF, from erfc (Numerical Recipes' Chebyshev fit, relative error below 1.2e-7).</summary>
    internal static double NormalCdf(double x) => 0.5 * Erfc(-x / Math.Sqrt(2));

    private static double Erfc(double x)
    {
        ReadOnlySpan<double> c = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
        var z = Math.Abs(x);
        var t = 1 / (1 + (0.5 * z));
        var poly = 0.0;
        for (var i = c.Length - 1; i >= 0; i--)
        {
            poly = c[i] + (t * poly);
        }
        var r = t * Math.Exp(-(z * z) + poly);
        return x >= 0 ? r : 2 - r;
    }
}
