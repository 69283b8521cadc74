using AiMass.Jobs;
using AiMass.Jobs.Studies;
using AiMass.Studies;
using AiMass.Tuning;
using Microsoft.AspNetCore.Mvc;

namespace AiMass.Server.Api;

/// <summary>REST endpoints of tuning studies (<c>/api/v1/studies</c>).</summary>
internal static class StudiesApi
{
    public static void MapStudiesApi(this IEndpointRouteBuilder app)
    {
        var studies = app.MapGroup("/api/v1/studies").WithTags("studies");

        studies.MapPost("/", async (CreateStudyRequest request, HttpContext http, StudyController controller, CancellationToken ct) =>
        {
            var created = await controller.CreateAsync(request ?? throw Body(), http.Request.Headers[Registry.ApiHeaders.Actor].FirstOrDefault(), ct);
            return TypedResults.Created($"/api/v1/studies/{created.Id}", created);
        })
            .Produces<StudyInfo>(StatusCodes.Status201Created)
            .WithSummary("Create a study: {spec: YAML (docs/tuning.md), source, base_directory, training_spec, sampler, trials, parallel, seed, name}. Its trials run as jobs.");

        studies.MapGet("/", async (StudyController controller, CancellationToken ct, string? state, [FromQuery(Name = "page_size")] int? pageSize, [FromQuery(Name = "page_token")] string? pageToken) =>
            TypedResults.Ok(await controller.ListAsync(ParseState(state), pageSize ?? 100, pageToken, ct)))
            .WithSummary("List studies, newest first (state: running, stopping, stopped, completed).");

        studies.MapGet("/{study}", async (string study, StudyController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.GetAsync(study, ct)))
            .WithSummary("One study (by id or name): its state, counts of trials and best trial.");

        studies.MapPost("/{study}/stop", async (string study, StudyController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.StopStudyAsync(study, ct)))
            .WithSummary("Stop a study: its running trials' jobs are cancelled and no new trial starts.");

        studies.MapGet("/{study}/trials", async (string study, StudyController controller, CancellationToken ct, string? state, bool? values) =>
            TypedResults.Ok(await controller.TrialsAsync(study, state, values ?? false, ct)))
            .WithSummary("A study's trials by number (state: running, complete, pruned, failed; values=true adds each trial's intermediate values).");

        studies.MapGet("/{study}/trials/{number:int}", async (string study, int number, StudyController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.TrialAsync(study, number, ct)))
            .WithSummary("One trial with its intermediate values.");

        studies.MapPost("/{study}/trials/{number:int}/report", async (string study, int number, TrialReport report, StudyController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.ReportValueAsync(study, number, report ?? throw Body(), ct)))
            .WithSummary("A running trial reports {value, step}: an intermediate value (answer: should_prune) or, without step, its final value. Also a heartbeat.");

        studies.MapGet("/{study}/best", async (string study, StudyController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.BestAsync(study, ct)))
            .WithSummary("The best complete trial.");

        studies.MapGet("/{study}/report", async (string study, StudyController controller, CancellationToken ct) =>
            TypedResults.Ok(await controller.GetReportAsync(study, ct)))
            .Produces<StudyReport>()
            .WithSummary("The study's report for a UI: optimisation history, parallel coordinates of complete trials, parameter importance.");
    }

    private static StudyState? ParseState(string? state) =>
        state is null ? null
        : Enum.TryParse<StudyState>(state, ignoreCase: true, out var s) && !int.TryParse(state, out _) ? s
        : throw new JobsException(400, Registry.ErrorCodes.InvalidArgument, $"'{state}' is not a study state: running, stopping, stopped or completed", "state");

    private static JobsException Body() => new(400, Registry.ErrorCodes.InvalidArgument, "a JSON body is required");
}

/// <summary>Starts the study controller after the job service (trials are jobs).</summary>
internal sealed class StudiesStartup(StudyController controller) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => controller.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => controller.StopAsync();
}
