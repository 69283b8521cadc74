using System.Globalization;

namespace AiMass.Tuning;

/// <summary>The kinds of parameter a search space holds.</summary>
public enum ParameterKind
{
    /// <summary>A real number in [low, high], uniform or on a log scale, optionally on a step grid .</summary>
    Float,

    /// <summary>A whole number in [low, high], uniform or on a log scale, with a step .</summary>
    Int,

    /// <summary>One of a list of choices.</summary>
    Categorical,
}

/// <summary>A parameter exists only when another (categorical) parameter took one of some choices.</summary>
/// <param name="Parent">The categorical parameter.</param>
/// <param name="Choices">The parent's choices under which this parameter exists.</param>
public sealed record Condition(string Parent, IReadOnlyList<string> Choices);

/// <summary>
/// One parameter of a search space. Values are kept as numbers: the value itself for <see cref="ParameterKind.Float"/>
/// and <see cref="ParameterKind.Int"/>, the index of the choice for <see cref="ParameterKind.Categorical"/>.
/// </summary>
public sealed record Parameter
{
    /// <summary>Its name (unique in the space).</summary>
    public required string Name { get; init; }

    /// <summary>Its kind.</summary>
    public required ParameterKind Kind { get; init; }

    /// <summary>Smallest value (numeric kinds).</summary>
    public double Low { get; init; }

    /// <summary>Largest value (numeric kinds).</summary>
    public double High { get; init; }

    /// <summary>Whether values are spread on a log scale (numeric kinds; low must be positive).</summary>
    public bool Log { get; init; }

    /// <summary>Grid step from <see cref="Low"/> (ints: default 1; floats: none).</summary>
    public double? Step { get; init; }

    /// <summary>The choices (categorical).</summary>
    public IReadOnlyList<string> Choices { get; init; } = [];

    /// <summary>When it exists; null: always.</summary>
    public Condition? When { get; init; }

    /// <summary>Whether <paramref name="value"/> is a legal internal value of this parameter.</summary>
    public bool IsValid(double value)
    {
        if (double.IsNaN(value))
        {
            return false;
        }
        switch (Kind)
        {
            case ParameterKind.Categorical:
                return value >= 0 && value < Choices.Count && value == Math.Floor(value);
            default:
                if (value < Low - (1e-12 * Math.Abs(Low)) || value > High + (1e-12 * Math.Abs(High)))
                {
                    return false;
                }
                if (Kind == ParameterKind.Int && value != Math.Floor(value))
                {
                    return false;
                }
                if (Step is { } step)
                {
                    var k = (value - Low) / step;
                    return Math.Abs(k - Math.Round(k)) < 1e-6;
                }
                return true;
        }
    }

    /// <summary>Maps a point of the unit interval to a legal value (uniform, or log-uniform, then snapped to the step).</summary>
    public double FromUnit(double u)
    {
        u = Math.Clamp(u, 0, 1);
        if (Kind == ParameterKind.Categorical)
        {
            return Math.Min(Choices.Count - 1, Math.Floor(u * Choices.Count));
        }
        var x = Log ? Math.Exp(Math.Log(Low) + (u * (Math.Log(High) - Math.Log(Low)))) : Low + (u * (High - Low));
        return Snap(x);
    }

    /// <summary>The position of a legal value on the unit interval (the inverse of <see cref="FromUnit"/>, up to snapping).</summary>
    public double ToUnit(double value)
    {
        if (Kind == ParameterKind.Categorical)
        {
            return (value + 0.5) / Choices.Count;
        }
        if (High == Low)
        {
            return 0.5;
        }
        return Log ? (Math.Log(value) - Math.Log(Low)) / (Math.Log(High) - Math.Log(Low)) : (value - Low) / (High - Low);
    }

    /// <summary>The nearest legal value to <paramref name="x"/> (clamped, on the step grid, whole for ints).</summary>
    public double Snap(double x)
    {
        if (Kind == ParameterKind.Categorical)
        {
            return Math.Clamp(Math.Round(x), 0, Choices.Count - 1);
        }
        x = Math.Clamp(x, Low, High);
        if (Step is { } step)
        {
            var k = Math.Round((x - Low) / step);
            var maxK = Math.Floor(((High - Low) / step) + 1e-9);
            // On the decimal grid a person wrote (0.1 steps give 0.3, not 0.30000000000000004).
            x = Math.Round(Low + (Math.Clamp(k, 0, maxK) * step), Math.Max(Decimals(Low), Decimals(step)));
        }
        if (Kind == ParameterKind.Int)
        {
            x = Math.Round(x);
        }
        return Math.Clamp(x, Low, High);
    }

