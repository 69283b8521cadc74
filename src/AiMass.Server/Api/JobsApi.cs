using System.Text;
using AiMass.Jobs;
using Microsoft.AspNetCore.Mvc;

namespace AiMass.Server.Api;

/// <summary>REST endpoints of jobs (<c>/api/v1/jobs</c>), nodes and queues.</summary>
internal static class JobsApi
{
    /// <summary>Largest job spec accepted.</summary>
    private const int MaxSpecBytes = 1 << 20;

    public static void MapJobsApi(this IEndpointRouteBuilder app)
    {
        var jobs = app.MapGroup("/api/v1/jobs").WithTags("jobs");

        jobs.MapPost("/", async (HttpContext http, JobController controller, CancellationToken ct) =>
        {
            var text = await ReadSpecAsync(http, ct);
            var source = http.Request.Headers["X-AiMass-Spec-Name"].FirstOrDefault() is { Length: > 0 } name ? Uri.UnescapeDataString(name) : "job spec";
            var job = await controller.SubmitAsync(text, source, ct, http.Request.Headers[Registry.ApiHeaders.Actor].FirstOrDefault());
            return TypedResults.Created($"/api/v1/jobs/{job.Id}", job);
        })
            .Produces<JobInfo>(StatusCodes.Status201Created)
            .WithSummary("Submit a job spec: the body is the spec in YAML or JSON, whatever its content type. 400 lists every invalid field with its line (errors[]).");

        jobs.MapGet("/", async (JobController controller, CancellationToken ct, string? state, string? queue, string? owner,
            [FromQuery(Name = "page_size")] int? pageSize, [FromQuery(Name = "page_token")] string? pageToken) =>
            TypedResults.Ok(await controller.ListAsync(ParseState(state), queue, owner, pageSize ?? 100, pageToken, ct)))
            .WithSummary("List jobs, newest first (filters: state, queue, owner).");

        jobs.MapGet("/{id:long}", async (long id, JobController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.GetAsync(id, ct) ?? throw NotFound(id)))
            .WithSummary("One job with the tasks of its current or last attempt.");

        jobs.MapPost("/{id:long}/cancel", async (long id, JobController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.CancelAsync(id, ct)))
            .WithSummary("Cancel a job: queued ones at once, running ones with SIGTERM then SIGKILL after the grace period.");

        jobs.MapGet("/{id:long}/events", async (long id, JobController controller, CancellationToken ct, long? after, int? limit) =>
            TypedResults.Ok(await controller.EventsAsync(id, after ?? 0, limit ?? 1000, ct)))
            .WithSummary("Events of a job, oldest first (after: an event id, for polling).");

        jobs.MapGet("/{id:long}/logs", LogsAsync)
            .Produces<string>(StatusCodes.Status200OK, "text/plain")
            .WithSummary("Logs of every attempt and task in order, each preceded by a marker line (attempt=N, task=N select; follow=true streams until the job ends).");

        jobs.MapPost("/{id:long}/metrics", async (long id, JobMetricReport report, JobController controller, CancellationToken ct) =>
        {
            await controller.ReportMetricsAsync(id, report ?? throw new JobsException(400, Registry.ErrorCodes.InvalidArgument, "a JSON body {step, values} is required"), ct);
            return TypedResults.NoContent();
        }).WithSummary("Report metric values from a running task: {\"step\": 10, \"values\": {\"loss\": 0.3}}.");

        jobs.MapGet("/{id:long}/metrics", async (long id, string? name, JobController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.MetricsAsync(id, name, ct)))
            .WithSummary("Metric values a job reported, oldest first (name: one metric).");

        jobs.MapPost("/{id:long}/checkpoints", async (long id, JobCheckpointReport report, JobController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.ReportCheckpointAsync(id, report ?? throw new JobsException(400, Registry.ErrorCodes.InvalidArgument, "a JSON body {path, step} is required"), ct)))
            .WithSummary("Report a checkpoint: {\"path\": \"/shared/ckpt/step-100\", \"step\": 100}. The next attempt gets it as AIMASS_RESUME_FROM.");

        jobs.MapGet("/{id:long}/checkpoints", async (long id, JobController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.CheckpointsAsync(id, ct)))
            .WithSummary("Checkpoints a job reported, oldest first.");

        app.MapGet("/api/v1/events", async (JobController controller, CancellationToken ct, long? after, int? limit) =>
            TypedResults.Ok(await controller.EventsAsync(null, after ?? 0, limit ?? 1000, ct)))
            .WithTags("jobs").WithSummary("Every event (jobs, nodes, scaling), oldest first.");

        app.MapGet("/api/v1/nodes", (JobController controller) => TypedResults.Ok(controller.Nodes()))
            .WithTags("cluster").WithSummary("Nodes with capacity, allocation and the live CPU and memory use of their tasks.");

        app.MapPost("/api/v1/nodes/{name}/state", async (string name, NodeStateRequest request, JobController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.SetNodeStateAsync(name, request?.State ?? throw new JobsException(400, Registry.ErrorCodes.InvalidArgument, "state is required", "state"), request.Reason, ct)))
            .WithTags("cluster").WithSummary("Drain a node, take it down (its tasks are killed and requeued) or bring it up.");

        app.MapGet("/api/v1/queues", (JobController controller) => TypedResults.Ok(controller.Queues()))
            .WithTags("cluster").WithSummary("Queues with pending and running jobs, allocation and dominant share.");
        app.MapGet("/api/v1/cluster", (JobController controller) => TypedResults.Text(Specs.ClusterSpecWriter.Write(controller.CurrentCluster()), "application/yaml"))
            .WithTags("cluster").WithSummary("The cluster as a cluster file (YAML): policy, queues, nodes, dynamic pools; aimass up --cluster and simulation scenarios read it.");
    }

