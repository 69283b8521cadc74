using System.Globalization;
using AiMass.Registry;
using AiMass.Server.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace AiMass.Server.Api;

/// <summary>REST endpoints of the model registry under <c>/api/v1/models</c>.</summary>
internal static class ModelsApi
{
    public static void MapModelsApi(this IEndpointRouteBuilder app)
    {
        var models = app.MapGroup("/api/v1/models").WithTags("models");

        models.MapGet("/", async (ModelRegistry registry, CancellationToken ct,
            [FromQuery(Name = "name_prefix")] string? namePrefix, string? tag, string? alias,
            [FromQuery(Name = "order_by")] string? orderBy, bool? desc,
            [FromQuery(Name = "page_size")] int? pageSize, [FromQuery(Name = "page_token")] string? pageToken) =>
            TypedResults.Ok(await registry.ListModelsAsync(new ModelQuery(namePrefix, tag, alias, orderBy, desc ?? false, pageSize, pageToken), ct)))
            .WithSummary("List models (filters: name_prefix, tag=KEY[=VALUE], alias; order_by name|created|updated, desc).");

        models.MapPost("/", async (CreateModelRequest request, ModelRegistry registry, CancellationToken ct) =>
        {
            var model = await registry.CreateModelAsync(request ?? throw MissingBody(), ct);
            return TypedResults.Created($"/api/v1/models/{model.Name}", model);
        }).WithSummary("Create a registered model.");

        models.MapGet("/{name}", async (string name, ModelRegistry registry, CancellationToken ct) =>
            TypedResults.Ok(await registry.GetModelAsync(name, ct)));

        models.MapPatch("/{name}", async (string name, UpdateModelRequest request, ModelRegistry registry, CancellationToken ct) =>
            TypedResults.Ok(await registry.UpdateModelAsync(name, request ?? throw MissingBody(), ct)))
            .WithSummary("Change description or tags (a tag set to null is removed).");

        models.MapDelete("/{name}", async (string name, bool? force, ModelRegistry registry, CancellationToken ct) =>
        {
            await registry.DeleteModelAsync(name, force ?? false, ct);
            return TypedResults.NoContent();
        }).WithSummary("Delete a model; with versions only when force=true.");

        models.MapPost("/{name}/versions", RegisterAsync)
            .Accepts<Stream>("application/octet-stream", "application/json")
            .Produces<ModelVersionInfo>(StatusCodes.Status201Created)
            .WithSummary("Upload an artifact (application/octet-stream; metadata in the query: format, digest, description, alias, source, "
                + "dataset_digest, parent, tag=K=V, param=K=V, metric=K=V) as a new ready version, or reserve a version (application/json body: "
                + "format, description, tags, params, metrics, lineage) whose artifact comes later with PUT .../artifact.");

        models.MapPut("/{name}/versions/{v:int}/artifact", async (string name, int v, HttpContext http, ModelRegistry registry,
            IOptions<RegistryOptions> options, ILogger<ModelRegistry> logger, CancellationToken ct) =>
        {
            PrepareUpload(http, options.Value.MaxUploadBytes);
            var version = await registry.UploadArtifactAsync(name, v, http.Request.Body, http.Request.Query["digest"].FirstOrDefault(), ct);
            Log.Registered(logger, version.Name, version.Version, version.Size, version.Digest!);
            return TypedResults.Ok(version);
        })
            .Accepts<Stream>("application/octet-stream")
            .WithSummary("Upload the artifact of a registering version (query: digest); 400 invalid_artifact marks the version failed.");

        models.MapGet("/{name}/versions", async (string name, ModelRegistry registry, CancellationToken ct,
            string? status, string? tag, string? alias, bool? asc,
            [FromQuery(Name = "page_size")] int? pageSize, [FromQuery(Name = "page_token")] string? pageToken) =>
            TypedResults.Ok(await registry.ListVersionsAsync(name, new VersionQuery(status, tag, alias, asc ?? false, pageSize, pageToken), ct)))
            .WithSummary("List versions, newest first (filters: status or all, tag, alias; asc=true for oldest first).");

        models.MapGet("/{name}/versions/{v}", async (string name, string v, ModelRegistry registry, CancellationToken ct) =>
            TypedResults.Ok(await registry.GetVersionAsync(name, v, ct)))
            .WithSummary("A version by number, alias or 'latest'.");

        models.MapPatch("/{name}/versions/{v}", async (string name, string v, UpdateVersionRequest request, ModelRegistry registry, CancellationToken ct) =>
            TypedResults.Ok(await registry.UpdateVersionAsync(name, v, request ?? throw MissingBody(), ct)))
            .WithSummary("Change description, tags, params, metrics or status (archived/ready).");

        models.MapDelete("/{name}/versions/{v}", async (string name, string v, bool? force, HttpContext http, ModelRegistry registry, ILogger<ModelRegistry> logger, CancellationToken ct) =>
        {
            await registry.DeleteVersionAsync(name, v, force ?? false, Actor(http), ct);
            Log.VersionDeleted(logger, name, v, Actor(http));
            return TypedResults.NoContent();
        }).WithSummary("Delete a version and, when unshared, its blob; force=true also removes aliases pointing at it.");

        models.MapGet("/{name}/versions/{v}/artifact", (string name, string v, HttpContext http, ModelRegistry registry, CancellationToken ct) =>
            DownloadAsync(name, v, http, registry, ct))
            .WithSummary("Download the artifact (supports Range requests and If-None-Match).");

        // The same resources addressed as NAME@VERSION or NAME@ALIAS, as the CLI writes them.
        var versions = app.MapGroup("/api/v1/versions").WithTags("models");
        versions.MapGet("/{reference}", async (string reference, ModelRegistry registry, CancellationToken ct) =>
        {
            var r = ParseReference(reference);
            return TypedResults.Ok(await registry.GetVersionAsync(r.Model, r.Selector ?? Names.Latest, ct));
        }).WithSummary("A version by reference: NAME@VERSION, NAME@ALIAS or NAME (latest).");
        versions.MapGet("/{reference}/artifact", (string reference, HttpContext http, ModelRegistry registry, CancellationToken ct) =>
        {
            var r = ParseReference(reference);
            return DownloadAsync(r.Model, r.Selector ?? Names.Latest, http, registry, ct);
        }).WithSummary("Download by reference: NAME@VERSION, NAME@ALIAS or NAME (latest).");

        models.MapGet("/{name}/aliases", async (string name, ModelRegistry registry, CancellationToken ct) =>
        {
            var model = await registry.GetModelAsync(name, ct);
            return TypedResults.Ok(model.Aliases.Select(a => new { alias = a.Key, version = a.Value }));
        });

        models.MapGet("/{name}/aliases/{alias}", async (string name, string alias, ModelRegistry registry, CancellationToken ct) =>
            TypedResults.Ok(await registry.GetAliasAsync(name, alias, ct)));

        models.MapPut("/{name}/aliases/{alias}", async (string name, string alias, SetAliasRequest request, HttpContext http,
            ModelRegistry registry, ILogger<ModelRegistry> logger, CancellationToken ct) =>
        {
            var result = await registry.SetAliasAsync(name, alias, (request ?? throw MissingBody()).Version, Actor(http), request.Reason, ct);
            Log.AliasMoved(logger, name, alias, result.Version, Actor(http));
            return TypedResults.Ok(result);
        }).WithSummary("Point an alias at a version (body {\"version\": n}); the move is recorded in the history.");

        models.MapDelete("/{name}/aliases/{alias}", async (string name, string alias, HttpContext http, ModelRegistry registry, ILogger<ModelRegistry> logger, CancellationToken ct) =>
        {
            await registry.DeleteAliasAsync(name, alias, Actor(http), ct);
            Log.AliasMoved(logger, name, alias, null, Actor(http));
            return TypedResults.NoContent();
        });

        models.MapGet("/{name}/aliases/{alias}/history", async (string name, string alias, ModelRegistry registry, CancellationToken ct) =>
            TypedResults.Ok(await registry.GetAliasHistoryAsync(name, alias, ct)))
            .WithSummary("Every move of the alias, newest first.");

        models.MapPost("/{name}/aliases/{alias}/rollback", async (string name, string alias, HttpContext http, ModelRegistry registry, ILogger<ModelRegistry> logger, CancellationToken ct) =>
        {
            var result = await registry.RollbackAliasAsync(name, alias, Actor(http), ct);
            Log.AliasMoved(logger, name, alias, result?.Version, Actor(http));
            return result is null ? Results.NoContent() : Results.Ok(result);
        }).WithSummary("Return the alias to the version before its latest move (204 when that removes it).");
    }

