using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using AiMass.Jobs.Deployments;
using Yarp.ReverseProxy.Forwarder;

namespace AiMass.Server.Deployments;

/// <summary>
/// Routes a deployment's inference traffic (<c>/v2/models/NAME/...</c>, <c>/v1/models/NAME...</c>) to its ready replicas
/// through YARP's forwarder: primary or canary by weight (seeded, so splits are reproducible), the least loaded replica
/// of the chosen role, a copy to the shadow whose answer is compared and discarded, a retry on another replica when
/// one cannot be reached (within <see cref="DeploymentOptions.RetryWindow"/>), and a wait for a cold start when none is
/// ready (within <see cref="DeploymentOptions.ColdStartTimeout"/>).
/// </summary>
internal sealed partial class DeploymentRouter : IDisposable
{
    private const int MaxShadowInFlight = 64;
    private const int MaxCompareBytes = 16 << 20;

    private readonly DeploymentController _controller;
    private readonly IHttpForwarder _forwarder;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly HttpMessageInvoker _client;
    private readonly HttpClient _shadowClient;
    private readonly Random _random;
    private readonly ForwarderRequestConfig _config;
    private int _shadowInFlight;

    public DeploymentRouter(DeploymentController controller, IHttpForwarder forwarder, TimeProvider time, ILogger<DeploymentRouter> logger)
    {
        _controller = controller;
        _forwarder = forwarder;
        _time = time;
        _logger = logger;
        _random = new Random(controller.Options.RoutingSeed);
        // HTTP/1.1 to replicas: they listen in cleartext, where HTTP/2 would need prior knowledge.
        _config = new ForwarderRequestConfig
        {
            ActivityTimeout = controller.Options.RequestTimeout,
            Version = System.Net.HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        _client = new HttpMessageInvoker(Handler());
        _shadowClient = new HttpClient(Handler()) { Timeout = TimeSpan.FromMinutes(1) };
    }

    private static SocketsHttpHandler Handler() => new()
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(2),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        EnableMultipleHttp2Connections = true,
    };

    /// <summary>Maps the deployment routes onto the control plane.</summary>
    public static void Map(IEndpointRouteBuilder app)
    {
        app.Map("/v2/models/{deployment}/{**rest}", (string deployment, HttpContext context, DeploymentRouter router) => router.RouteAsync(context, deployment, VersionInPath(context.Request.Path)))
            .WithTags("deployments").ExcludeFromDescription();
        app.Map("/v2/models/{deployment}", (string deployment, HttpContext context, DeploymentRouter router) => router.RouteAsync(context, deployment, null))
            .WithTags("deployments").ExcludeFromDescription();
        app.Map("/v1/models/{**rest}", (string rest, HttpContext context, DeploymentRouter router) =>
        {
            var end = rest.IndexOfAny([':', '/']);
            var deployment = end < 0 ? rest : rest[..end];
            return router.RouteAsync(context, deployment, VersionInPath(context.Request.Path));
        }).WithTags("deployments").ExcludeFromDescription();
    }

