using System.Globalization;
using System.Text.RegularExpressions;

namespace AiMass.Registry.Artifacts;

/// <summary>Content digests in the <c>sha256:&lt;64 hex&gt;</c> form used by OCI registries.</summary>
public static partial class Digests
{
    /// <summary>The algorithm prefix.</summary>
    public const string Sha256Prefix = "sha256:";

    /// <summary>Formats raw SHA-256 bytes as <c>sha256:&lt;hex&gt;</c>.</summary>
    public static string FromHash(ReadOnlySpan<byte> hash) => Sha256Prefix + Convert.ToHexStringLower(hash);

    /// <summary>True when <paramref name="digest"/> is <c>sha256:</c> followed by 64 lower-case hex digits.</summary>
    public static bool IsValid(string? digest) => digest is not null && DigestRegex().IsMatch(digest);

    /// <summary>Accepts <c>sha256:HEX</c> or bare hex in any case and returns the canonical form, or null when malformed.</summary>
    public static string? Normalize(string? digest)
    {
        if (string.IsNullOrWhiteSpace(digest))
        {
            return null;
        }
        var text = digest.Trim();
        if (text.StartsWith(Sha256Prefix, StringComparison.OrdinalIgnoreCase))
        {
            text = text[Sha256Prefix.Length..];
        }
        text = text.ToLower(CultureInfo.InvariantCulture);
        var candidate = Sha256Prefix + text;
        return IsValid(candidate) ? candidate : null;
    }

    /// <summary>The hex part of a canonical digest.</summary>
    public static string Hex(string digest) => digest[Sha256Prefix.Length..];

    [GeneratedRegex("^sha256:[0-9a-f]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex DigestRegex();
}