    private static VersionRef ParseReference(string reference) =>
        VersionRef.TryParse(reference, out var r, out var error) ? r : throw new RegistryException(400, ErrorCodes.InvalidArgument, error!, "reference");

    private static async Task<IResult> DownloadAsync(string name, string v, HttpContext http, ModelRegistry registry, CancellationToken ct)
    {
        var (version, path) = await registry.GetArtifactAsync(name, v, ct);
        var digest = version.Digest!;
        http.Response.Headers["X-AiMass-Digest"] = digest;
        http.Response.Headers["X-AiMass-Version"] = version.Version.ToString(CultureInfo.InvariantCulture);
        http.Response.Headers["Repr-Digest"] = $"sha-256=:{Convert.ToBase64String(Convert.FromHexString(digest[7..]))}:";
        var fileName = $"{version.Name}-{version.Version}.{version.Format}";
        var etag = new EntityTagHeaderValue($"\"{digest}\"");
        if (IsPlainGet(http.Request))
        {
            return await StreamWholeFileAsync(http, path, fileName, etag, ct);
        }
        return TypedResults.PhysicalFile(path, "application/octet-stream", fileName, entityTag: etag, enableRangeProcessing: true);
    }

    /// <summary>True when no range or precondition header asks for the framework's file result.</summary>
    private static bool IsPlainGet(HttpRequest request)
    {
        var h = request.Headers;
        return !h.ContainsKey(HeaderNames.Range) && !h.ContainsKey(HeaderNames.IfNoneMatch) && !h.ContainsKey(HeaderNames.IfMatch)
            && !h.ContainsKey(HeaderNames.IfModifiedSince) && !h.ContainsKey(HeaderNames.IfUnmodifiedSince) && !h.ContainsKey(HeaderNames.IfRange);
    }

