using System.Globalization;
using AiMass.Tuning;
using YamlDotNet.RepresentationModel;

namespace AiMass.Specs;

/// <summary>
/// Reads search spaces (docs/tuning.md): a mapping of parameter names, in order, to their definitions —
/// <c>{type: float, low: 1e-5, high: 0.1, log: true}</c>, <c>{type: int, low: 32, high: 512, step: 32}</c>,
/// <c>{type: categorical, choices: [adam, sgd]}</c> or simply <c>[adam, sgd]</c> — each with an optional
/// <c>when: {optimizer: sgd}</c> (or a list of choices) that makes it exist only under a choice of a categorical parent.
/// </summary>
public static class SearchSpaceReader
{
    /// <summary>Parses a document that is the space's mapping; throws <see cref="SpecException"/> listing every problem with its field and line.</summary>
    public static SearchSpace Parse(string text, string source = "search space")
    {
        ArgumentNullException.ThrowIfNull(text);
        var errors = new SpecErrors(source);
        var space = Read(errors.RequireRoot(text, "the search space is empty"));
        errors.ThrowIfAny();
        return space!;
    }

    /// <summary>Reads a space from a mapping (a document's root, or a spec's <c>space:</c>); problems go to its errors.</summary>
    internal static SearchSpace? Read(SpecMap map)
    {
        var before = map.Errors.Count;
        var parameters = new List<Parameter>();
        foreach (var name in map.Keys.ToList())
        {
            if (map.Raw(name) is YamlSequenceNode)
            {
                var choices = map.StringList(name);
                if (choices is { Count: > 0 })
                {
                    parameters.Add(new Parameter { Name = name, Kind = ParameterKind.Categorical, Choices = choices });
                }
                else
                {
                    map.Error(name, "a list of choices needs at least one");
                }
                continue;
            }
            var p = map.Map(name);
            if (p is null)
            {
                map.Error(name, "must be a mapping ({type: float, low: ..., high: ...}) or a list of choices");
                continue;
            }
            var kind = p.String("type", required: true)?.ToLowerInvariant();
            var when = Condition(p);
            Parameter? parameter = kind switch
            {
                "float" or "int" => Numeric(p, name, kind == "int" ? ParameterKind.Int : ParameterKind.Float, when),
                "categorical" => p.StringList("choices") is { Count: > 0 } choices
                    ? new Parameter { Name = name, Kind = ParameterKind.Categorical, Choices = choices, When = when }
                    : Missing(p, "choices", "a categorical parameter needs a list of choices"),
                null => Touch(p),
                _ => Touch(p) ?? Missing(p, "type", $"'{kind}' is not a parameter type: float, int or categorical"),
            };
            p.RejectUnknown();
            if (parameter is not null)
            {
                parameters.Add(parameter);
            }
        }
        if (parameters.Count == 0 && map.Errors.Count == before)
        {
            map.Error("", "the search space has no parameters");
            return null;
        }
        try
        {
            return map.Errors.Count > before ? null : new SearchSpace(parameters);
        }
        catch (ArgumentException e)
        {
            // The space's own checks (a condition's parent, ranges): name the parameter's field.
            var field = parameters.Select(x => x.Name).FirstOrDefault(n => e.Message.Contains($"'{n}'", StringComparison.Ordinal)) ?? "";
            map.Error(field, e.Message);
            return null;
        }
    }

    /// <summary>Marks the fields of every type as known, so a wrong type is reported once and not as unknown fields.</summary>
    private static Parameter? Touch(SpecMap p)
    {
        foreach (var field in new[] { "low", "high", "log", "step", "choices" })
        {
            p.Raw(field);
        }
        return null;
    }

    private static Parameter? Missing(SpecMap p, string field, string message)
    {
        p.Error(field, message);
        return null;
    }

    private static Parameter? Numeric(SpecMap p, string name, ParameterKind kind, Condition? when)
    {
        var low = p.Double("low", double.MinValue, double.MaxValue);
        var high = p.Double("high", double.MinValue, double.MaxValue);
        var log = p.Bool("log") ?? false;
        var step = p.Double("step", double.Epsilon, double.MaxValue);
        if (low is null || high is null)
        {
            p.Error(low is null ? "low" : "high", "is required for a numeric parameter");
            return null;
        }
        if (kind == ParameterKind.Int && (low != Math.Floor(low.Value) || high != Math.Floor(high.Value) || (step is { } s && s != Math.Floor(s))))
        {
            p.Error("low", "an int parameter's low, high and step must be whole numbers");
            return null;
        }
        return new Parameter
        {
            Name = name,
            Kind = kind,
            Low = low.Value,
            High = high.Value,
            Log = log,
            Step = kind == ParameterKind.Int ? step ?? 1 : step,
            When = when,
        };
    }

    private static Condition? Condition(SpecMap p)
    {
        var when = p.Map("when");
        if (when is null)
        {
            return null;
        }
        var keys = when.Keys.ToList();
        if (keys.Count != 1)
        {
            p.Error("when", "names one categorical parent and its choice(s): {optimizer: sgd} or {optimizer: [sgd, rmsprop]}");
            foreach (var k in keys)
            {
                when.Raw(k);
            }
            return null;
        }
        var parent = keys[0];
        var choices = when.Raw(parent) is YamlSequenceNode ? when.StringList(parent) : when.String(parent) is { } one ? [one] : null;
        if (choices is null || choices.Count == 0)
        {
            when.Error(parent, "give the parent's choice, or a list of them");
            return null;
        }
        return new Condition(parent, choices);
    }

    /// <summary>A space written back in this syntax (for studies stored and shown).</summary>
    public static string Write(SearchSpace space)
    {
        ArgumentNullException.ThrowIfNull(space);
        var text = new System.Text.StringBuilder();
        foreach (var p in space.Parameters)
        {
            var fields = p.Kind switch
            {
                ParameterKind.Categorical => $"type: categorical, choices: [{string.Join(", ", p.Choices.Select(ClusterSpecWriter.Q))}]",
                _ => string.Create(CultureInfo.InvariantCulture, $"type: {(p.Kind == ParameterKind.Int ? "int" : "float")}, low: {p.Low:R}, high: {p.High:R}")
                    + (p.Log ? ", log: true" : "") + (p.Step is { } s && !(p.Kind == ParameterKind.Int && s == 1) ? string.Create(CultureInfo.InvariantCulture, $", step: {s:R}") : ""),
            };
            var when = p.When is { } w ? $", when: {{{ClusterSpecWriter.Q(w.Parent)}: [{string.Join(", ", w.Choices.Select(ClusterSpecWriter.Q))}]}}" : "";
            text.Append(CultureInfo.InvariantCulture, $"{ClusterSpecWriter.Q(p.Name)}: {{{fields}{when}}}\n");
        }
        return text.ToString();
    }
}
