using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiMass;

/// <summary>The JSON conventions of the AI Mass REST API (snake_case names, enums as lower-case strings).</summary>
public static class AiMassJson
{
    /// <summary>Serializer options shared by the server and every client.</summary>
    public static JsonSerializerOptions Options { get; } = Create();

    /// <summary>Applies the API conventions to an existing options object (used by the ASP.NET Core host).</summary>
    public static void Configure(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.DictionaryKeyPolicy = null;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        options.WriteIndented = false;
    }

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Configure(options);
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
