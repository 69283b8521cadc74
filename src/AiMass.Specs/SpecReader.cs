using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace AiMass.Specs;

/// <summary>One problem in a spec: the field (as a dotted path), where it is, and what is wrong.</summary>
/// <param name="Field">Dotted path of the field, e.g. <c>resources.cpu</c>; empty for the document itself.</param>
/// <param name="Line">1-based line, 0 when unknown.</param>
/// <param name="Column">1-based column, 0 when unknown.</param>
/// <param name="Message">What is wrong and what would be right.</param>
public sealed record SpecError(string Field, int Line, int Column, string Message)
{
    /// <summary>The error as one line: <c>line 4, column 3: resources.cpu: ...</c>.</summary>
    public override string ToString() =>
        (Line > 0 ? $"line {Line}, column {Column}: " : "") + (Field.Length > 0 ? Field + ": " : "") + Message;
}

/// <summary>A spec that cannot be used; <see cref="Errors"/> lists every problem found, not only the first.</summary>
public sealed class SpecException : Exception
{
    /// <summary>Creates the exception from the problems found.</summary>
    public SpecException(string source, IReadOnlyList<SpecError> errors)
        : base($"{source}: " + (errors.Count == 1 ? errors[0].ToString() : $"{errors.Count} problems:\n  " + string.Join("\n  ", errors)))
    {
        Source = source;
        Errors = errors;
    }

    /// <summary>Creates the exception.</summary>
    public SpecException() : this("spec", [])
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public SpecException(string message) : this("spec", [new SpecError("", 0, 0, message)])
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public SpecException(string message, Exception inner) : base(message, inner)
    {
        Errors = [new SpecError("", 0, 0, message)];
    }

    /// <summary>Every problem found.</summary>
    public IReadOnlyList<SpecError> Errors { get; } = [];
}

/// <summary>Collects errors while a spec is read.</summary>
internal sealed class SpecErrors(string source)
{
    private readonly List<SpecError> _errors = [];

    public string Source { get; } = source;

    public bool Any => _errors.Count > 0;

    /// <summary>How many problems so far (a reader compares before and after to know whether its own part had any).</summary>
    public int Count => _errors.Count;

    public void Add(string field, YamlNode? node, string message) =>
        _errors.Add(new SpecError(field, node is null ? 0 : (int)node.Start.Line, node is null ? 0 : (int)node.Start.Column, message));

    public void ThrowIfAny()
    {
        if (_errors.Count > 0)
        {
            throw new SpecException(Source, _errors.OrderBy(e => e.Line == 0 ? int.MaxValue : e.Line).ThenBy(e => e.Column).ToArray());
        }
    }

    /// <summary>The root mapping of a spec, or a <see cref="SpecException"/> (invalid YAML; <paramref name="emptyMessage"/> when there is nothing).</summary>
    public SpecMap RequireRoot(string text, string emptyMessage)
    {
        var root = Root(text);
        if (root is null)
        {
            ThrowIfAny();
            throw new SpecException(Source, [new SpecError("", 0, 0, emptyMessage)]);
        }
        return root;
    }

    /// <summary>Parses YAML (or JSON, which YAML contains) into its root mapping; errors are recorded.</summary>
    public SpecMap? Root(string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            var inner = e.InnerException?.Message;
            _errors.Add(new SpecError("", (int)e.Start.Line, (int)e.Start.Column,
                "not valid YAML: " + (inner ?? e.Message.Split("): ", 2).Last())));
            return null;
        }
        if (stream.Documents.Count != 1)
        {
            _errors.Add(new SpecError("", 0, 0, stream.Documents.Count == 0 ? "the spec is empty" : "the spec must be one YAML document, not several"));
            return null;
        }
        if (stream.Documents[0].RootNode is not YamlMappingNode map)
        {
            Add("", stream.Documents[0].RootNode, "the spec must be a mapping of fields (name: ..., command: ...)");
            return null;
        }
        return new SpecMap(map, "", this);
    }
}

/// <summary>
/// Typed access to the fields of one YAML mapping. Every read marks the field as known; <see cref="RejectUnknown"/>
/// then reports fields nobody asked for, so misspelt fields are errors instead of being silently ignored.
/// </summary>
internal sealed class SpecMap
{
    private readonly YamlMappingNode _node;
    private readonly string _path;
    private readonly SpecErrors _errors;
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (YamlScalarNode Key, YamlNode Value)> _fields = new(StringComparer.Ordinal);

    public SpecMap(YamlMappingNode node, string path, SpecErrors errors)
    {
        _node = node;
        _path = path;
        _errors = errors;
        foreach (var (key, value) in node.Children)
        {
            if (key is not YamlScalarNode scalar || scalar.Value is null)
            {
                errors.Add(path, key, "field names must be plain strings");
                continue;
            }
            _fields[scalar.Value] = (scalar, value);
        }
    }

    public YamlMappingNode Node => _node;

    public SpecErrors Errors => _errors;

    /// <summary>Field names present in the mapping, in document order.</summary>
    public IEnumerable<string> Keys => _fields.Keys;

    public string PathOf(string key) => _path.Length == 0 ? key : _path + "." + key;

    public bool Has(string key)
    {
        _known.Add(key);
        return _fields.ContainsKey(key);
    }

    public YamlNode? Raw(string key)
    {
        _known.Add(key);
        return _fields.TryGetValue(key, out var f) ? f.Value : null;
    }

    public void Error(string key, string message) =>
        _errors.Add(PathOf(key), _fields.TryGetValue(key, out var f) ? f.Value : _node, message);

