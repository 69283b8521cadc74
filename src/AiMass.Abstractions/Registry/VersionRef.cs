using System.Globalization;

namespace AiMass.Registry;

/// <summary>A reference to a model version: <c>NAME@VERSION</c>, <c>NAME@ALIAS</c> or just <c>NAME</c> (the latest version).</summary>
public readonly record struct VersionRef(string Model, string? Selector)
{
    /// <summary>The version number when the selector is a number.</summary>
    public int? Number => Selector is not null && int.TryParse(Selector, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>The alias when the selector is an alias name.</summary>
    public string? Alias => Selector is not null && Number is null ? Selector : null;

    /// <summary>Parses <c>NAME[@VERSION|@ALIAS]</c>; the error names what was wrong.</summary>
    public static bool TryParse(string? text, out VersionRef value, out string? error)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "a model reference is required (NAME, NAME@VERSION or NAME@ALIAS)";
            return false;
        }
        var at = text.IndexOf('@', StringComparison.Ordinal);
        var model = at < 0 ? text : text[..at];
        var selector = at < 0 ? null : text[(at + 1)..];
        if (!Names.IsValidModelName(model))
        {
            error = $"'{model}' is not a valid model name (it must match {Names.ModelNamePattern})";
            return false;
        }
        if (selector is not null && !IsValidSelector(selector))
        {
            error = $"'{selector}' in '{text}' is neither a version number (1, 2, ...) nor an alias name ({Names.AliasPattern})";
            return false;
        }
        value = new VersionRef(model, selector);
        error = null;
        return true;
    }

    /// <summary>True when <paramref name="selector"/> is a positive version number or a valid alias.</summary>
    public static bool IsValidSelector(string selector) =>
        (int.TryParse(selector, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0) || Names.IsValidAlias(selector);

    /// <summary>Parses or throws <see cref="FormatException"/>.</summary>
    public static VersionRef Parse(string text) =>
        TryParse(text, out var value, out var error) ? value : throw new FormatException(error);

    /// <inheritdoc />
    public override string ToString() => Selector is null ? Model : $"{Model}@{Selector}";
}
