using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace AiMass.Registry;

/// <summary>Validation rules for registry names, shared by server, client and CLI.</summary>
public static partial class Names
{
    /// <summary>The version selector that means "the highest-numbered ready version"; reserved as an alias name.</summary>
    public const string Latest = "latest";

    /// <summary>The rule a registered model name follows.</summary>
    public const string ModelNamePattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

    /// <summary>The rule an alias name follows: it starts with a letter, so it is never mistaken for a version number.</summary>
    public const string AliasPattern = "^[A-Za-z][A-Za-z0-9._-]{0,63}$";

    /// <summary>The rule a tag key follows.</summary>
    public const string TagKeyPattern = "^[A-Za-z0-9_][A-Za-z0-9._:/-]{0,127}$";

    /// <summary>True when <paramref name="name"/> is a valid model name.</summary>
    public static bool IsValidModelName([NotNullWhen(true)] string? name) => name is not null && ModelName().IsMatch(name);

    /// <summary>True when <paramref name="alias"/> is a valid alias name.</summary>
    public static bool IsValidAlias([NotNullWhen(true)] string? alias) => alias is not null && Alias().IsMatch(alias);

    /// <summary>True when <paramref name="key"/> is a valid tag key.</summary>
    public static bool IsValidTagKey([NotNullWhen(true)] string? key) => key is not null && TagKey().IsMatch(key);

    [GeneratedRegex(ModelNamePattern, RegexOptions.CultureInvariant)]
    private static partial Regex ModelName();

    [GeneratedRegex(AliasPattern, RegexOptions.CultureInvariant)]
    private static partial Regex Alias();

    [GeneratedRegex(TagKeyPattern, RegexOptions.CultureInvariant)]
    private static partial Regex TagKey();
}