    /// <summary>The decimals <paramref name="v"/> is written with (at most 15).</summary>
    private static int Decimals(double v)
    {
        for (var d = 0; d < 15; d++)
        {
            if (Math.Abs(Math.Round(v, d) - v) <= 1e-12 * Math.Max(1, Math.Abs(v)))
            {
                return d;
            }
        }
        return 15;
    }

    /// <summary>How many distinct values it has (null: a continuum).</summary>
    public long? Cardinality => Kind switch
    {
        ParameterKind.Categorical => Choices.Count,
        _ when Step is { } step => (long)Math.Floor(((High - Low) / step) + 1e-9) + 1,
        _ => null,
    };

    /// <summary>A value as people and commands see it: the choice, a whole number, or a number.</summary>
    public string Format(double value) => Kind switch
    {
        ParameterKind.Categorical => Choices[(int)value],
        ParameterKind.Int => ((long)value).ToString(CultureInfo.InvariantCulture),
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// A search space: parameters, some of which exist only under a choice of a categorical parent (a tree: which
/// optimizer, and beneath it its own parameters). Build one with <see cref="Builder"/>, or read one from YAML
/// (AiMass.Specs).
/// </summary>
public sealed class SearchSpace
{
    private readonly Dictionary<string, Parameter> _byName;

    /// <summary>Creates a space; throws <see cref="ArgumentException"/> naming the parameter that is wrong.</summary>
    public SearchSpace(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Parameters = parameters.ToList();
        _byName = new Dictionary<string, Parameter>(StringComparer.Ordinal);
        foreach (var p in Parameters)
        {
            Validate(p);
            if (!_byName.TryAdd(p.Name, p))
            {
                throw new ArgumentException($"parameter '{p.Name}' is declared twice");
            }
        }
        foreach (var p in Parameters.Where(p => p.When is not null))
        {
            var when = p.When!;
            if (!_byName.TryGetValue(when.Parent, out var parent))
            {
                throw new ArgumentException($"parameter '{p.Name}': its condition names '{when.Parent}', which is not a parameter");
            }
            if (parent.Kind != ParameterKind.Categorical)
            {
                throw new ArgumentException($"parameter '{p.Name}': its condition's parent '{when.Parent}' must be categorical");
            }
            var unknown = when.Choices.Where(c => !parent.Choices.Contains(c)).ToList();
            if (unknown.Count > 0 || when.Choices.Count == 0)
            {
                throw new ArgumentException($"parameter '{p.Name}': '{string.Join(", ", unknown)}' is not a choice of '{when.Parent}' ({string.Join(", ", parent.Choices)})");
            }
        }
        // Parents before children, and no cycles.
        Ordered = [];
        var placed = new HashSet<string>(StringComparer.Ordinal);
        while (Ordered.Count < Parameters.Count)
        {
            var next = Parameters.Where(p => !placed.Contains(p.Name) && (p.When is null || placed.Contains(p.When.Parent))).ToList();
            if (next.Count == 0)
            {
                throw new ArgumentException($"the conditions of {string.Join(", ", Parameters.Where(p => !placed.Contains(p.Name)).Select(p => p.Name))} form a cycle");
            }
            foreach (var p in next)
            {
                Ordered.Add(p);
                placed.Add(p.Name);
            }
        }
        IsConditional = Parameters.Any(p => p.When is not null);
    }

    /// <summary>The parameters as declared.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The parameters with every parent before its children.</summary>
    internal List<Parameter> Ordered { get; }

    /// <summary>Whether some parameter exists only under a condition.</summary>
    public bool IsConditional { get; }

    /// <summary>A parameter by name.</summary>
    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p : throw new KeyNotFoundException($"the space has no parameter '{name}'");

    /// <summary>Whether the space has a parameter of this name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>
    /// Whether a configuration is complete and legal: every active parameter has a legal value, no inactive one has a
    /// value. Returns null when it is, else what is wrong.
    /// </summary>
    public string? Check(IReadOnlyDictionary<string, double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        foreach (var name in values.Keys.Where(k => !_byName.ContainsKey(k)))
        {
            return $"'{name}' is not a parameter of the space";
        }
        foreach (var p in Ordered)
        {
            var active = Active(p, values);
            var has = values.TryGetValue(p.Name, out var v);
            if (active && !has)
            {
                return $"'{p.Name}' is missing";
            }
            if (!active && has)
            {
                return $"'{p.Name}' has a value but its condition ({p.When!.Parent} in {string.Join(", ", p.When.Choices)}) does not hold";
            }
            if (has && !p.IsValid(v))
            {
                return $"'{p.Name}' = {v.ToString(CultureInfo.InvariantCulture)} is outside its range or grid";
            }
        }
        return null;
    }

    /// <summary>Whether <paramref name="p"/> exists given the values chosen so far (its parent's choice is one of its condition's).</summary>
    public bool Active(Parameter p, IReadOnlyDictionary<string, double> values)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(values);
        if (p.When is null)
        {
            return true;
        }
        var parent = _byName[p.When.Parent];
        return Active(parent, values) && values.TryGetValue(parent.Name, out var index)
            && index >= 0 && index < parent.Choices.Count && p.When.Choices.Contains(parent.Choices[(int)index]);
    }

    /// <summary>A configuration as people and commands see it: name to formatted value, active parameters only.</summary>
    public IReadOnlyDictionary<string, string> Format(IReadOnlyDictionary<string, double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return Ordered.Where(p => values.ContainsKey(p.Name)).ToDictionary(p => p.Name, p => p.Format(values[p.Name]), StringComparer.Ordinal);
    }

    private static void Validate(Parameter p)
    {
        if (string.IsNullOrWhiteSpace(p.Name))
        {
            throw new ArgumentException("a parameter needs a name");
        }
        switch (p.Kind)
        {
            case ParameterKind.Categorical:
                if (p.Choices.Count == 0)
                {
                    throw new ArgumentException($"parameter '{p.Name}': a categorical parameter needs at least one choice");
                }
                if (p.Choices.Distinct(StringComparer.Ordinal).Count() != p.Choices.Count)
                {
                    throw new ArgumentException($"parameter '{p.Name}': its choices repeat");
                }
                break;
            default:
                if (!double.IsFinite(p.Low) || !double.IsFinite(p.High) || p.Low > p.High)
                {
                    throw new ArgumentException($"parameter '{p.Name}': need low <= high (got {p.Low.ToString(CultureInfo.InvariantCulture)}..{p.High.ToString(CultureInfo.InvariantCulture)})");
                }
                if (p.Log && p.Low <= 0)
                {
                    throw new ArgumentException($"parameter '{p.Name}': a log scale needs low > 0");
                }
                if (p.Step is { } step && !(step > 0))
                {
                    throw new ArgumentException($"parameter '{p.Name}': step must be positive");
                }
                if (p.Log && p.Step is not null && p.Kind == ParameterKind.Float)
                {
                    throw new ArgumentException($"parameter '{p.Name}': a float cannot have both a log scale and a step");
                }
                if (p.Kind == ParameterKind.Int && (p.Low != Math.Floor(p.Low) || p.High != Math.Floor(p.High) || (p.Step is { } s && s != Math.Floor(s))))
                {
                    throw new ArgumentException($"parameter '{p.Name}': an int's low, high and step must be whole numbers");
                }
                break;
        }
    }

    /// <summary>Starts a space built in code.</summary>
    public static SearchSpaceBuilder Builder() => new();
}

/// <summary>Builds a <see cref="SearchSpace"/> in code: <c>.Float("lr", 1e-5, 1e-1, log: true).Categorical("opt", ["adam", "sgd"])</c>.</summary>
public sealed class SearchSpaceBuilder
{
    private readonly List<Parameter> _parameters = [];

    /// <summary>Adds a float parameter.</summary>
    public SearchSpaceBuilder Float(string name, double low, double high, bool log = false, double? step = null, Condition? when = null)
    {
        _parameters.Add(new Parameter { Name = name, Kind = ParameterKind.Float, Low = low, High = high, Log = log, Step = step, When = when });
        return this;
    }

    /// <summary>Adds an int parameter.</summary>
    public SearchSpaceBuilder Int(string name, long low, long high, bool log = false, long step = 1, Condition? when = null)
    {
        _parameters.Add(new Parameter { Name = name, Kind = ParameterKind.Int, Low = low, High = high, Log = log, Step = step, When = when });
        return this;
    }

    /// <summary>Adds a categorical parameter.</summary>
    public SearchSpaceBuilder Categorical(string name, IReadOnlyList<string> choices, Condition? when = null)
    {
        _parameters.Add(new Parameter { Name = name, Kind = ParameterKind.Categorical, Choices = choices, When = when });
        return this;
    }

    /// <summary>The space.</summary>
    public SearchSpace Build() => new(_parameters);
}