    private static JobsException NotFound(long id) => new(404, Registry.ErrorCodes.NotFound, $"job {id} does not exist");

    private static Jobs.JobState? ParseState(string? state)
    {
        if (state is null)
        {
            return null;
        }
        return Enum.TryParse<Jobs.JobState>(state, ignoreCase: true, out var s) && !int.TryParse(state, out _)
            ? s
            : throw new JobsException(400, Registry.ErrorCodes.InvalidArgument,
                $"state must be one of {string.Join(", ", Enum.GetNames<Jobs.JobState>().Select(n => n.ToLowerInvariant()))} (got '{state}')", "state");
    }

    private static async Task<string> ReadSpecAsync(HttpContext http, CancellationToken ct)
    {
        static JobsException TooLarge() => new(413, Registry.ErrorCodes.PayloadTooLarge, $"a job spec may be at most {MaxSpecBytes / 1024} KiB");
        if (http.Request.ContentLength > MaxSpecBytes)
        {
            throw TooLarge();
        }
        // Read in small pieces so a typical spec of a few hundred bytes costs no megabyte buffer.
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = new StringBuilder();
        var buffer = new char[4096];
        int n;
        while ((n = await reader.ReadAsync(buffer, ct)) > 0)
        {
            text.Append(buffer, 0, n);
            if (text.Length > MaxSpecBytes)
            {
                throw TooLarge();
            }
        }
        if (text.Length == 0)
        {
            throw new JobsException(400, Registry.ErrorCodes.InvalidArgument, "the request body must be a job spec in YAML or JSON");
        }
        return text.ToString();
    }

    private static async Task LogsAsync(long id, HttpContext http, JobController controller, int? attempt, int? task, bool? follow, CancellationToken ct)
    {
        var segments = await controller.LogSegmentsAsync(id, attempt, task, ct);
        http.Response.ContentType = "text/plain; charset=utf-8";
        var body = http.Response.Body;
        var written = new Dictionary<string, long>(StringComparer.Ordinal);
        async Task WriteNewAsync(IReadOnlyList<LogSegment> current)
        {
            foreach (var segment in current)
            {
                if (!written.TryGetValue(segment.Path, out var offset))
                {
                    await body.WriteAsync(Encoding.UTF8.GetBytes(segment.Marker + "\n"), ct);
                    offset = 0;
                }
                written[segment.Path] = offset + await CopyFromAsync(segment.Path, offset, body, ct);
            }
            await body.FlushAsync(ct);
        }
        await WriteNewAsync(segments);
        if (follow != true)
        {
            return;
        }
        // Follow: poll the files (and new attempts) until the job has ended and everything written was sent.
        while (!ct.IsCancellationRequested)
        {
            var active = controller.IsActive(id);
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
            await WriteNewAsync(await controller.LogSegmentsAsync(id, attempt, task, ct));
            if (!active)
            {
                return;
            }
        }
    }

    private static async Task<long> CopyFromAsync(string path, long offset, Stream target, CancellationToken ct)
    {
        try
        {
            await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, useAsync: true);
            if (file.Length <= offset)
            {
                return 0;
            }
            file.Position = offset;
            var before = file.Position;
            await file.CopyToAsync(target, ct);
            return file.Position - before;
        }
        catch (FileNotFoundException)
        {
            return 0; // the task has not written anything yet
        }
        catch (DirectoryNotFoundException)
        {
            return 0;
        }
    }
}

/// <summary>Starts the job service after the registry's schema exists, and tells it where the server listens.</summary>
internal sealed class JobsStartup(JobController controller, IServiceProvider services, IHostApplicationLifetime lifetime, Microsoft.Extensions.Options.IOptions<Hosting.ServerOptions> options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var configured = options.Value;
        if (configured.Port != 0)
        {
            var host = configured.Host is "0.0.0.0" or "::" or "localhost" ? "127.0.0.1" : configured.Host;
            controller.ServerAddress = new Uri($"http://{host}:{configured.Port}");
        }
        await controller.StartAsync(cancellationToken);
        lifetime.ApplicationStarted.Register(() =>
        {
            var server = services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>();
            var address = server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            if (address is not null)
            {
                controller.ServerAddress = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
            }
        });
    }

    public Task StopAsync(CancellationToken cancellationToken) => controller.StopAsync();
}