    /// <summary>The version in <c>.../versions/N/...</c>, if the path names one.</summary>
    private static int? VersionInPath(PathString path)
    {
        var parts = path.Value!.Split('/');
        var i = Array.IndexOf(parts, "versions");
        if (i < 0 || i + 1 >= parts.Length)
        {
            return null;
        }
        var text = parts[i + 1];
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        return int.TryParse(colon < 0 ? text : text[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
    }

    private async Task RouteAsync(HttpContext context, string deployment, int? version)
    {
        var started = Stopwatch.GetTimestamp();
        var ct = context.RequestAborted;
        var route = _controller.Route(deployment);
        if (route is null)
        {
            await ErrorAsync(context, 404, $"deployment '{deployment}' does not exist");
            return;
        }
        var body = await ReadBodyAsync(context, ct);
        if (body is null)
        {
            DeploymentMetrics.Routed(deployment, "none", "413", Stopwatch.GetElapsedTime(started));
            return;
        }
        var options = _controller.Options;
        var coldDeadline = _time.GetUtcNow() + options.ColdStartTimeout;
        DateTimeOffset? retryDeadline = null;
        string? lastError = null;
        TeeStream? tee = null;
        while (true)
        {
            route = _controller.Route(deployment);
            if (route is null)
            {
                await ErrorAsync(context, 404, $"deployment '{deployment}' does not exist");
                return;
            }
            var (replica, role) = Pick(route, version);
            if (replica is null)
            {
                if (version is { } v && route.HasReady)
                {
                    var serving = route.Primary.Concat(route.Canary).Select(r => r.Version).Distinct().Order();
                    await ErrorAsync(context, 404, $"deployment '{deployment}' does not serve version {v} (it serves {string.Join(", ", serving)})");
                    return;
                }
                var deadline = retryDeadline is { } r && r < coldDeadline ? r : coldDeadline;
                var remaining = deadline - _time.GetUtcNow();
                if (remaining <= TimeSpan.Zero)
                {
                    DeploymentMetrics.Routed(deployment, "none", lastError is null ? "no_replica" : "unreachable", Stopwatch.GetElapsedTime(started));
                    context.Response.Headers.RetryAfter = "5";
                    await ErrorAsync(context, 503, lastError is null
                        ? $"deployment '{deployment}' has no ready replica after waiting {options.ColdStartTimeout.TotalSeconds:0} s"
                        : $"deployment '{deployment}': no replica could be reached ({lastError})");
                    return;
                }
                using (route.Load.Wait())
                {
                    var changed = _controller.RoutesChanged;
                    _controller.Wake();
                    try
                    {
                        await changed.WaitAsync(remaining < TimeSpan.FromSeconds(1) ? remaining : TimeSpan.FromSeconds(1), _time, ct);
                    }
                    catch (TimeoutException)
                    {
                    }
                }
                continue;
            }

            context.Request.Body = new MemoryStream(body, writable: false);
            context.Request.ContentLength = body.Length;
            context.Response.Headers["AiMass-Route"] = $"{role}; version={replica.Version.ToString(CultureInfo.InvariantCulture)}; job={replica.JobId.ToString(CultureInfo.InvariantCulture)}";
            // Once per request (a retry writes through the same copy), and only when a shadow will want the answer.
            tee ??= route.Shadow.Count > 0 && HttpMethods.IsPost(context.Request.Method) ? TeeResponse(context) : null;
            var routing = Stopwatch.GetElapsedTime(started);
            ForwarderError error;
            using (replica.Begin(route.Load))
            {
                error = await _forwarder.SendAsync(context, replica.Address!, _client, _config, HttpTransformer.Empty);
            }
            if (error == ForwarderError.None)
            {
                DeploymentMetrics.Routed(deployment, role, Outcome(context.Response.StatusCode), routing);
                if (tee is not null)
                {
                    Mirror(route, context, body, tee);
                }
                return;
            }
            var failure = context.Features.Get<IForwarderErrorFeature>()?.Exception?.Message ?? error.ToString();
            if (error is ForwarderError.Request or ForwarderError.RequestTimedOut && !context.Response.HasStarted && !ct.IsCancellationRequested)
            {
                // Nothing reached the client yet: eject the replica and try another within the retry window.
                _controller.ReportUnreachable(replica, failure);
                Log.Unreachable(_logger, deployment, replica.JobId, failure);
                lastError = $"job {replica.JobId}: {failure}";
                retryDeadline ??= _time.GetUtcNow() + options.RetryWindow;
                if (_time.GetUtcNow() < retryDeadline)
                {
                    context.Response.Clear();
                    context.Features.Set<IForwarderErrorFeature>(null);
                    continue;
                }
            }
            DeploymentMetrics.Routed(deployment, role, "unreachable", routing);
            if (!context.Response.HasStarted)
            {
                await ErrorAsync(context, 502, $"deployment '{deployment}': replica job {replica.JobId} failed: {failure}");
            }
            return;
        }
    }

    private (Replica? Replica, string Role) Pick(DeploymentRoute route, int? version)
    {
        if (version is { } v)
        {
            var byVersion = route.Primary.Where(r => r.Version == v).ToList();
            if (byVersion.Count > 0)
            {
                return (LeastLoaded(byVersion), "primary");
            }
            byVersion = route.Canary.Where(r => r.Version == v).ToList();
            return byVersion.Count > 0 ? (LeastLoaded(byVersion), "canary") : (null, "");
        }
        if (!route.HasReady)
        {
            return (null, "");
        }
        int draw;
        lock (_random)
        {
            draw = _random.Next(100);
        }
        return draw < route.CanaryWeight || route.Primary.Count == 0 ? (LeastLoaded(route.Canary), "canary") : (LeastLoaded(route.Primary), "primary");
    }

    private static Replica? LeastLoaded(IReadOnlyList<Replica> replicas)
    {
        Replica? best = null;
        foreach (var r in replicas)
        {
            if (r.State == ReplicaState.Ready && (best is null || r.InFlight < best.InFlight))
            {
                best = r;
            }
        }
        return best;
    }

    /// <summary>The whole request body (a retry or the shadow needs it again); null after answering 413.</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpContext context, CancellationToken ct)
    {
        var limit = Api.InferenceApi.MaxRequestBytes;
        if (context.Request.ContentLength is { } declared)
        {
            if (declared > limit)
            {
                await ErrorAsync(context, 413, $"the request body of {declared} bytes is over the limit of {limit} bytes");
                return null;
            }
            // The common case: the length is known, read straight into an array of that size.
            var exact = new byte[declared];
            var at = 0;
            int n;
            while (at < exact.Length && (n = await context.Request.Body.ReadAsync(exact.AsMemory(at), ct)) > 0)
            {
                at += n;
            }
            if (at != exact.Length)
            {
                await ErrorAsync(context, 400, $"the request body ended after {at} of its {declared} bytes");
                return null;
            }
            return exact;
        }
        using var buffer = new MemoryStream();
        var chunk = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int read;
            while ((read = await context.Request.Body.ReadAsync(chunk, ct)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    await ErrorAsync(context, 413, $"the request body is over the limit of {limit} bytes");
                    return null;
                }
                buffer.Write(chunk, 0, read);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(chunk);
        }
        return buffer.ToArray();
    }

    private static string Outcome(int status) => status switch
    {
        < 300 => "2xx",
        < 500 => status is 429 or 404 or 413 ? status.ToString(CultureInfo.InvariantCulture) : "4xx",
        _ => status.ToString(CultureInfo.InvariantCulture),
    };

    private static async Task ErrorAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        await context.Response.WriteAsJsonAsync(new { error = message });
    }

    // ---------------------------------------------------------------------------------------------------- shadow

    private static TeeStream TeeResponse(HttpContext context)
    {
        var tee = new TeeStream(context.Response.Body, MaxCompareBytes);
        context.Response.Body = tee;
        return tee;
    }

    /// <summary>Sends a copy to a shadow replica in the background; its answer is compared with the primary's and discarded.</summary>
    private void Mirror(DeploymentRoute route, HttpContext context, byte[] body, TeeStream primaryBody)
    {
        var shadow = LeastLoaded(route.Shadow);
        if (shadow?.Address is not { } address)
        {
            return;
        }
        if (Interlocked.Increment(ref _shadowInFlight) > MaxShadowInFlight)
        {
            Interlocked.Decrement(ref _shadowInFlight);
            DeploymentMetrics.Shadowed(route.Name, "dropped", TimeSpan.Zero);
            return;
        }
        var request = new HttpRequestMessage(HttpMethod.Post, address + context.Request.Path + context.Request.QueryString) { Content = new ByteArrayContent(body) };
        if (context.Request.ContentType is { } type)
        {
            request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
        }
        foreach (var header in context.Request.Headers.Where(h => h.Key.StartsWith("Inference-", StringComparison.OrdinalIgnoreCase)))
        {
            request.Headers.TryAddWithoutValidation(header.Key, (IEnumerable<string>)header.Value);
        }
        var primaryStatus = context.Response.StatusCode;
        var primary = primaryBody.Captured();
        var deployment = route.Name;
        _ = Task.Run(async () =>
        {
            var started = Stopwatch.GetTimestamp();
            using var scope = shadow.Begin(route.Load);
            try
            {
                using var response = await _shadowClient.SendAsync(request);
                var answer = await response.Content.ReadAsByteArrayAsync();
                var result = primary is null ? "uncompared" : (int)response.StatusCode != primaryStatus ? "disagree" : Agree(primary, answer) ? "agree" : "disagree";
                DeploymentMetrics.Shadowed(deployment, result, Stopwatch.GetElapsedTime(started));
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                DeploymentMetrics.Shadowed(deployment, "error", Stopwatch.GetElapsedTime(started));
            }
            finally
            {
                request.Dispose();
                Interlocked.Decrement(ref _shadowInFlight);
            }
        });
    }

    /// <summary>Whether two answers carry the same outputs: JSON compared value by value (numbers within 1e-4 relative, ids and model names and versions ignored), anything else byte by byte.</summary>
    internal static bool Agree(byte[] primary, byte[] shadow)
    {
        try
        {
            using var a = JsonDocument.Parse(primary);
            using var b = JsonDocument.Parse(shadow);
            return Same(a.RootElement, b.RootElement);
        }
        catch (JsonException)
        {
            return primary.AsSpan().SequenceEqual(shadow);
        }
    }

    private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal) { "id", "model_name", "model_version" };