    /// <summary>
    /// A whole-file download in 1 MiB reads: Kestrel's generic file sending copies in small chunks and halves the
    /// throughput of multi-gigabyte artifacts. Range and conditional requests still go through PhysicalFile.
    /// </summary>
    private static async Task<IResult> StreamWholeFileAsync(HttpContext http, string path, string fileName, EntityTagHeaderValue etag, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, bufferSize: 0,
            FileOptions.Asynchronous | FileOptions.SequentialScan);
        var response = http.Response;
        response.ContentType = "application/octet-stream";
        response.ContentLength = file.Length;
        response.Headers.ETag = etag.ToString();
        response.Headers.AcceptRanges = "bytes";
        response.Headers.ContentDisposition = new ContentDispositionHeaderValue("attachment") { FileNameStar = fileName, FileName = fileName }.ToString();
        await file.CopyToAsync(response.Body, 1 << 20, ct);
        return Results.Empty;
    }

    private static async Task<IResult> RegisterAsync(string name, HttpContext http, ModelRegistry registry, IOptions<RegistryOptions> options,
        ILogger<ModelRegistry> logger, CancellationToken ct)
    {
        if (http.Request.HasJsonContentType())
        {
            var reservation = await http.Request.ReadFromJsonAsync<RegisterVersionRequest>(AiMassJson.Options, ct) ?? throw MissingBody();
            var reserved = await registry.ReserveVersionAsync(name, reservation, ct);
            return TypedResults.Created($"/api/v1/models/{reserved.Name}/versions/{reserved.Version}", reserved);
        }
        PrepareUpload(http, options.Value.MaxUploadBytes);
        var request = ParseRegisterQuery(http.Request.Query);
        var version = await registry.RegisterVersionAsync(name, http.Request.Body, request, Actor(http), ct);
        Log.Registered(logger, version.Name, version.Version, version.Size, version.Digest!);
        return TypedResults.Created($"/api/v1/models/{version.Name}/versions/{version.Version}", version);
    }

    /// <summary>Checks size and media type before any byte is read, and lifts Kestrel's 30 MB default (the store enforces the configured limit while streaming).</summary>
    private static void PrepareUpload(HttpContext http, long limit)
    {
        if (http.Request.ContentLength > limit)
        {
            throw new RegistryException(413, ErrorCodes.PayloadTooLarge,
                $"the artifact ({http.Request.ContentLength} bytes) is larger than the upload limit of {limit} bytes (Registry:MaxUploadBytes)");
        }
        if (http.Request.ContentType is { } type && !type.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase))
        {
            throw new RegistryException(415, ErrorCodes.InvalidArgument,
                $"send the artifact as application/octet-stream (or a JSON body to reserve a version), not {type}", "content-type");
        }
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = null;
        }
    }

    internal static RegisterVersionRequest ParseRegisterQuery(IQueryCollection query)
    {
        string? One(string key) => query.TryGetValue(key, out var v) ? v.ToString() : null;
        var source = One("source");
        var dataset = One("dataset_digest");
        var parent = One("parent");
        return new RegisterVersionRequest
        {
            Format = One("format") ?? "onnx",
            ExpectedDigest = One("digest"),
            Description = One("description"),
            Alias = One("alias"),
            Tags = Pairs(query, "tag", v => v),
            Params = Pairs(query, "param", ParamValues.Parse),
            Metrics = Pairs(query, "metric", ParseMetric),
            Lineage = source is null && dataset is null && parent is null ? null : new Lineage(source, dataset, parent),
        };
    }

    private static Dictionary<string, T>? Pairs<T>(IQueryCollection query, string key, Func<string, T> parse)
    {
        if (!query.TryGetValue(key, out var values))
        {
            return null;
        }
        var result = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var item in values)
        {
            var eq = item?.IndexOf('=', StringComparison.Ordinal) ?? -1;
            if (item is null || eq <= 0)
            {
                throw new RegistryException(400, ErrorCodes.InvalidArgument, $"{key} '{item}' must be KEY=VALUE", key);
            }
            try
            {
                result[item[..eq]] = parse(item[(eq + 1)..]);
            }
            catch (FormatException ex)
            {
                throw new RegistryException(400, ErrorCodes.InvalidArgument, $"{key} '{item}': {ex.Message}", $"{key}.{item[..eq]}");
            }
        }
        return result;
    }

    private static double ParseMetric(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)
            ? value
            : throw new FormatException($"'{text}' is not a finite number");

    private static string Actor(HttpContext http) =>
        http.Request.Headers.TryGetValue(ApiHeaders.Actor, out var actor) && !string.IsNullOrWhiteSpace(actor) ? actor.ToString() : "anonymous";

    private static RegistryException MissingBody() => new(400, ErrorCodes.InvalidArgument, "a JSON request body is required", "body");
}
