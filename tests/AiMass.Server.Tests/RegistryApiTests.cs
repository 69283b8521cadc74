using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AiMass.Client;
using AiMass.Registry;
using AiMass.TestSupport;

namespace AiMass.Server.Tests;

public sealed class RegistryApiTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient _http = null!;

    private AiMassClient Client => _server.Client;

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Registry:MaxUploadBytes"] = "2000000" });
        _http = new HttpClient { BaseAddress = _server.Address };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Health_Status_OpenApi_Served()
    {
        Assert.True(await Client.IsHealthyAsync());
        var status = await Client.GetStatusAsync();
        Assert.Equal(_server.DataDirectory, status.DataDirectory);
        using var doc = JsonDocument.Parse(await _http.GetStringAsync("/openapi/v1.json"));
        var paths = doc.RootElement.GetProperty("paths");
        Assert.True(paths.TryGetProperty("/api/v1/models/{name}/versions", out _));
        Assert.True(paths.TryGetProperty("/api/v1/models/{name}/aliases/{alias}/history", out _));
    }

    [Fact]
    public async Task Metrics_PrometheusText_IncludesRegistryAndHttp()
    {
        await Client.RegisterVersionAsync("m", new MemoryStream(OnnxModels.Linear()), new RegisterVersionRequest { Alias = "production" });
        await Assert.ThrowsAsync<AiMassApiException>(() => Client.RegisterVersionAsync("m", new MemoryStream([1, 2, 3])));

        var text = await _http.GetStringAsync("/metrics");

        Assert.Contains("aimass_registry_registrations{format=\"onnx\",outcome=\"ready\"}", text, StringComparison.Ordinal);
        Assert.Contains("aimass_registry_registrations{format=\"onnx\",outcome=\"invalid_artifact\"}", text, StringComparison.Ordinal);
        Assert.Contains("aimass_registry_alias_moves{action=\"set\"}", text, StringComparison.Ordinal);
        Assert.Contains("microsoft_aspnetcore_hosting_http_server_request_duration", text, StringComparison.Ordinal);
        Assert.DoesNotContain("private_internaldiagnostics", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RegisterByRawHttp_Returns201WithVersionJson()
    {
        var bytes = OnnxModels.Linear();
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");

        using var response = await _http.PostAsync("/api/v1/models/grid-load/versions?tag=site=north&metric=mape=2.5&param=layers=3&source=job:1", content);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/api/v1/models/grid-load/versions/1", response.Headers.Location!.OriginalString);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        Assert.Equal("grid-load", root.GetProperty("name").GetString());
        Assert.Equal(1, root.GetProperty("version").GetInt32());
        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)), root.GetProperty("digest").GetString());
        Assert.Equal(bytes.Length, root.GetProperty("size").GetInt64());
        Assert.Equal("onnx", root.GetProperty("format").GetString());
        Assert.Equal("ready", root.GetProperty("status").GetString());
        Assert.Equal("X", root.GetProperty("signature").GetProperty("inputs")[0].GetProperty("name").GetString());
        Assert.Equal(-1, root.GetProperty("signature").GetProperty("inputs")[0].GetProperty("shape")[0].GetInt64());
        Assert.Equal(3, root.GetProperty("params").GetProperty("layers").GetInt32());
        Assert.Equal("job:1", root.GetProperty("lineage").GetProperty("source").GetString());
    }

    [Theory]
    [InlineData("POST", "/api/v1/models", "{\"name\":\"bad name\"}", 400, "invalid_argument", "name")]
    [InlineData("POST", "/api/v1/models", "{\"name\":", 400, "invalid_argument", null)]
    [InlineData("GET", "/api/v1/models/missing", null, 404, "not_found", null)]
    [InlineData("GET", "/api/v1/models/missing/versions/1", null, 404, "not_found", null)]
    [InlineData("GET", "/api/v1/no-such-route", null, 404, "not_found", null)]
    [InlineData("GET", "/api/v1/models?page_size=0", null, 400, "invalid_argument", "page_size")]
    [InlineData("GET", "/api/v1/models?tag=bad%20key", null, 400, "invalid_argument", "tag")]
    public async Task Errors_AreProblemJsonWithStableCode(string method, string path, string? body, int status, string code, string? field)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(code, doc.RootElement.GetProperty("code").GetString());
        if (field is not null)
        {
            Assert.Equal(field, doc.RootElement.GetProperty("field").GetString());
        }
    }

    [Fact]
    public async Task Conflict_Is409()
    {
        await Client.CreateModelAsync(new CreateModelRequest("m"));

        var ex = await Assert.ThrowsAsync<AiMassApiException>(() => Client.CreateModelAsync(new CreateModelRequest("m")));

        Assert.Equal(HttpStatusCode.Conflict, ex.Status);
        Assert.Equal(ErrorCodes.AlreadyExists, ex.Code);
    }

    [Fact]
    public async Task Upload_AboveLimit_Is413_WithContentLength_AndChunked_LeavesNothing()
    {
        using var sized = new ByteArrayContent(new byte[2_000_001]);
        sized.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var r1 = await _http.PostAsync("/api/v1/models/m/versions?format=raw", sized);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r1.StatusCode);
        Assert.Contains("payload_too_large", await r1.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Without Content-Length the limit is enforced while streaming.
        var ex = await Assert.ThrowsAsync<AiMassApiException>(() =>
            Client.RegisterVersionAsync("m", new NonSeekableStream(new byte[3_000_000]), new RegisterVersionRequest { Format = "raw" }));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, ex.Status);

        await Poll.UntilAsync(() => Task.FromResult(!Directory.EnumerateFiles(Path.Combine(_server.DataDirectory, "tmp")).Any()), TimeSpan.FromSeconds(10), "temp files to go");
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_server.DataDirectory, "blobs"), "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Upload_ClientAbortsMidway_ServerRemovesTempFile_NoVersion()
    {
        using var cts = new CancellationTokenSource();
        var tmp = Path.Combine(_server.DataDirectory, "tmp");
        var upload = Client.RegisterVersionAsync("m", new SlowStream(cts, tmp), new RegisterVersionRequest { Format = "raw" }, cancellationToken: cts.Token);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => upload);

        await Poll.UntilAsync(() => Task.FromResult(!Directory.EnumerateFiles(tmp).Any()), TimeSpan.FromSeconds(30), "the aborted upload's temp file to go");
        Assert.Equal(HttpStatusCode.NotFound, (await Assert.ThrowsAsync<AiMassApiException>(() => Client.GetModelAsync("m"))).Status);
        Assert.True(await Client.IsHealthyAsync());
    }

    [Fact]
    public async Task Upload_WrongContentType_Is415()
    {
        using var content = new StringContent("x,y\n1,2", Encoding.UTF8, "text/csv");

        using var response = await _http.PostAsync("/api/v1/models/m/versions", content);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task ReserveWithJson_ThenPutArtifact_OverHttp()
    {
        using var reserve = await _http.PostAsync("/api/v1/models/m/versions",
            new StringContent("{\"format\":\"onnx\",\"lineage\":{\"source\":\"job:9\"},\"metrics\":{\"loss\":0.3}}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, reserve.StatusCode);
        Assert.Contains("\"status\":\"registering\"", await reserve.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var ready = await Client.UploadArtifactAsync("m", 1, new MemoryStream(OnnxModels.Linear()));
        Assert.Equal(VersionStatus.Ready, ready.Status);
        Assert.Equal(0.3, ready.Metrics["loss"]);

        var reserved = await Client.ReserveVersionAsync("m", new RegisterVersionRequest());
        var bad = await Assert.ThrowsAsync<AiMassApiException>(() => Client.UploadArtifactAsync("m", reserved.Version, new MemoryStream([1, 2])));
        Assert.Equal(ErrorCodes.InvalidArtifact, bad.Code);
        Assert.Equal(VersionStatus.Failed, (await Client.GetVersionAsync(VersionRef.Parse("m@2"))).Status);

        using var badJson = await _http.PostAsync("/api/v1/models/m/versions", new StringContent("{\"format\": 5}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, badJson.StatusCode);
    }

    [Fact]
    public async Task Upload_InvalidOnnx_400SaysWhy_NoVersionNoBlob()
    {
        var ex = await Assert.ThrowsAsync<AiMassApiException>(() =>
            Client.RegisterVersionAsync("m", new MemoryStream(Encoding.UTF8.GetBytes("this is not an onnx file"))));

        Assert.Equal(HttpStatusCode.BadRequest, ex.Status);
        Assert.Equal(ErrorCodes.InvalidArtifact, ex.Code);
        Assert.Contains("ONNX Runtime cannot load the model", ex.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_server.DataDirectory, "blobs"), "*", SearchOption.AllDirectories));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_server.DataDirectory, "tmp")));
    }

    [Fact]
    public async Task Download_Roundtrip_RangeAndEtag()
    {
        var bytes = OnnxModels.OfSize(200_000, seed: 5);
        var v = await Client.RegisterVersionAsync("m", new MemoryStream(bytes), new RegisterVersionRequest { Alias = "production" });

        using var copy = new MemoryStream();
        var info = await Client.DownloadArtifactAsync(VersionRef.Parse("m@production"), copy);
        Assert.Equal(bytes, copy.ToArray());
        Assert.Equal(v.Digest, info.Digest);

        using var ranged = new HttpRequestMessage(HttpMethod.Get, "/api/v1/models/m/versions/1/artifact");
        ranged.Headers.Range = new RangeHeaderValue(100, 199);
        using var partial = await _http.SendAsync(ranged);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(bytes[100..200], await partial.Content.ReadAsByteArrayAsync());

        using var conditional = new HttpRequestMessage(HttpMethod.Get, "/api/v1/models/m/versions/1/artifact");
        conditional.Headers.IfNoneMatch.Add(new EntityTagHeaderValue($"\"{v.Digest}\""));
        using var notModified = await _http.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
    }

    [Fact]
    public async Task VersionsByReference_NameAtAliasOrNumber()
    {
        var bytes = OnnxModels.Linear(seed: 11);
        await Client.RegisterVersionAsync("grid-load", new MemoryStream(bytes), new RegisterVersionRequest { Alias = "production" });

        using var byAlias = JsonDocument.Parse(await _http.GetStringAsync("/api/v1/versions/grid-load@production"));
        Assert.Equal(1, byAlias.RootElement.GetProperty("version").GetInt32());
        Assert.Equal(bytes, await _http.GetByteArrayAsync("/api/v1/versions/grid-load@1/artifact"));
        Assert.Equal(bytes, await _http.GetByteArrayAsync("/api/v1/versions/grid-load/artifact"));
        using var bad = await _http.GetAsync("/api/v1/versions/grid-load@0");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }

    [Fact]
    public async Task ParallelRegistrationsOverHttp_GetDistinctGapFreeVersions()
    {
        const int N = 30;
        using var barrier = new SemaphoreSlim(0);
        var tasks = Enumerable.Range(0, N).Select(async i =>
        {
            await barrier.WaitAsync();
            return await Client.RegisterVersionAsync("contended", new MemoryStream(OnnxModels.Linear(seed: i)));
        }).ToList();
        barrier.Release(N);

        var versions = (await Task.WhenAll(tasks)).Select(v => v.Version).Order().ToList();

        Assert.Equal(Enumerable.Range(1, N), versions);
        var page = await Client.ListVersionsAsync("contended", pageSize: 100);
        Assert.Equal(Enumerable.Range(1, N).Reverse(), page.Items.Select(v => v.Version));
    }

    [Fact]
    public async Task Aliases_SetGetHistoryRollback_OverHttp()
    {
        await Client.RegisterVersionAsync("m", new MemoryStream(OnnxModels.Linear(seed: 1)));
        await Client.RegisterVersionAsync("m", new MemoryStream(OnnxModels.Linear(seed: 2)));

        await Client.SetAliasAsync("m", "production", 1);
        await Client.SetAliasAsync("m", "production", 2, "canary passed");
        Assert.Equal(2, (await Client.GetAliasAsync("m", "production")).Version);
        Assert.Equal(2, (await Client.GetVersionAsync(VersionRef.Parse("m@production"))).Version);

        var history = await Client.GetAliasHistoryAsync("m", "production");
        Assert.Equal("tester", history[0].Actor);
        Assert.Equal("canary passed", history[0].Reason);

        Assert.Equal(1, (await Client.RollbackAliasAsync("m", "production"))!.Version);
        Assert.Null(await Client.RollbackAliasAsync("m", "production"));
        var gone = await Assert.ThrowsAsync<AiMassApiException>(() => Client.GetAliasAsync("m", "production"));
        Assert.Equal(HttpStatusCode.NotFound, gone.Status);
    }

    [Fact]
    public async Task ListModels_PagingAndFilters_OverHttp()
    {
        for (var i = 0; i < 7; i++)
        {
            await Client.CreateModelAsync(new CreateModelRequest($"plant-{i}", Tags: new Dictionary<string, string> { ["site"] = i < 3 ? "a" : "b" }));
        }
        await Client.CreateModelAsync(new CreateModelRequest("vision"));

        var first = await Client.ListModelsAsync(namePrefix: "plant-", pageSize: 4);
        var second = await Client.ListModelsAsync(namePrefix: "plant-", pageSize: 4, pageToken: first.NextPageToken);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"plant-{i}"), first.Items.Concat(second.Items).Select(m => m.Name));
        Assert.Null(second.NextPageToken);
        Assert.Equal(3, (await Client.ListModelsAsync(tag: "site=a")).Items.Count);
    }

    [Fact]
    public async Task PatchModelAndVersion_OverHttp()
    {
        await Client.RegisterVersionAsync("m", new MemoryStream(OnnxModels.Linear()));

        var model = await Client.UpdateModelAsync("m", new UpdateModelRequest("load forecast", new Dictionary<string, string?> { ["owner"] = "grid-team" }));
        Assert.Equal("grid-team", model.Tags["owner"]);
        var v = await Client.UpdateVersionAsync(VersionRef.Parse("m@1"), new UpdateVersionRequest(Metrics: new Dictionary<string, double> { ["rmse"] = 1.25 }));
        Assert.Equal(1.25, v.Metrics["rmse"]);

        using var response = await _http.PatchAsync("/api/v1/models/m/versions/1", JsonContent.Create(new { status = "deleted" }));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Admin_VerifyGcBackup_OverHttp()
    {
        await Client.RegisterVersionAsync("m", new MemoryStream(OnnxModels.Linear()));

        Assert.Empty((await Client.VerifyAsync()).Problems);
        Assert.Equal(0, (await Client.CollectGarbageAsync()).BlobsRemoved);
        using var backup = new TempDirectory();
        var report = await Client.BackupAsync(backup.Path);
        Assert.Equal(1, report.Versions);
        Assert.True(File.Exists(backup.Combine("backup.json")));

        var relative = await Assert.ThrowsAsync<AiMassApiException>(() => Client.BackupAsync("relative"));
        Assert.Equal("path", relative.Field);
    }

    /// <summary>Sends 1.5 MiB in 500 KiB reads; once the server has opened its temporary file, cancels the upload.</summary>
    private sealed class SlowStream(CancellationTokenSource cancel, string serverTempDirectory) : ReadOnlyStream
    {
        private int _reads;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (++_reads > 3)
            {
                await Poll.UntilAsync(() => Task.FromResult(Directory.EnumerateFiles(serverTempDirectory).Any()), TimeSpan.FromSeconds(30), "the server's temporary file");
                await cancel.CancelAsync();
                cancellationToken.ThrowIfCancellationRequested();
            }
            var n = Math.Min(buffer.Length, 500 * 1024);
            buffer.Span[..n].Fill(7);
            return n;
        }
    }

    /// <summary>A stream without a length, so the client sends it chunked.</summary>
    private sealed class NonSeekableStream(byte[] data) : ReadOnlyStream
    {
        private int _position;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = Math.Min(buffer.Length, data.Length - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return ValueTask.FromResult(n);
        }
    }
}