    private static bool Same(JsonElement a, JsonElement b)
    {
        if (a.ValueKind != b.ValueKind)
        {
            return false;
        }
        switch (a.ValueKind)
        {
            case JsonValueKind.Object:
                var left = a.EnumerateObject().Where(p => !Ignored.Contains(p.Name)).ToList();
                var right = b.EnumerateObject().Where(p => !Ignored.Contains(p.Name)).ToDictionary(p => p.Name, p => p.Value, StringComparer.Ordinal);
                return left.Count == right.Count && left.All(p => right.TryGetValue(p.Name, out var other) && Same(p.Value, other));
            case JsonValueKind.Array:
                if (a.GetArrayLength() != b.GetArrayLength())
                {
                    return false;
                }
                using (var x = a.EnumerateArray())
                using (var y = b.EnumerateArray())
                {
                    while (x.MoveNext() && y.MoveNext())
                    {
                        if (!Same(x.Current, y.Current))
                        {
                            return false;
                        }
                    }
                }
                return true;
            case JsonValueKind.Number:
                var p1 = a.GetDouble();
                var p2 = b.GetDouble();
                return Math.Abs(p1 - p2) <= 1e-6 + 1e-4 * Math.Max(Math.Abs(p1), Math.Abs(p2));
            default:
                return a.GetRawText() == b.GetRawText();
        }
    }

    public void Dispose()
    {
        _client.Dispose();
        _shadowClient.Dispose();
    }

    /// <summary>Writes to the response and keeps a copy (up to a limit) for the shadow comparison.</summary>
    private sealed class TeeStream(Stream inner, int limit) : Stream
    {
        private readonly MemoryStream _copy = new();
        private bool _truncated;

        /// <summary>What was written, or null when it was more than the limit.</summary>
        public byte[]? Captured() => _truncated ? null : _copy.ToArray();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            Keep(buffer.AsSpan(offset, count));
            inner.Write(buffer, offset, count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Keep(buffer.Span);
            await inner.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private void Keep(ReadOnlySpan<byte> data)
        {
            if (_copy.Length + data.Length <= limit)
            {
                _copy.Write(data);
            }
            else
            {
                _truncated = true;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3201, Level = LogLevel.Warning, Message = "deployment {Deployment}: replica job {Job} could not be reached ({Error}); retrying on another replica")]
        public static partial void Unreachable(ILogger logger, string deployment, long job, string error);
    }
}
