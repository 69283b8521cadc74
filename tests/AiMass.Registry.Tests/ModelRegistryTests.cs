using System.Text.Json;
using AiMass.Registry.Artifacts;
using AiMass.TestSupport;
using Microsoft.Extensions.Time.Testing;

namespace AiMass.Registry.Tests;

public sealed class ModelRegistryTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 1, 8, 0, 0, TimeSpan.Zero));
    private RegistryHarness _h = null!;

    private ModelRegistry Registry => _h.Registry;

    public async Task InitializeAsync() => _h = await RegistryHarness.CreateAsync(_time);

    public Task DisposeAsync()
    {
        _h.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Register_OnnxModel_RecordsDigestSizeAndSignature()
    {
        var bytes = OnnxModels.Linear(inputs: 3, outputs: 2);

        var v = await _h.RegisterAsync("load-forecast", bytes, new RegisterVersionRequest
        {
            Description = "first",
            Tags = new Dictionary<string, string> { ["team"] = "grid" },
            Metrics = new Dictionary<string, double> { ["mape"] = 3.5 },
            Params = new Dictionary<string, JsonElement> { ["lr"] = JsonSerializer.SerializeToElement(0.01) },
            Lineage = new Lineage("job:7", "sha256:abc"),
        });

        Assert.Equal(1, v.Version);
        Assert.Equal(VersionStatus.Ready, v.Status);
        Assert.Equal(Digests.FromHash(System.Security.Cryptography.SHA256.HashData(bytes)), v.Digest);
        Assert.Equal(bytes.Length, v.Size);
        Assert.Equal("onnx", v.Format);
        var input = Assert.Single(v.Signature!.Inputs);
        Assert.Equal("X", input.Name);
        Assert.Equal("FP32", input.ElementType);
        Assert.Equal([-1L, 3L], input.Shape);
        Assert.Equal("batch", input.DimNames![0]);
        Assert.Equal([-1L, 2L], Assert.Single(v.Signature.Outputs).Shape);
        Assert.Equal("grid", v.Tags["team"]);
        Assert.Equal(3.5, v.Metrics["mape"]);
        Assert.Equal(0.01, v.Params["lr"].GetDouble());
        Assert.Equal("job:7", v.Lineage.Source);
        Assert.Equal(_time.GetUtcNow(), v.CreatedAt);
        Assert.True(_h.Store.Exists(v.Digest!));

        var model = await Registry.GetModelAsync("load-forecast", default);
        Assert.Equal(1, model.LatestVersion);
        Assert.Equal(1, model.VersionCount);
    }

    [Fact]
    public async Task Register_NotOnnx_RefusedWithReason_LeavesNoVersionNoBlobNoTempFile()
    {
        await _h.RegisterAsync("m", OnnxModels.Linear());

        var ex = await Assert.ThrowsAsync<RegistryException>(() => _h.RegisterAsync("m", "definitely not protobuf"u8.ToArray()));

        Assert.Equal(400, ex.Status);
        Assert.Equal(ErrorCodes.InvalidArtifact, ex.Code);
        Assert.Contains("ONNX Runtime", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(".part", ex.Message, StringComparison.Ordinal);
        var versions = await Registry.ListVersionsAsync("m", new VersionQuery(Status: "all"), default);
        Assert.Single(versions.Items);
        Assert.Single(_h.Store.List());
        Assert.Empty(Directory.EnumerateFiles(_h.Directory.Combine("tmp")));
        // The failed upload consumed no number: the next registration is 2.
        Assert.Equal(2, (await _h.RegisterAsync("m", OnnxModels.Linear(seed: 2))).Version);
    }

    [Fact]
    public async Task Register_DigestMismatch_Refused()
    {
        var ex = await Assert.ThrowsAsync<RegistryException>(() => _h.RegisterAsync("m", OnnxModels.Linear(),
            new RegisterVersionRequest { ExpectedDigest = "sha256:" + new string('0', 64) }));

        Assert.Equal(ErrorCodes.DigestMismatch, ex.Code);
        Assert.Equal("digest", ex.Field);
        Assert.Empty(_h.Store.List());
        await Assert.ThrowsAsync<RegistryException>(() => Registry.GetModelAsync("m", default));
    }

    [Fact]
    public async Task Register_ExpectedDigestMatches_Accepted()
    {
        var bytes = OnnxModels.Linear();
        var digest = Digests.FromHash(System.Security.Cryptography.SHA256.HashData(bytes));

        var v = await _h.RegisterAsync("m", bytes, new RegisterVersionRequest { ExpectedDigest = digest.ToUpperInvariant().Replace("SHA256:", "", StringComparison.Ordinal) });

        Assert.Equal(digest, v.Digest);
    }

    [Fact]
    public async Task Register_AboveUploadLimit_Refused413()
    {
        using var small = await RegistryHarness.CreateAsync(_time, new RegistryOptions { MaxUploadBytes = 100 });

        var ex = await Assert.ThrowsAsync<RegistryException>(() => small.RegisterAsync("m", new byte[101], new RegisterVersionRequest { Format = "raw" }));

        Assert.Equal(413, ex.Status);
        Assert.Equal(ErrorCodes.PayloadTooLarge, ex.Code);
        Assert.Empty(Directory.EnumerateFiles(small.Directory.Combine("tmp")));
    }

    [Theory]
    [InlineData("", "name")]
    [InlineData("-starts-with-dash", "name")]
    [InlineData("has space", "name")]
    [InlineData("ünïcode", "name")]
    public async Task CreateModel_InvalidName_ErrorNamesField(string name, string field)
    {
        var ex = await Assert.ThrowsAsync<RegistryException>(() => Registry.CreateModelAsync(new CreateModelRequest(name), default));

        Assert.Equal(400, ex.Status);
        Assert.Equal(field, ex.Field);
        Assert.Contains(name, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateModel_NameTaken_Conflict()
    {
        await Registry.CreateModelAsync(new CreateModelRequest("m"), default);

        var ex = await Assert.ThrowsAsync<RegistryException>(() => Registry.CreateModelAsync(new CreateModelRequest("m"), default));

        Assert.Equal(409, ex.Status);
        Assert.Equal(ErrorCodes.AlreadyExists, ex.Code);
    }

    [Fact]
    public async Task Register_UnknownFormat_StoredWithoutSignature()
    {
        var v = await _h.RegisterAsync("m", [1, 2, 3], new RegisterVersionRequest { Format = "raw" });

        Assert.Null(v.Signature);
        Assert.Equal("raw", v.Format);
        var bad = await Assert.ThrowsAsync<RegistryException>(() => _h.RegisterAsync("m", [1], new RegisterVersionRequest { Format = "Not A Format" }));
        Assert.Equal("format", bad.Field);
    }

    [Fact]
    public async Task Register_Concurrently_VersionsAreDistinctAndGapFree()
    {
        const int N = 24;
        var tasks = Enumerable.Range(0, N).Select(i => Task.Run(() => _h.RegisterAsync("busy", OnnxModels.Linear(seed: i)))).ToList();

        var versions = (await Task.WhenAll(tasks)).Select(v => v.Version).Order().ToList();

        Assert.Equal(Enumerable.Range(1, N), versions);
        var model = await Registry.GetModelAsync("busy", default);
        Assert.Equal(N, model.LatestVersion);
        Assert.Equal(N, model.VersionCount);
    }

    [Fact]
    public async Task Alias_MovesAreRecorded_RollbackWalksBack_ThenRemoves()
    {
        for (var i = 0; i < 3; i++)
        {
            await _h.RegisterAsync("m", OnnxModels.Linear(seed: i));
        }
        await Registry.SetAliasAsync("m", "production", 1, "alice", "first release", default);
        _time.Advance(TimeSpan.FromMinutes(5));
        await Registry.SetAliasAsync("m", "production", 2, "bob", null, default);
        _time.Advance(TimeSpan.FromMinutes(5));
        await Registry.SetAliasAsync("m", "production", 3, "carol", null, default);

        Assert.Equal(3, (await Registry.GetVersionAsync("m", "production", default)).Version);
        var history = await Registry.GetAliasHistoryAsync("m", "production", default);
        Assert.Equal([3, 2, 1], history.Select(e => e.Version!.Value));
        Assert.Equal([2, 1, null], history.Select(e => e.PreviousVersion));
        Assert.Equal("carol", history[0].Actor);
        Assert.Equal("first release", history[2].Reason);

        Assert.Equal(2, (await Registry.RollbackAliasAsync("m", "production", "dave", default))!.Version);
        Assert.Equal(1, (await Registry.RollbackAliasAsync("m", "production", "dave", default))!.Version);
        Assert.Null(await Registry.RollbackAliasAsync("m", "production", "dave", default));
        await Assert.ThrowsAsync<RegistryException>(() => Registry.GetAliasAsync("m", "production", default));
        var none = await Assert.ThrowsAsync<RegistryException>(() => Registry.RollbackAliasAsync("m", "production", "dave", default));
        Assert.Equal(409, none.Status);

        history = await Registry.GetAliasHistoryAsync("m", "production", default);
        Assert.Equal(6, history.Count);
        Assert.All(history.Where(e => e.Action == AliasAction.Set), e => Assert.NotNull(e.UndoneBy));
    }

    [Fact]
    public async Task Rollback_AfterRemove_RestoresAlias()
    {
        await _h.RegisterAsync("m", OnnxModels.Linear());
        await Registry.SetAliasAsync("m", "staging", 1, null, null, default);
        await Registry.DeleteAliasAsync("m", "staging", null, default);

        var restored = await Registry.RollbackAliasAsync("m", "staging", null, default);

        Assert.Equal(1, restored!.Version);
    }

    [Fact]
    public async Task Alias_InvalidOrReservedOrMissingTarget_Refused()
    {
        await _h.RegisterAsync("m", OnnxModels.Linear());

        Assert.Equal("alias", (await Assert.ThrowsAsync<RegistryException>(() => Registry.SetAliasAsync("m", "1abc", 1, null, null, default))).Field);
        Assert.Equal("alias", (await Assert.ThrowsAsync<RegistryException>(() => Registry.SetAliasAsync("m", "latest", 1, null, null, default))).Field);
        Assert.Equal(404, (await Assert.ThrowsAsync<RegistryException>(() => Registry.SetAliasAsync("m", "prod", 9, null, null, default))).Status);
    }

    [Fact]
    public async Task Archive_BlockedWhileAliased_AliasCannotTargetArchived()
    {
        await _h.RegisterAsync("m", OnnxModels.Linear());
        await _h.RegisterAsync("m", OnnxModels.Linear(seed: 2));
        await Registry.SetAliasAsync("m", "production", 1, null, null, default);

        var blocked = await Assert.ThrowsAsync<RegistryException>(() => Registry.UpdateVersionAsync("m", "1", new UpdateVersionRequest(Status: VersionStatus.Archived), default));
        Assert.Equal(409, blocked.Status);

        var archived = await Registry.UpdateVersionAsync("m", "2", new UpdateVersionRequest(Status: VersionStatus.Archived), default);
        Assert.Equal(VersionStatus.Archived, archived.Status);
        var toArchived = await Assert.ThrowsAsync<RegistryException>(() => Registry.SetAliasAsync("m", "staging", 2, null, null, default));
        Assert.Equal(409, toArchived.Status);

        // Archived versions are hidden from the default listing and from 'latest'.
        var listed = await Registry.ListVersionsAsync("m", new VersionQuery(), default);
        Assert.Equal([1], listed.Items.Select(v => v.Version));
        Assert.Equal(1, (await Registry.GetVersionAsync("m", "latest", default)).Version);
        Assert.Equal(2, (await Registry.ListVersionsAsync("m", new VersionQuery(Status: "archived"), default)).Items.Single().Version);

        var back = await Registry.UpdateVersionAsync("m", "2", new UpdateVersionRequest(Status: VersionStatus.Ready), default);
        Assert.Equal(VersionStatus.Ready, back.Status);
        var invalid = await Assert.ThrowsAsync<RegistryException>(() => Registry.UpdateVersionAsync("m", "2", new UpdateVersionRequest(Status: VersionStatus.Registering), default));
        Assert.Equal("status", invalid.Field);
    }

    [Fact]
    public async Task UpdateVersion_MergesTagsParamsMetrics()
    {
        await _h.RegisterAsync("m", OnnxModels.Linear(), new RegisterVersionRequest { Tags = new Dictionary<string, string> { ["a"] = "1", ["b"] = "2" } });

        var v = await Registry.UpdateVersionAsync("m", "1", new UpdateVersionRequest(
            Description: "evaluated",
            Tags: new Dictionary<string, string?> { ["a"] = "changed", ["b"] = null, ["c"] = "3" },
            Metrics: new Dictionary<string, double> { ["auc"] = 0.91 }), default);

        Assert.Equal("evaluated", v.Description);
        Assert.Equal(new Dictionary<string, string> { ["a"] = "changed", ["c"] = "3" }, v.Tags);
        Assert.Equal(0.91, v.Metrics["auc"]);
    }

    [Fact]
    public async Task Register_SameContentAgain_OneBlob_HealsDamagedCopy()
    {
        var bytes = OnnxModels.Linear();
        var v1 = await _h.RegisterAsync("m", bytes);
        var path = _h.Store.GetPath(v1.Digest!);
        var damaged = await File.ReadAllBytesAsync(path);
        damaged[^1] ^= 1;
        await File.WriteAllBytesAsync(path, damaged);
        Assert.Single((await Registry.VerifyAsync(default)).Problems);

        var v2 = await _h.RegisterAsync("m", bytes);

        Assert.Equal(v1.Digest, v2.Digest);
        Assert.Single(_h.Store.List());
        Assert.Empty((await Registry.VerifyAsync(default)).Problems);
    }

    [Fact]
    public async Task DeleteVersion_SharedBlob_RemovedOnlyWithLastReference()
    {
        var bytes = OnnxModels.Linear();
        var v1 = await _h.RegisterAsync("a", bytes);
        await _h.RegisterAsync("b", bytes);
        Assert.Single(_h.Store.List());

        await Registry.DeleteVersionAsync("a", "1", force: false, null, default);
        Assert.True(_h.Store.Exists(v1.Digest!));

        await Registry.DeleteVersionAsync("b", "1", force: false, null, default);
        Assert.False(_h.Store.Exists(v1.Digest!));
    }

    [Fact]
    public async Task DeleteVersion_Aliased_NeedsForce_ThenAliasRemovedInHistory()
    {
        await _h.RegisterAsync("m", OnnxModels.Linear());
        await Registry.SetAliasAsync("m", "production", 1, null, null, default);

        var ex = await Assert.ThrowsAsync<RegistryException>(() => Registry.DeleteVersionAsync("m", "production", force: false, null, default));
        Assert.Equal(409, ex.Status);

        await Registry.DeleteVersionAsync("m", "production", force: true, "ops", default);
        var history = await Registry.GetAliasHistoryAsync("m", "production", default);
        Assert.Equal(AliasAction.Remove, history[0].Action);
        // Rolling back to a deleted version is refused with a clear reason.
        var rb = await Assert.ThrowsAsync<RegistryException>(() => Registry.RollbackAliasAsync("m", "production", null, default));
        Assert.Contains("no longer ready", rb.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteModel_WithVersions_NeedsForce_RemovesBlobs()
    {
        var v = await _h.RegisterAsync("m", OnnxModels.Linear());

        Assert.Equal(409, (await Assert.ThrowsAsync<RegistryException>(() => Registry.DeleteModelAsync("m", false, default))).Status);
        await Registry.DeleteModelAsync("m", true, default);

        Assert.False(_h.Store.Exists(v.Digest!));
        Assert.Equal(404, (await Assert.ThrowsAsync<RegistryException>(() => Registry.GetModelAsync("m", default))).Status);
    }

    [Fact]
    public async Task ListVersions_PagesNewestFirst_WithTagAndAliasFilters()
    {
        for (var i = 1; i <= 25; i++)
        {
            await _h.RegisterAsync("m", [(byte)i], new RegisterVersionRequest
            {
                Format = "raw",
                Tags = new Dictionary<string, string> { ["parity"] = i % 2 == 0 ? "even" : "odd" },
            });
        }
        await Registry.SetAliasAsync("m", "production", 7, null, null, default);

        var seen = new List<int>();
        string? token = null;
        do
        {
            var page = await Registry.ListVersionsAsync("m", new VersionQuery(PageSize: 10, PageToken: token), default);
            Assert.True(page.Items.Count <= 10);
            seen.AddRange(page.Items.Select(v => v.Version));
            token = page.NextPageToken;
        }
        while (token is not null);
        Assert.Equal(Enumerable.Range(1, 25).Reverse(), seen);

        var even = await Registry.ListVersionsAsync("m", new VersionQuery(Tag: "parity=even", Ascending: true), default);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => i * 2), even.Items.Select(v => v.Version));
        var aliased = await Registry.ListVersionsAsync("m", new VersionQuery(Alias: "production"), default);
        Assert.Equal(["production"], Assert.Single(aliased.Items).Aliases);

        var badToken = await Assert.ThrowsAsync<RegistryException>(() => Registry.ListVersionsAsync("m", new VersionQuery(PageToken: "garbage"), default));
        Assert.Equal("page_token", badToken.Field);
        var badSize = await Assert.ThrowsAsync<RegistryException>(() => Registry.ListVersionsAsync("m", new VersionQuery(PageSize: 0), default));
        Assert.Equal("page_size", badSize.Field);
    }

    [Fact]
    public async Task ListModels_FiltersAndOrders_AndPages()
    {
        foreach (var name in new[] { "grid-b", "grid-a", "vision-x", "grid-c" })
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            await Registry.CreateModelAsync(new CreateModelRequest(name, Tags: new Dictionary<string, string> { ["domain"] = name.Split('-')[0] }), default);
        }
        await _h.RegisterAsync("grid-c", OnnxModels.Linear(), new RegisterVersionRequest { Alias = "production" });

        var prefix = await Registry.ListModelsAsync(new ModelQuery(NamePrefix: "grid-"), default);
        Assert.Equal(["grid-a", "grid-b", "grid-c"], prefix.Items.Select(m => m.Name));
        var tagged = await Registry.ListModelsAsync(new ModelQuery(Tag: "domain=vision"), default);
        Assert.Equal(["vision-x"], tagged.Items.Select(m => m.Name));
        var aliased = await Registry.ListModelsAsync(new ModelQuery(Alias: "production"), default);
        Assert.Equal(["grid-c"], aliased.Items.Select(m => m.Name));
        var newest = await Registry.ListModelsAsync(new ModelQuery(OrderBy: "created", Descending: true), default);
        Assert.Equal(["grid-c", "vision-x", "grid-a", "grid-b"], newest.Items.Select(m => m.Name));

        var names = new List<string>();
        string? token = null;
        do
        {
            var page = await Registry.ListModelsAsync(new ModelQuery(OrderBy: "created", PageSize: 3, PageToken: token), default);
            names.AddRange(page.Items.Select(m => m.Name));
            token = page.NextPageToken;
        }
        while (token is not null);
        Assert.Equal(["grid-b", "grid-a", "vision-x", "grid-c"], names);

        Assert.Equal("order_by", (await Assert.ThrowsAsync<RegistryException>(() => Registry.ListModelsAsync(new ModelQuery(OrderBy: "size"), default))).Field);
    }

    [Fact]
    public async Task Names_AreCaseSensitive_InIdentityAndPrefixSearch()
    {
        await Registry.CreateModelAsync(new CreateModelRequest("Grid-A"), default);
        await Registry.CreateModelAsync(new CreateModelRequest("grid-a"), default);
        await Registry.CreateModelAsync(new CreateModelRequest("grid_b"), default);

        var prefix = await Registry.ListModelsAsync(new ModelQuery(NamePrefix: "grid"), default);
        Assert.Equal(["grid-a", "grid_b"], prefix.Items.Select(m => m.Name));
        // '_' and '%' are literal characters of a prefix, not wildcards.
        Assert.Equal(["grid_b"], (await Registry.ListModelsAsync(new ModelQuery(NamePrefix: "grid_"), default)).Items.Select(m => m.Name));
    }

    [Fact]
    public async Task Lineage_ParentMustExist()
    {
        await _h.RegisterAsync("base", OnnxModels.Linear());

        var child = await _h.RegisterAsync("tuned", OnnxModels.Linear(seed: 3), new RegisterVersionRequest { Lineage = new Lineage(Parent: "base@1") });
        Assert.Equal("base@1", child.Lineage.Parent);

        var missing = await Assert.ThrowsAsync<RegistryException>(() =>
            _h.RegisterAsync("tuned", OnnxModels.Linear(seed: 4), new RegisterVersionRequest { Lineage = new Lineage(Parent: "base@9") }));
        Assert.Equal("lineage.parent", missing.Field);
        var malformed = await Assert.ThrowsAsync<RegistryException>(() =>
            _h.RegisterAsync("tuned", OnnxModels.Linear(seed: 4), new RegisterVersionRequest { Lineage = new Lineage(Parent: "base@production") }));
        Assert.Equal("lineage.parent", malformed.Field);
        Assert.Single(_h.Store.List(), b => b.Digest == child.Digest);
        Assert.Equal(2, _h.Store.List().Count());
    }

    [Fact]
    public async Task Verify_ReportsCorruptAndMissingBlobs()
    {
        var a = await _h.RegisterAsync("m", OnnxModels.Linear(seed: 1));
        var b = await _h.RegisterAsync("m", OnnxModels.Linear(seed: 2));
        await _h.RegisterAsync("m", OnnxModels.Linear(seed: 3));
        Assert.Empty((await Registry.VerifyAsync(default)).Problems);

        var pathA = _h.Store.GetPath(a.Digest!);
        var bytes = await File.ReadAllBytesAsync(pathA);
        bytes[^1] ^= 0xFF;
        await File.WriteAllBytesAsync(pathA, bytes);
        File.Delete(_h.Store.GetPath(b.Digest!));

        var report = await Registry.VerifyAsync(default);

        Assert.Equal(3, report.BlobsChecked);
        Assert.Equal(2, report.Problems.Count);
        Assert.Contains(report.Problems, p => p.Digest == a.Digest && p.Problem.StartsWith("content hashes to", StringComparison.Ordinal) && p.Versions.SequenceEqual(["m@1"]));
        Assert.Contains(report.Problems, p => p.Digest == b.Digest && p.Problem == "blob is missing");
    }

    [Fact]
    public async Task Gc_RemovesUnreferencedBlobsAndOldTempFiles_KeepsReferencedAndFresh()
    {
        var kept = await _h.RegisterAsync("m", OnnxModels.Linear());
        using (var staged = await _h.Store.StageAsync(new MemoryStream([9, 9, 9]), 100, default))
        {
            _h.Store.Commit(staged); // a blob no version references (as after a crash between rename and commit)
        }
        var oldTemp = _h.Directory.Combine("tmp", "old.part");
        var freshTemp = _h.Directory.Combine("tmp", "fresh.part");
        await File.WriteAllBytesAsync(oldTemp, new byte[10]);
        await File.WriteAllBytesAsync(freshTemp, new byte[10]);
        File.SetLastWriteTimeUtc(oldTemp, _time.GetUtcNow().UtcDateTime - TimeSpan.FromDays(1));
        File.SetLastWriteTimeUtc(freshTemp, _time.GetUtcNow().UtcDateTime);

        var dry = await Registry.CollectGarbageAsync(dryRun: true, default);
        Assert.Equal(1, dry.BlobsRemoved);
        Assert.Equal(2, _h.Store.List().Count());

        var report = await Registry.CollectGarbageAsync(dryRun: false, default);

        Assert.Equal(1, report.BlobsRemoved);
        Assert.Equal(3, report.BytesFreed);
        Assert.Equal(1, report.TempFilesRemoved);
        Assert.Equal([kept.Digest], _h.Store.List().Select(b => b.Digest));
        Assert.False(File.Exists(oldTemp));
        Assert.True(File.Exists(freshTemp));
    }

    [Fact]
    public async Task Initialize_RemovesTemporaryFilesLeftByACrash()
    {
        var dir = new TempDirectory();
        Directory.CreateDirectory(dir.Combine("tmp"));
        await File.WriteAllBytesAsync(dir.Combine("tmp", "crashed.part"), new byte[1000]);

        using var h = await RegistryHarness.CreateAsync(_time, directory: dir);

        Assert.Empty(Directory.EnumerateFiles(dir.Combine("tmp")));
    }

    [Fact]
    public async Task Reserve_ThenUpload_BecomesReady_NumberTakenAtReservation()
    {
        var reserved = await Registry.ReserveVersionAsync("m", new RegisterVersionRequest { Lineage = new Lineage("job:5"), Description = "training" }, default);
        Assert.Equal(VersionStatus.Registering, reserved.Status);
        Assert.Null(reserved.Digest);
        // A direct registration meanwhile takes the next number.
        Assert.Equal(2, (await _h.RegisterAsync("m", OnnxModels.Linear(seed: 2))).Version);
        // Not downloadable, not a target for aliases, not 'latest' while registering.
        Assert.Equal(409, (await Assert.ThrowsAsync<RegistryException>(() => Registry.GetArtifactAsync("m", "1", default))).Status);
        Assert.Equal(409, (await Assert.ThrowsAsync<RegistryException>(() => Registry.SetAliasAsync("m", "production", 1, null, null, default))).Status);
        Assert.Equal(2, (await Registry.GetVersionAsync("m", "latest", default)).Version);

        var bytes = OnnxModels.Linear(seed: 1);
        var ready = await Registry.UploadArtifactAsync("m", 1, new MemoryStream(bytes), null, default);

        Assert.Equal(VersionStatus.Ready, ready.Status);
        Assert.Equal("job:5", ready.Lineage.Source);
        Assert.NotNull(ready.Signature);
        Assert.Equal(bytes.Length, ready.Size);
        Assert.Equal(409, (await Assert.ThrowsAsync<RegistryException>(() => Registry.UploadArtifactAsync("m", 1, new MemoryStream(bytes), null, default))).Status);
    }

    [Fact]
    public async Task Reserve_UploadInvalidArtifact_MarksFailedWithReason_NoBlob()
    {
        await Registry.ReserveVersionAsync("m", new RegisterVersionRequest(), default);

        var ex = await Assert.ThrowsAsync<RegistryException>(() => Registry.UploadArtifactAsync("m", 1, new MemoryStream([1, 2, 3]), null, default));

        Assert.Equal(ErrorCodes.InvalidArtifact, ex.Code);
        var v = await Registry.GetVersionAsync("m", "1", default);
        Assert.Equal(VersionStatus.Failed, v.Status);
        Assert.Contains("ONNX Runtime", v.StatusMessage, StringComparison.Ordinal);
        Assert.Empty(_h.Store.List());
        Assert.Empty((await Registry.VerifyAsync(default)).Problems);
    }

    [Fact]
    public async Task Reserve_DigestMismatch_StaysRegistering_ProducerMayRetry()
    {
        await Registry.ReserveVersionAsync("m", new RegisterVersionRequest(), default);
        var bytes = OnnxModels.Linear();

        await Assert.ThrowsAsync<RegistryException>(() => Registry.UploadArtifactAsync("m", 1, new MemoryStream(bytes), "sha256:" + new string('1', 64), default));
        Assert.Equal(VersionStatus.Registering, (await Registry.GetVersionAsync("m", "1", default)).Status);

        Assert.Equal(VersionStatus.Ready, (await Registry.UploadArtifactAsync("m", 1, new MemoryStream(bytes), null, default)).Status);
    }

    [Fact]
    public async Task Gc_ExpiresReservationsOlderThanTimeout()
    {
        await Registry.ReserveVersionAsync("m", new RegisterVersionRequest(), default);
        _time.Advance(TimeSpan.FromDays(6));
        await Registry.ReserveVersionAsync("m", new RegisterVersionRequest(), default);
        _time.Advance(TimeSpan.FromDays(2));

        Assert.Equal(1, (await Registry.CollectGarbageAsync(dryRun: true, default)).ReservationsExpired);
        Assert.Equal(VersionStatus.Registering, (await Registry.GetVersionAsync("m", "1", default)).Status);
        var report = await Registry.CollectGarbageAsync(dryRun: false, default);

        Assert.Equal(1, report.ReservationsExpired);
        var first = await Registry.GetVersionAsync("m", "1", default);
        Assert.Equal(VersionStatus.Failed, first.Status);
        Assert.Contains("no artifact arrived", first.StatusMessage, StringComparison.Ordinal);
        Assert.Equal(VersionStatus.Registering, (await Registry.GetVersionAsync("m", "2", default)).Status);
    }

    [Fact]
    public async Task Reserve_ProducerGivesUp_Failed_WithMessage_CanBeDeleted()
    {
        await Registry.ReserveVersionAsync("m", new RegisterVersionRequest(), default);

        var failed = await Registry.UpdateVersionAsync("m", "1", new UpdateVersionRequest(Status: VersionStatus.Failed, StatusMessage: "loss diverged"), default);

        Assert.Equal(VersionStatus.Failed, failed.Status);
        Assert.Equal("loss diverged", failed.StatusMessage);
        Assert.Equal(400, (await Assert.ThrowsAsync<RegistryException>(() => Registry.UpdateVersionAsync("m", "1", new UpdateVersionRequest(Status: VersionStatus.Ready), default))).Status);
        await Registry.DeleteVersionAsync("m", "1", false, null, default);
        Assert.Equal(0, (await Registry.GetModelAsync("m", default)).VersionCount);
        var reserveWithAlias = await Assert.ThrowsAsync<RegistryException>(() => Registry.ReserveVersionAsync("m", new RegisterVersionRequest { Alias = "production" }, default));
        Assert.Equal("alias", reserveWithAlias.Field);
    }

    [Fact]
    public async Task GetVersion_BySelector_NumberAliasLatest_AndClearErrors()
    {
        await _h.RegisterAsync("m", OnnxModels.Linear(seed: 1));
        await _h.RegisterAsync("m", OnnxModels.Linear(seed: 2), new RegisterVersionRequest { Alias = "staging" });
        await _h.RegisterAsync("m", OnnxModels.Linear(seed: 3));

        Assert.Equal(3, (await Registry.GetVersionAsync("m", "latest", default)).Version);
        Assert.Equal(2, (await Registry.GetVersionAsync("m", "staging", default)).Version);
        Assert.Equal(1, (await Registry.GetVersionAsync("m", "1", default)).Version);
        Assert.Contains("no version 7", (await Assert.ThrowsAsync<RegistryException>(() => Registry.GetVersionAsync("m", "7", default))).Message, StringComparison.Ordinal);
        Assert.Contains("no alias 'prod'", (await Assert.ThrowsAsync<RegistryException>(() => Registry.GetVersionAsync("m", "prod", default))).Message, StringComparison.Ordinal);
        Assert.Equal("version", (await Assert.ThrowsAsync<RegistryException>(() => Registry.GetVersionAsync("m", "-1", default))).Field);
    }
}
