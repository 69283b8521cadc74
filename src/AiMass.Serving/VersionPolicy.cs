using System.Globalization;

namespace AiMass.Serving;

/// <summary>A version a model source offers, with the labels (registry aliases) it carries.</summary>
/// <param name="Version">The version.</param>
/// <param name="Labels">Its labels, e.g. <c>production</c>.</param>
public sealed record AvailableVersion(string Version, IReadOnlyList<string> Labels);

/// <summary>
/// Which versions of a model a host serves (TensorFlow Serving's model_version_policy, Triton's version_policy):
/// the newest N, specific versions, all of them, or the version an alias points at (followed when it moves).
/// </summary>
public abstract record VersionPolicy
{
    private VersionPolicy()
    {
    }

    /// <summary>The newest <paramref name="Count"/> versions.</summary>
    public sealed record Latest(int Count) : VersionPolicy
    {
        /// <inheritdoc />
        public override string ToString() => Count == 1 ? "latest" : $"latest:{Count.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>These versions.</summary>
    public sealed record Specific(IReadOnlyList<string> Versions) : VersionPolicy
    {
        /// <inheritdoc />
        public override string ToString() => "specific:" + string.Join(",", Versions);
    }

    /// <summary>Every version.</summary>
    public sealed record All : VersionPolicy
    {
        /// <inheritdoc />
        public override string ToString() => "all";
    }

    /// <summary>The version carrying this label.</summary>
    public sealed record Labelled(string Name) : VersionPolicy
    {
        /// <inheritdoc />
        public override string ToString() => "alias:" + Name;
    }

    /// <summary>Parses <c>latest</c>, <c>latest:N</c>, <c>all</c>, <c>specific:1,3</c> or <c>alias:NAME</c>; the error says what is accepted.</summary>
    public static VersionPolicy Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var kind = colon < 0 ? text : text[..colon];
        var arg = colon < 0 ? null : text[(colon + 1)..];
        switch (kind)
        {
            case "latest" when arg is null:
                return new Latest(1);
            case "latest" when int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1:
                return new Latest(n);
            case "all" when arg is null:
                return new All();
            case "specific" when arg is { Length: > 0 } && arg.Split(',').All(v => v.Length > 0):
                return new Specific(arg.Split(',').Distinct(StringComparer.Ordinal).ToList());
            case "alias" when arg is { Length: > 0 }:
                return new Labelled(arg);
            default:
                throw new FormatException($"version policy '{text}' must be latest, latest:N (N >= 1), all, specific:V1,V2 or alias:NAME");
        }
    }

    /// <summary>The versions to serve out of <paramref name="available"/>, oldest first; empty when none matches.</summary>
    public IReadOnlyList<string> Select(IReadOnlyList<AvailableVersion> available)
    {
        ArgumentNullException.ThrowIfNull(available);
        var ordered = available.OrderBy(v => v.Version, VersionOrder.Instance).ToList();
        return this switch
        {
            Latest l => ordered.Skip(Math.Max(0, ordered.Count - l.Count)).Select(v => v.Version).ToList(),
            Specific s => ordered.Where(v => s.Versions.Contains(v.Version, StringComparer.Ordinal)).Select(v => v.Version).ToList(),
            Labelled a => ordered.Where(v => v.Labels.Contains(a.Name, StringComparer.Ordinal)).Select(v => v.Version).TakeLast(1).ToList(),
            _ => ordered.Select(v => v.Version).ToList(),
        };
    }
}

/// <summary>Numeric versions in numeric order, others after them in ordinal order.</summary>
public sealed class VersionOrder : IComparer<string>
{
    /// <summary>The comparer.</summary>
    public static readonly VersionOrder Instance = new();

    private VersionOrder()
    {
    }

    /// <inheritdoc />
    public int Compare(string? x, string? y)
    {
        var xn = long.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out var a);
        var yn = long.TryParse(y, NumberStyles.None, CultureInfo.InvariantCulture, out var b);
        return xn && yn ? a.CompareTo(b) : xn ? -1 : yn ? 1 : string.CompareOrdinal(x, y);
    }
}
