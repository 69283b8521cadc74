using AiMass.Deployments;
using AiMass.Jobs;
using AiMass.Jobs.Deployments;
using Microsoft.AspNetCore.Mvc;

namespace AiMass.Server.Api;

/// <summary>REST endpoints of deployments (<c>/api/v1/deployments</c>).</summary>
internal static class DeploymentsApi
{
    public static void MapDeploymentsApi(this IEndpointRouteBuilder app)
    {
        var deployments = app.MapGroup("/api/v1/deployments").WithTags("deployments");

        deployments.MapPost("/", async (DeploymentSpec spec, HttpContext http, DeploymentController controller, CancellationToken ct) =>
        {
            var created = await controller.CreateAsync(spec ?? throw Body(), Actor(http), ct);
            return TypedResults.Created($"/api/v1/deployments/{created.Name}", created);
        })
            .Produces<DeploymentInfo>(StatusCodes.Status201Created)
            .WithSummary("Create a deployment: {name, model: NAME@VERSION|ALIAS, min_replicas, max_replicas, canary, canary_weight, shadow, cpu, memory, gpus, target_in_flight, ...}. Its replicas are jobs running 'aimass serve'; requests go to /v2/models/NAME/... on this server.");

        deployments.MapGet("/", (DeploymentController controller, [FromQuery(Name = "page_size")] int? pageSize, [FromQuery(Name = "page_token")] string? pageToken) =>
            TypedResults.Ok(controller.List(pageSize ?? 100, pageToken)))
            .WithSummary("List deployments by name.");

        deployments.MapGet("/{name}", (string name, DeploymentController controller) =>
            TypedResults.Ok(controller.Get(name) ?? throw new JobsException(404, Registry.ErrorCodes.NotFound, $"deployment '{name}' does not exist")))
            .WithSummary("One deployment with its tracks (primary, canary, shadow) and replicas.");

        deployments.MapMethods("/{name}", ["PATCH"], async (string name, DeploymentPatch patch, HttpContext http, DeploymentController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.UpdateAsync(name, patch ?? throw Body(), Actor(http), ct)))
            .WithSummary("Change a deployment: model (rolled over without failing a request), min/max replicas, canary and weight ('' removes), shadow ('' removes), promote: true makes the canary the primary.");

        deployments.MapDelete("/{name}", async (string name, HttpContext http, DeploymentController controller, CancellationToken ct) =>
            TypedResults.Accepted($"/api/v1/deployments/{name}", await controller.DeleteAsync(name, Actor(http), ct)))
            .WithSummary("Delete a deployment: routing stops at once; replicas are drained, then stopped.");

        deployments.MapGet("/{name}/events", async (string name, DeploymentController controller, CancellationToken ct, long? after, int? limit) =>
            TypedResults.Ok(await controller.EventsAsync(name, after ?? 0, limit ?? 1000, ct)))
            .WithSummary("Events of a deployment (created, scaled, replica started/ready/ejected/draining/stopped, ...), oldest first.");

        deployments.MapPost("/{name}/replicas", (string name, ReplicaAnnouncement announcement, DeploymentController controller) =>
        {
            controller.Announce(name, announcement ?? throw Body());
            return TypedResults.NoContent();
        }).WithSummary("A replica announces where it listens: {job_id, attempt, address}. Sent by 'aimass serve --deployment' at start and as a heartbeat.");
    }

    private static string? Actor(HttpContext http) => http.Request.Headers[Registry.ApiHeaders.Actor].FirstOrDefault();

    private static JobsException Body() => new(400, Registry.ErrorCodes.InvalidArgument, "a JSON body is required");
}

/// <summary>Starts the deployment controller after the job service (replicas are jobs).</summary>
internal sealed class DeploymentsStartup(DeploymentController controller) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => controller.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => controller.StopAsync();
}