    /// <summary>A scalar's text; null (and an error when <paramref name="required"/>) when absent.</summary>
    public string? String(string key, bool required = false)
    {
        var node = Raw(key);
        if (node is null)
        {
            if (required)
            {
                _errors.Add(PathOf(key), _node, "is required");
            }
            return null;
        }
        if (node is not YamlScalarNode scalar)
        {
            Error(key, "must be a single value, not a list or mapping");
            return null;
        }
        if (IsNull(scalar))
        {
            if (required)
            {
                Error(key, "is required");
            }
            return null;
        }
        return scalar.Value;
    }

    public int? Int(string key, int min, int max)
    {
        var text = String(key);
        if (text is null)
        {
            return null;
        }
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            Error(key, $"'{text}' is not a whole number");
            return null;
        }
        if (value < min || value > max)
        {
            Error(key, $"must be between {min} and {max} (got {value})");
            return null;
        }
        return value;
    }

    public double? Double(string key, double min, double max)
    {
        var text = String(key);
        if (text is null)
        {
            return null;
        }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
        {
            Error(key, $"'{text}' is not a number");
            return null;
        }
        if (value < min || value > max)
        {
            Error(key, $"must be between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)} (got {text})");
            return null;
        }
        return value;
    }

    public bool? Bool(string key)
    {
        var text = String(key);
        if (text is null)
        {
            return null;
        }
        if (bool.TryParse(text, out var value))
        {
            return value;
        }
        Error(key, $"'{text}' is not true or false");
        return null;
    }

    /// <summary>Reads a value with one of the <see cref="Resources.Quantity"/> parsers.</summary>
    public T? Parsed<T>(string key, TryParse<T> parse)
        where T : struct
    {
        var text = String(key);
        if (text is null)
        {
            return null;
        }
        if (parse(text, out var value, out var error))
        {
            return value;
        }
        Error(key, error!);
        return null;
    }

    /// <summary>An enum written in snake case (<c>fair_share</c>, <c>fairshare</c> and <c>FairShare</c> all work).</summary>
    public T? Enum<T>(string key)
        where T : struct, System.Enum
    {
        var text = String(key);
        if (text is null)
        {
            return null;
        }
        var names = System.Enum.GetNames<T>();
        var match = names.FirstOrDefault(n => string.Equals(n, text.Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase));
        if (match is null)
        {
            Error(key, $"'{text}' is not one of {string.Join(", ", names.Select(Snake))}");
            return null;
        }
        return System.Enum.Parse<T>(match);
    }

    public IReadOnlyList<string>? StringList(string key) =>
        List(key, "must be a single value", node => node is YamlScalarNode s && !IsNull(s) ? s.Value : null);

    /// <summary>A list whose items <paramref name="read"/> converts (null: the item is reported with <paramref name="itemError"/>).</summary>
    private List<T>? List<T>(string key, string itemError, Func<YamlNode, int, T?> read)
        where T : class
    {
        var node = Raw(key);
        if (node is null)
        {
            return null;
        }
        if (node is not YamlSequenceNode seq)
        {
            Error(key, "must be a list");
            return null;
        }
        var list = new List<T>();
        for (var i = 0; i < seq.Children.Count; i++)
        {
            if (read(seq.Children[i], i) is { } item)
            {
                list.Add(item);
            }
            else
            {
                _errors.Add($"{PathOf(key)}[{i}]", seq.Children[i], itemError);
            }
        }
        return list;
    }

    private List<T>? List<T>(string key, string itemError, Func<YamlNode, T?> read)
        where T : class => List(key, itemError, (node, _) => read(node));

    /// <summary>A mapping of strings to strings (labels, env); values are taken as written.</summary>
    public IReadOnlyDictionary<string, string>? StringMap(string key, Func<string, string?>? validateKey = null)
    {
        var map = Map(key);
        if (map is null)
        {
            return null;
        }
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in map.Keys.ToList())
        {
            var problem = validateKey?.Invoke(name);
            if (problem is not null)
            {
                map.Error(name, problem);
                map.Raw(name);
                continue;
            }
            var value = map.String(name);
            result[name] = value ?? "";
        }
        return result;
    }

    public SpecMap? Map(string key)
    {
        var node = Raw(key);
        if (node is null || (node is YamlScalarNode s && IsNull(s)))
        {
            return null;
        }
        if (node is not YamlMappingNode map)
        {
            Error(key, "must be a mapping (key: value lines)");
            return null;
        }
        return new SpecMap(map, PathOf(key), _errors);
    }

    public IReadOnlyList<SpecMap>? MapList(string key) =>
        List(key, "must be a mapping", (node, i) => node is YamlMappingNode m ? new SpecMap(m, $"{PathOf(key)}[{i}]", _errors) : null);

    /// <summary>Reports every field that no reader asked for.</summary>
    public void RejectUnknown()
    {
        foreach (var (name, (keyNode, _)) in _fields)
        {
            if (!_known.Contains(name))
            {
                var known = string.Join(", ", _known.Order(StringComparer.Ordinal));
                var guess = _known.Where(k => Distance(k, name) <= 2).OrderBy(k => Distance(k, name)).ThenBy(k => k, StringComparer.Ordinal).FirstOrDefault();
                _errors.Add(PathOf(name), keyNode, $"unknown field" + (guess is null ? $"; known fields here: {known}" : $"; did you mean '{guess}'?"));
            }
        }
    }

    internal static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    private static bool IsNull(YamlScalarNode s) =>
        s.Style == YamlDotNet.Core.ScalarStyle.Plain && (s.Value is null || s.Value is "" or "~" or "null" or "Null" or "NULL");

    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }
        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }
        }
        return d[a.Length, b.Length];
    }
}

/// <summary>A parser in the shape of <see cref="Resources.Quantity.TryParseCpu"/>.</summary>
internal delegate bool TryParse<T>(string text, out T value, out string? error);
