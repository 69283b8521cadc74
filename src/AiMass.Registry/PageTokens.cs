using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace AiMass.Registry;

/// <summary>Opaque keyset page tokens: the sort key of the last item of a page, so a page costs the same at any depth.</summary>
internal static class PageTokens
{
    private const string Prefix = "p1|";

    public static string Encode(string kind, string key, long id) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"{Prefix}{kind}|{id.ToString(CultureInfo.InvariantCulture)}|{key}"));

    public static (string Key, long Id) Decode(string token, string kind)
    {
        string text;
        try
        {
            text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(token));
        }
        catch (FormatException)
        {
            throw Invalid();
        }
        var parts = text.Split('|', 4);
        if (parts.Length != 4 || parts[0] + "|" != Prefix || parts[1] != kind
            || !long.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var id))
        {
            throw Invalid();
        }
        return (parts[3], id);
    }

    private static RegistryException Invalid() =>
        RegistryException.Invalid("page_token", "page_token is not a token returned by this listing with the same order (start again without it)");
}
