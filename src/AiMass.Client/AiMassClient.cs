using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AiMass.IO;
using AiMass.Registry;

namespace AiMass.Client;

/// <summary>Typed client of the AI Mass REST API (<c>/api/v1</c>).</summary>
public sealed partial class AiMassClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <summary>Creates a client of the control plane at <paramref name="baseAddress"/>.</summary>
    public AiMassClient(Uri baseAddress, string? actor = null)
        : this(new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan }, actor, ownsHttp: true)
    {
    }

    /// <summary>Creates a client over an existing <see cref="HttpClient"/> whose BaseAddress is the control plane.</summary>
    public AiMassClient(HttpClient http, string? actor = null)
        : this(http, actor, ownsHttp: false)
    {
    }

    private AiMassClient(HttpClient http, string? actor, bool ownsHttp)
    {
        ArgumentNullException.ThrowIfNull(http);
        _http = http;
        _ownsHttp = ownsHttp;
        if (actor is not null)
        {
            _http.DefaultRequestHeaders.Remove(ApiHeaders.Actor);
            _http.DefaultRequestHeaders.Add(ApiHeaders.Actor, actor);
        }
    }

    /// <summary>The control plane's address.</summary>
    public Uri? BaseAddress => _http.BaseAddress;

    // ------------------------------------------------------------ server

    /// <summary>Liveness check.</summary>
    public async Task<bool> IsHealthyAsync(CancellationToken cancellationToken = default)
    {
        using var response = await _http.GetAsync(new Uri("api/v1/health", UriKind.Relative), cancellationToken).ConfigureAwait(false);
        return response.IsSuccessStatusCode;
    }

    /// <summary>Version, data directory and registry counts.</summary>
    public Task<ServerStatus> GetStatusAsync(CancellationToken cancellationToken = default) =>
        SendAsync<ServerStatus>(HttpMethod.Get, "api/v1/status", null, cancellationToken);

    // ------------------------------------------------------------ models

    /// <summary>One page of models.</summary>
    public Task<Page<ModelInfo>> ListModelsAsync(
        string? namePrefix = null, string? tag = null, string? alias = null, string? orderBy = null, bool descending = false,
        int? pageSize = null, string? pageToken = null, CancellationToken cancellationToken = default) =>
        SendAsync<Page<ModelInfo>>(HttpMethod.Get, "api/v1/models" + Query(
            ("name_prefix", namePrefix), ("tag", tag), ("alias", alias), ("order_by", orderBy), ("desc", descending ? "true" : null),
            ("page_size", pageSize?.ToString(CultureInfo.InvariantCulture)), ("page_token", pageToken)), null, cancellationToken);

    /// <summary>Creates a model.</summary>
    public Task<ModelInfo> CreateModelAsync(CreateModelRequest request, CancellationToken cancellationToken = default) =>
        SendAsync<ModelInfo>(HttpMethod.Post, "api/v1/models", JsonContent.Create(request, options: AiMassJson.Options), cancellationToken);

    /// <summary>Gets a model.</summary>
    public Task<ModelInfo> GetModelAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<ModelInfo>(HttpMethod.Get, $"api/v1/models/{Esc(name)}", null, cancellationToken);

    /// <summary>Updates a model's description or tags.</summary>
    public Task<ModelInfo> UpdateModelAsync(string name, UpdateModelRequest request, CancellationToken cancellationToken = default) =>
        SendAsync<ModelInfo>(HttpMethod.Patch, $"api/v1/models/{Esc(name)}", JsonContent.Create(request, options: AiMassJson.Options), cancellationToken);

    /// <summary>Deletes a model (with all versions when <paramref name="force"/>).</summary>
    public Task DeleteModelAsync(string name, bool force = false, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, $"api/v1/models/{Esc(name)}{(force ? "?force=true" : "")}", null, cancellationToken);

    // ------------------------------------------------------------ versions

    /// <summary>
    /// Uploads an artifact as a new version. The stream is sent as it is read (never buffered whole); when
    /// <paramref name="progress"/> is given it receives the bytes sent so far.
    /// </summary>
    public async Task<ModelVersionInfo> RegisterVersionAsync(
        string name, Stream content, RegisterVersionRequest? request = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        request ??= new RegisterVersionRequest();
        var query = new List<(string, string?)>
        {
            ("format", request.Format),
            ("digest", request.ExpectedDigest),
            ("description", request.Description),
            ("alias", request.Alias),
            ("source", request.Lineage?.Source),
            ("dataset_digest", request.Lineage?.DatasetDigest),
            ("parent", request.Lineage?.Parent),
        };
        query.AddRange((request.Tags ?? new Dictionary<string, string>()).Select(t => ("tag", (string?)$"{t.Key}={t.Value}")));
        query.AddRange((request.Params ?? new Dictionary<string, JsonElement>()).Select(p =>
            ("param", (string?)$"{p.Key}={(p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : p.Value.GetRawText())}")));
        query.AddRange((request.Metrics ?? new Dictionary<string, double>()).Select(m =>
            ("metric", (string?)$"{m.Key}={m.Value.ToString("R", CultureInfo.InvariantCulture)}")));
        var body = new ProgressStreamContent(content, progress);
        body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return await SendAsync<ModelVersionInfo>(HttpMethod.Post, $"api/v1/models/{Esc(name)}/versions{Query([.. query])}", body, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reserves the next version (status <c>registering</c>) with its metadata; its artifact follows with <see cref="UploadArtifactAsync"/>.</summary>
    public Task<ModelVersionInfo> ReserveVersionAsync(string name, RegisterVersionRequest request, CancellationToken cancellationToken = default) =>
        SendAsync<ModelVersionInfo>(HttpMethod.Post, $"api/v1/models/{Esc(name)}/versions", JsonContent.Create(request, options: AiMassJson.Options), cancellationToken);

    /// <summary>Uploads the artifact of a reserved version, which becomes <c>ready</c> (or <c>failed</c> when the artifact is invalid).</summary>
    public Task<ModelVersionInfo> UploadArtifactAsync(
        string name, int version, Stream content, string? expectedDigest = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var body = new ProgressStreamContent(content, progress);
        body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return SendAsync<ModelVersionInfo>(HttpMethod.Put,
            $"api/v1/models/{Esc(name)}/versions/{version.ToString(CultureInfo.InvariantCulture)}/artifact{Query(("digest", expectedDigest))}", body, cancellationToken);
    }

    /// <summary>One page of a model's versions.</summary>
    public Task<Page<ModelVersionInfo>> ListVersionsAsync(
        string name, string? status = null, string? tag = null, string? alias = null, bool ascending = false,
        int? pageSize = null, string? pageToken = null, CancellationToken cancellationToken = default) =>
        SendAsync<Page<ModelVersionInfo>>(HttpMethod.Get, $"api/v1/models/{Esc(name)}/versions" + Query(
            ("status", status), ("tag", tag), ("alias", alias), ("asc", ascending ? "true" : null),
            ("page_size", pageSize?.ToString(CultureInfo.InvariantCulture)), ("page_token", pageToken)), null, cancellationToken);

    /// <summary>Gets a version by <c>NAME@VERSION</c>, <c>NAME@ALIAS</c> or <c>NAME</c> (latest).</summary>
    public Task<ModelVersionInfo> GetVersionAsync(VersionRef reference, CancellationToken cancellationToken = default) =>
        SendAsync<ModelVersionInfo>(HttpMethod.Get, VersionPath(reference), null, cancellationToken);

    /// <summary>Updates a version (description, tags, params, metrics, status).</summary>
    public Task<ModelVersionInfo> UpdateVersionAsync(VersionRef reference, UpdateVersionRequest request, CancellationToken cancellationToken = default) =>
        SendAsync<ModelVersionInfo>(HttpMethod.Patch, VersionPath(reference), JsonContent.Create(request, options: AiMassJson.Options), cancellationToken);

    /// <summary>Deletes a version (and aliases pointing at it when <paramref name="force"/>).</summary>
    public Task DeleteVersionAsync(VersionRef reference, bool force = false, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, VersionPath(reference) + (force ? "?force=true" : ""), null, cancellationToken);

    /// <summary>
    /// Downloads an artifact into <paramref name="destination"/>, checking its SHA-256 against the version's digest on
    /// the way; throws <see cref="AiMassApiException"/> with code <c>digest_mismatch</c> when they differ.
    /// </summary>
    public Task<ModelVersionInfo> DownloadArtifactAsync(
        VersionRef reference, Stream destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return DownloadAsync(reference, new StreamChunkSink(destination), progress, cancellationToken);
    }

    private async Task<ModelVersionInfo> DownloadAsync(VersionRef reference, IChunkSink destination, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var info = await GetVersionAsync(reference, cancellationToken).ConfigureAwait(false);
        // Address the number just resolved, so an alias moving mid-download cannot mix two versions.
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"api/v1/models/{Esc(info.Name)}/versions/{info.Version}/artifact", UriKind.Relative));
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var (digest, total) = await DigestingCopy.CopyAsync(body, destination, progress is null ? null : progress.Report, cancellationToken).ConfigureAwait(false);
        if (digest != info.Digest || total != info.Size)
        {
            throw new AiMassApiException(HttpStatusCode.BadGateway, ErrorCodes.DigestMismatch,
                $"downloaded {total} bytes hashing to {digest}, but {info.Name}@{info.Version} is {info.Size} bytes with {info.Digest}", null);
        }
        return info;
    }

    /// <summary>
    /// Downloads an artifact to <paramref name="path"/> atomically: the bytes go to a temporary sibling (bypassing the
    /// page cache where the file system allows), are verified against the digest and synced, then renamed into place.
    /// Nothing is left under <paramref name="path"/> when the download fails.
    /// </summary>
    public async Task<ModelVersionInfo> DownloadArtifactToFileAsync(
        VersionRef reference, string path, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var part = $"{full}.{Environment.ProcessId}.{Guid.NewGuid():N}.part";
        try
        {
            ModelVersionInfo info;
            using (var sink = FileSink.CreateNew(part))
            {
                info = await DownloadAsync(reference, sink, progress, cancellationToken).ConfigureAwait(false);
                sink.Flush();
            }
            File.Move(part, full, overwrite: true);
            return info;
        }
        finally
        {
            File.Delete(part);
        }
    }

    // ------------------------------------------------------------ aliases

    /// <summary>Points an alias at a version.</summary>
    public Task<AliasInfo> SetAliasAsync(string name, string alias, int version, string? reason = null, CancellationToken cancellationToken = default) =>
        SendAsync<AliasInfo>(HttpMethod.Put, $"api/v1/models/{Esc(name)}/aliases/{Esc(alias)}",
            JsonContent.Create(new SetAliasRequest(version, reason), options: AiMassJson.Options), cancellationToken);

    /// <summary>Where an alias points.</summary>
    public Task<AliasInfo> GetAliasAsync(string name, string alias, CancellationToken cancellationToken = default) =>
        SendAsync<AliasInfo>(HttpMethod.Get, $"api/v1/models/{Esc(name)}/aliases/{Esc(alias)}", null, cancellationToken);

    /// <summary>Removes an alias.</summary>
    public Task DeleteAliasAsync(string name, string alias, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Delete, $"api/v1/models/{Esc(name)}/aliases/{Esc(alias)}", null, cancellationToken);

    /// <summary>The moves of an alias, newest first.</summary>
    public Task<IReadOnlyList<AliasEvent>> GetAliasHistoryAsync(string name, string alias, CancellationToken cancellationToken = default) =>
        SendAsync<IReadOnlyList<AliasEvent>>(HttpMethod.Get, $"api/v1/models/{Esc(name)}/aliases/{Esc(alias)}/history", null, cancellationToken);

    /// <summary>Returns an alias to its previous version; null when the rollback removed it (it did not exist before).</summary>
    public async Task<AliasInfo?> RollbackAliasAsync(string name, string alias, CancellationToken cancellationToken = default)
    {
        using var response = await _http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, new Uri($"api/v1/models/{Esc(name)}/aliases/{Esc(alias)}/rollback", UriKind.Relative)),
            cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.NoContent
            ? null
            : await response.Content.ReadFromJsonAsync<AliasInfo>(AiMassJson.Options, cancellationToken).ConfigureAwait(false);
    }

    // ------------------------------------------------------------ admin

    /// <summary>Re-hashes every referenced blob.</summary>
    public Task<VerifyReport> VerifyAsync(CancellationToken cancellationToken = default) =>
        SendAsync<VerifyReport>(HttpMethod.Post, "api/v1/admin/verify", null, cancellationToken);

    /// <summary>Removes unreferenced blobs and stale temporary files.</summary>
    public Task<GcReport> CollectGarbageAsync(bool dryRun = false, CancellationToken cancellationToken = default) =>
        SendAsync<GcReport>(HttpMethod.Post, "api/v1/admin/gc" + (dryRun ? "?dry_run=true" : ""), null, cancellationToken);

    /// <summary>Writes a consistent snapshot to a directory on the server's file system.</summary>
    public Task<BackupReport> BackupAsync(string serverPath, CancellationToken cancellationToken = default) =>
        SendAsync<BackupReport>(HttpMethod.Post, "api/v1/admin/backup", JsonContent.Create(new BackupRequest(serverPath), options: AiMassJson.Options), cancellationToken);

    // ------------------------------------------------------------ plumbing

    private static string VersionPath(VersionRef reference) =>
        $"api/v1/models/{Esc(reference.Model)}/versions/{Esc(reference.Selector ?? Names.Latest)}";

    private async Task<T> SendAsync<T>(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync<T>(AiMassJson.Options, cancellationToken).ConfigureAwait(false)
            ?? throw new AiMassApiException(response.StatusCode, ErrorCodes.Internal, $"{method} {path} returned an empty body", null);
    }

    private async Task SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        string? code = null, detail = null, field = null;
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            code = root.TryGetProperty("code", out var c) ? c.GetString() : null;
            detail = root.TryGetProperty("detail", out var d) ? d.GetString() : root.TryGetProperty("title", out var t) ? t.GetString() : null;
            field = root.TryGetProperty("field", out var f) ? f.GetString() : null;
        }
        catch (JsonException)
        {
            detail = text.Length > 500 ? text[..500] : text;
        }
        throw new AiMassApiException(response.StatusCode, code ?? ErrorCodes.Internal,
            string.IsNullOrWhiteSpace(detail) ? $"the server answered {(int)response.StatusCode} {response.ReasonPhrase}" : detail, field);
    }

    private static string Esc(string segment) => Uri.EscapeDataString(segment);

    private static string Query(params (string Key, string? Value)[] pairs)
    {
        var sb = new StringBuilder();
        foreach (var (key, value) in pairs)
        {
            if (value is null)
            {
                continue;
            }
            sb.Append(sb.Length == 0 ? '?' : '&').Append(key).Append('=').Append(Uri.EscapeDataString(value));
        }
        return sb.ToString();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    /// <summary>Streams the content in 1 MiB chunks and reports progress; never buffers it.</summary>
    private sealed class ProgressStreamContent(Stream content, IProgress<long>? progress) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            await SerializeToStreamAsync(stream, context, CancellationToken.None).ConfigureAwait(false);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            var buffer = new byte[1 << 20];
            long sent = 0;
            int read;
            while ((read = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                sent += read;
                progress?.Report(sent);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            if (content.CanSeek)
            {
                length = content.Length - content.Position;
                return true;
            }
            length = 0;
            return false;
        }
    }
}

/// <summary>An error answer of the API: HTTP status, stable <c>code</c>, message and offending field.</summary>
public sealed class AiMassApiException : Exception
{
    public AiMassApiException(HttpStatusCode status, string code, string message, string? field)
        : base(message)
    {
        Status = status;
        Code = code;
        Field = field;
    }

    public AiMassApiException()
    {
        Code = ErrorCodes.Internal;
    }

    public AiMassApiException(string message)
        : base(message)
    {
        Code = ErrorCodes.Internal;
    }

    public AiMassApiException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = ErrorCodes.Internal;
    }

    /// <summary>HTTP status of the answer.</summary>
    public HttpStatusCode Status { get; }

    /// <summary>Stable error code (see <see cref="ErrorCodes"/>).</summary>
    public string Code { get; }

    /// <summary>The request field that was wrong, when the server named one.</summary>
    public string? Field { get; }
}
