using System.Text.Json;

namespace AiMass.Registry;

/// <summary>How a parameter given as text (<c>--param KEY=VALUE</c>, <c>?param=KEY=VALUE</c>) becomes a JSON value.</summary>
public static class ParamValues
{
    /// <summary>A value that parses as a JSON number, boolean, array or object is kept as such; anything else is a string.</summary>
    public static JsonElement Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > 0 && (char.IsDigit(text[0]) || text[0] is '-' or '[' or '{' || text is "true" or "false"))
        {
            try
            {
                using var doc = JsonDocument.Parse(text);
                return doc.RootElement.Clone();
            }
            catch (JsonException)
            {
                // Not JSON (e.g. "1x1-conv"): kept as a string.
            }
        }
        return JsonSerializer.SerializeToElement(text);
    }
}
