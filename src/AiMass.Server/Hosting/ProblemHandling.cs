using System.Text.Json;
using AiMass.Registry;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace AiMass.Server.Hosting;

/// <summary>Turns exceptions into <c>application/problem+json</c> with a stable <c>code</c> (and <c>field</c> when known).</summary>
internal sealed class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (httpContext.RequestAborted.IsCancellationRequested)
        {
            // The client went away (an interrupted upload): nothing to answer, nothing to log as a server error.
            Log.ClientAborted(logger, httpContext.Request.Method, httpContext.Request.Path);
            return true;
        }
        var (status, code, detail, field) = exception switch
        {
            AiMassException r => (r.Status, r.Code, r.Message, r.Field),
            Specs.SpecException s => (400, ErrorCodes.InvalidArgument, s.Message, s.Errors.Count > 0 ? s.Errors[0].Field : null),
            Scheduling.SchedulingException s => (400, ErrorCodes.InvalidArgument, s.Message, s.Field),
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } b => (413, ErrorCodes.PayloadTooLarge, b.Message, null),
            BadHttpRequestException b when b.InnerException is JsonException j =>
                (400, ErrorCodes.InvalidArgument, $"the request body is not valid JSON for this call: {j.Message}", j.Path),
            BadHttpRequestException b => (b.StatusCode, ErrorCodes.InvalidArgument, b.Message, null),
            JsonException j => (400, ErrorCodes.InvalidArgument, $"the request body is not valid JSON: {j.Message}", j.Path),
            _ => (500, ErrorCodes.Internal, "internal error; the server log has the details", (string?)null),
        };
        if (status >= 500)
        {
            Log.Unhandled(logger, exception, httpContext.Request.Method, httpContext.Request.Path);
        }
        if (httpContext.Response.HasStarted)
        {
            return false;
        }
        httpContext.Response.StatusCode = status;
        var problem = new ProblemDetails { Status = status, Title = Title(status), Detail = detail };
        problem.Extensions["code"] = code;
        if (!string.IsNullOrEmpty(field))
        {
            problem.Extensions["field"] = field;
        }
        if (exception is Specs.SpecException spec)
        {
            // Every problem of the spec, each with its field, line and column.
            problem.Extensions["errors"] = spec.Errors.Select(e => new { field = e.Field, line = e.Line, column = e.Column, message = e.Message }).ToArray();
        }
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = httpContext, ProblemDetails = problem, Exception = exception });
    }

    internal static string Title(int status) => status switch
    {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        _ => status >= 500 ? "Internal Server Error" : "Error",
    };

    /// <summary>The code used for problems the framework itself writes (unknown route, wrong method).</summary>
    internal static string CodeFor(int? status) => status switch
    {
        404 => ErrorCodes.NotFound,
        409 => ErrorCodes.Conflict,
        413 => ErrorCodes.PayloadTooLarge,
        >= 500 => ErrorCodes.Internal,
        _ => ErrorCodes.InvalidArgument,
    };
}
