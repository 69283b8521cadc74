using AiMass.Registry;
using AiMass.Server.Hosting;

namespace AiMass.Server.Api;

internal static class AdminApi
{
    public static void MapAdminApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/admin").WithTags("admin");
        api.MapPost("/verify", async (ModelRegistry registry, CancellationToken ct) => TypedResults.Ok(await registry.VerifyAsync(ct)))
            .WithSummary("Re-hash every referenced blob; report missing or corrupt ones.");
        api.MapPost("/gc", async (ModelRegistry registry, ILogger<ModelRegistry> logger, bool? dry_run, CancellationToken ct) =>
        {
            var report = await registry.CollectGarbageAsync(dry_run ?? false, ct);
            Log.GarbageCollected(logger, report.BlobsRemoved, report.BytesFreed, report.TempFilesRemoved, report.DryRun);
            return TypedResults.Ok(report);
        }).WithSummary("Remove unreferenced blobs and stale temporary files (dry_run=true only counts).");
        api.MapPost("/backup", async (BackupRequest request, ModelRegistry registry, TimeProvider time, ILogger<ModelRegistry> logger, CancellationToken ct) =>
        {
            if (request is null || string.IsNullOrWhiteSpace(request.Path))
            {
                throw new RegistryException(400, ErrorCodes.InvalidArgument, "path is required: an absolute directory on the server", "path");
            }
            var report = await registry.BackupAsync(request.Path, time, ct);
            Log.BackupWritten(logger, report.Path, report.Versions, report.Blobs, report.Bytes);
            return TypedResults.Ok(report);
        }).WithSummary("Write a consistent snapshot of database and blobs to a directory on the server.");
    }
}
