namespace AiMass.Tuning;

/// <summary>Independent uniform draws (log-uniform on a log scale, snapped to steps); conditions respected.</summary>
public sealed class RandomSampler : ISampler
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> Sample(IStudyView study, Random random)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(random);
        return Draw(study.Space, random, new Dictionary<string, double>(StringComparer.Ordinal));
    }

    /// <summary>Fills every active parameter not yet in <paramref name="values"/> with a uniform draw.</summary>
    internal static Dictionary<string, double> Draw(SearchSpace space, Random random, Dictionary<string, double> values)
    {
        foreach (var p in space.Ordered)
        {
            if (!values.ContainsKey(p.Name) && space.Active(p, values))
            {
                values[p.Name] = p.FromUnit(random.NextDouble());
            }
        }
        return values;
    }
}

/// <summary>
/// Every combination of a grid, in a seeded random order: every choice of a categorical, every value of a stepped
/// parameter with at most 16 of them, else <see cref="PointsPerContinuous"/> evenly spaced values (log-spaced on a log
/// scale, snapped to the step). A conditional parameter is
/// combined only under the choices that activate it. Once all points are asked it starts over.
/// </summary>
public sealed class GridSampler : ISampler
{
    private const int MaxDiscreteValues = 16;
    private List<Dictionary<string, double>>? _grid;
    private int _next;

    /// <summary>Creates the sampler.</summary>
    public GridSampler(int pointsPerContinuous = 5)
    {
        if (pointsPerContinuous < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(pointsPerContinuous), pointsPerContinuous, "a grid needs at least 2 points per continuous parameter");
        }
        PointsPerContinuous = pointsPerContinuous;
    }

    /// <summary>Values of a continuous parameter.</summary>
    public int PointsPerContinuous { get; }

    /// <summary>How many points the grid of <paramref name="space"/> has.</summary>
    public int Size(SearchSpace space) => Enumerate(space).Count;

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> Sample(IStudyView study, Random random)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(random);
        if (_grid is null)
        {
            _grid = Enumerate(study.Space);
            // A seeded shuffle: a study stopped early has covered the grid evenly, not one corner of it.
            for (var i = _grid.Count - 1; i > 0; i--)
            {
                var j = random.Next(i + 1);
                (_grid[i], _grid[j]) = (_grid[j], _grid[i]);
            }
            // Resume after the points a restored study has already tried.
            var tried = study.Trials.Select(t => Key(t.Values)).ToHashSet(StringComparer.Ordinal);
            _grid = [.. _grid.Where(g => !tried.Contains(Key(g))), .. _grid.Where(g => tried.Contains(Key(g)))];
        }
        var point = _grid[_next % _grid.Count];
        _next++;
        return point;
    }

    private static string Key(IReadOnlyDictionary<string, double> values) =>
        string.Join(";", values.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => $"{v.Key}={v.Value:R}"));

    private List<Dictionary<string, double>> Enumerate(SearchSpace space)
    {
        var result = new List<Dictionary<string, double>>();
        const int Limit = 1_000_000;
        void Walk(int index, Dictionary<string, double> values)
        {
            if (result.Count >= Limit)
            {
                throw new InvalidOperationException($"the grid has more than {Limit} points: give the continuous parameters steps or use another sampler");
            }
            if (index == space.Ordered.Count)
            {
                result.Add(new Dictionary<string, double>(values, StringComparer.Ordinal));
                return;
            }
            var p = space.Ordered[index];
            if (!space.Active(p, values))
            {
                Walk(index + 1, values);
                return;
            }
            foreach (var v in Points(p))
            {
                values[p.Name] = v;
                Walk(index + 1, values);
                values.Remove(p.Name);
            }
        }
        Walk(0, new Dictionary<string, double>(StringComparer.Ordinal));
        return result;
    }

    private IEnumerable<double> Points(Parameter p)
    {
        if (p.Kind == ParameterKind.Categorical)
        {
            return Enumerable.Range(0, p.Choices.Count).Select(i => (double)i);
        }
        if (p.Cardinality is { } n && n <= MaxDiscreteValues)
        {
            return Enumerable.Range(0, (int)n).Select(i => p.Snap(p.Low + (i * p.Step!.Value)));
        }
        return Enumerable.Range(0, PointsPerContinuous).Select(i => p.FromUnit(i / (double)(PointsPerContinuous - 1))).Distinct();
    }
}
