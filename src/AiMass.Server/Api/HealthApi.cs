using AiMass.Registry;

namespace AiMass.Server.Api;

internal static class HealthApi
{
    public static void MapHealthApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("health");
        api.MapGet("/health", () => TypedResults.Ok(new { status = "ok" }))
            .WithSummary("Liveness: 200 when the control plane answers.");
        api.MapGet("/status", async (ModelRegistry registry, ServerClock clock, IServiceProvider services, CancellationToken ct) =>
        {
            var (models, versions, blobs, bytes) = await registry.CountAsync(ct);
            return TypedResults.Ok(new ServerStatus("ok", ThisAssembly.Version, AiMassServer.DataDirectory(services), clock.StartedAt, models, versions, blobs, bytes));
        }).WithSummary("Version, data directory and registry counts.");
    }
}

/// <summary>The product version, from the assembly.</summary>
public static class ThisAssembly
{
    /// <summary>Informational version without the source revision suffix.</summary>
    public static string Version { get; } =
        (typeof(ThisAssembly).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "0.0.0")
        .Split('+')[0];
}
