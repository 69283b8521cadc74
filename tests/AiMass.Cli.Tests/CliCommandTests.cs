using System.Text.Json;
using AiMass.TestSupport;

namespace AiMass.Cli.Tests;

public sealed class CliCommandTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private TempDirectory _work = null!;

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        _work = new TempDirectory();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _work.Dispose();
    }

    private Task<CliResult> Run(params string[] args) => CliRunner.RunAsync(_server.Address, args);

    private static JsonElement Json(CliResult r)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    private string ModelFile(int seed = 1, int inputs = 4)
    {
        var path = _work.Combine($"model-{seed}-{inputs}.onnx");
        File.WriteAllBytes(path, OnnxModels.Linear(inputs: inputs, seed: seed));
        return path;
    }

    [Fact]
    public async Task RegisterListShowAliasRollbackDownloadDelete_EndToEnd()
    {
        var reg1 = Json(await Run("--json", "models", "register", ModelFile(1), "--name", "grid-load", "--alias", "production",
            "--tag", "site=north", "--param", "lr=0.01", "--metric", "mape=3.1", "--source", "job:12", "--description", "first"));
        Assert.Equal(1, reg1.GetProperty("version").GetInt32());
        Assert.Equal(0.01, reg1.GetProperty("params").GetProperty("lr").GetDouble());

        var human = await Run("models", "register", ModelFile(2), "--name", "grid-load", "--parent", "grid-load@1");
        Assert.Equal(0, human.ExitCode);
        Assert.Contains("registered grid-load@2", human.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await Run("models", "update", "grid-load@1", "--metric", "auc=0.91", "--param", "layers=[64,32]", "--untag", "site", "--tag", "owner=grid-team")).ExitCode);
        Assert.Equal(0, (await Run("models", "update", "grid-load", "--description", "day-ahead load forecast")).ExitCode);
        var updated = Json(await Run("--json", "models", "show", "grid-load@1"));
        Assert.Equal(0.91, updated.GetProperty("metrics").GetProperty("auc").GetDouble());
        Assert.Equal(3.1, updated.GetProperty("metrics").GetProperty("mape").GetDouble());
        Assert.Equal(2, updated.GetProperty("params").GetProperty("layers").GetArrayLength());
        Assert.False(updated.GetProperty("tags").TryGetProperty("site", out _));
        Assert.Equal("grid-team", updated.GetProperty("tags").GetProperty("owner").GetString());
        var misuse = await Run("models", "update", "grid-load", "--metric", "auc=1");
        Assert.Equal(1, misuse.ExitCode);

        var list = await Run("models", "list");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("grid-load", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("production=1", list.Stdout, StringComparison.Ordinal);

        var show = await Run("models", "show", "grid-load@production");
        Assert.Contains("grid-load@1", show.Stdout, StringComparison.Ordinal);
        Assert.Contains("[batch, 4]", show.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await Run("models", "alias", "set", "grid-load@2", "production", "--reason", "better")).ExitCode);
        var history = Json(await Run("--json", "models", "alias", "history", "grid-load", "production"));
        Assert.Equal(2, history.GetArrayLength());
        Assert.Equal(Environment.UserName, history[0].GetProperty("actor").GetString());

        var rollback = await Run("models", "rollback", "grid-load", "production");
        Assert.Contains("grid-load@production -> 1", rollback.Stdout, StringComparison.Ordinal);

        var target = _work.Combine("out.onnx");
        var download = await Run("models", "download", "grid-load@production", "-o", target);
        Assert.True(download.ExitCode == 0, download.ToString());
        Assert.Equal(await File.ReadAllBytesAsync(ModelFile(1)), await File.ReadAllBytesAsync(target));
        Assert.Empty(Directory.EnumerateFiles(_work.Path, "*.part"));

        Assert.Equal(0, (await Run("models", "archive", "grid-load@2")).ExitCode);
        var versions = Json(await Run("--json", "models", "versions", "grid-load"));
        Assert.Equal([1], versions.GetProperty("items").EnumerateArray().Select(v => v.GetProperty("version").GetInt32()));

        var blocked = await Run("models", "delete", "grid-load@1");
        Assert.Equal(1, blocked.ExitCode);
        Assert.Contains("production", blocked.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await Run("models", "delete", "grid-load@1", "--force")).ExitCode);
        Assert.Equal(0, (await Run("models", "delete", "grid-load", "--force")).ExitCode);
        Assert.Equal(0, Json(await Run("--json", "models", "list")).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task ReserveThenUploadOrFail_ForTrainingJobs()
    {
        var reserved = Json(await Run("--json", "models", "reserve", "forecast", "--source", "job:42", "--param", "epochs=10"));
        Assert.Equal("registering", reserved.GetProperty("status").GetString());
        var number = reserved.GetProperty("version").GetInt32();

        var upload = await Run("models", "upload", $"forecast@{number}", ModelFile(5));
        Assert.True(upload.ExitCode == 0, upload.ToString());
        Assert.Contains("it is ready", upload.Stdout, StringComparison.Ordinal);
        var again = await Run("models", "upload", $"forecast@{number}", ModelFile(5));
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("only be uploaded to a registering version", again.Stderr, StringComparison.Ordinal);

        Assert.Equal(0, (await Run("models", "reserve", "forecast")).ExitCode);
        var failed = await Run("models", "fail", "forecast@2", "-m", "out of memory on node g07");
        Assert.Contains("is failed: out of memory on node g07", failed.Stdout, StringComparison.Ordinal);
        var versions = Json(await Run("--json", "models", "versions", "forecast", "--status", "all", "--asc"));
        Assert.Equal(["ready", "failed"], versions.GetProperty("items").EnumerateArray().Select(v => v.GetProperty("status").GetString()));
        Assert.Equal("job:42", versions.GetProperty("items")[0].GetProperty("lineage").GetProperty("source").GetString());
    }

    [Fact]
    public async Task UserErrors_Exit1_WithMessage()
    {
        var missingFile = await Run("models", "register", _work.Combine("nope.onnx"), "--name", "m");
        Assert.Equal(1, missingFile.ExitCode);
        Assert.Contains("does not exist", missingFile.Stderr, StringComparison.Ordinal);

        var badName = await Run("models", "register", ModelFile(), "--name", "bad name");
        Assert.Equal(1, badName.ExitCode);
        Assert.Contains("not a valid model name", badName.Stderr, StringComparison.Ordinal);

        var notOnnx = _work.Combine("notes.onnx");
        await File.WriteAllTextAsync(notOnnx, "hello");
        var invalid = await Run("models", "register", notOnnx, "--name", "m");
        Assert.Equal(1, invalid.ExitCode);
        Assert.Contains("invalid_artifact", invalid.Stderr, StringComparison.Ordinal);

        var missing = await Run("models", "show", "nothing-here@3");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("does not exist", missing.Stderr, StringComparison.Ordinal);

        var badRef = await Run("models", "show", "m@0");
        Assert.Equal(1, badRef.ExitCode);

        var unknownVerb = await Run("models", "frobnicate");
        Assert.NotEqual(0, unknownVerb.ExitCode);
    }

    [Fact]
    public async Task NoServer_Exit1_SaysHowToStartOne()
    {
        var r = await CliRunner.RunAsync(new Uri("http://127.0.0.1:9"), "models", "list");

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot reach the control plane", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("aimass up", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerFlag_OverridesEnvironment()
    {
        var r = await CliRunner.RunWithEnvAsync(new Dictionary<string, string> { ["AIMASS_SERVER"] = "http://127.0.0.1:9" }, null,
            "--server", _server.Address.ToString(), "--json", "status");

        Assert.Equal("ok", Json(r).GetProperty("status").GetString());
    }

    [Fact]
    public async Task AdminBackupVerifyGcRestore_ThroughCli()
    {
        Assert.Equal(0, (await Run("models", "register", ModelFile(1), "--name", "m")).ExitCode);
        var backupDir = _work.Combine("backup");

        var backup = await Run("admin", "backup", backupDir);
        Assert.True(backup.ExitCode == 0, backup.ToString());
        Assert.Contains("1 version(s)", backup.Stdout, StringComparison.Ordinal);

        var verify = await Run("admin", "verify");
        Assert.Contains("all intact", verify.Stdout, StringComparison.Ordinal);

        var gc = Json(await Run("--json", "admin", "gc", "--dry-run"));
        Assert.True(gc.GetProperty("dry_run").GetBoolean());

        var restoreTarget = _work.Combine("restored");
        var restore = await Run("admin", "restore", backupDir, "--data-dir", restoreTarget);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.True(File.Exists(Path.Combine(restoreTarget, "aimass.db")));

        var again = await Run("admin", "restore", backupDir, "--data-dir", restoreTarget);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("not empty", again.Stderr, StringComparison.Ordinal);

        // A corrupted blob makes verify fail with exit 1.
        var blob = Directory.EnumerateFiles(Path.Combine(_server.DataDirectory, "blobs"), "*", SearchOption.AllDirectories).Single();
        await File.WriteAllTextAsync(blob, "corrupted");
        var bad = await Run("admin", "verify");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("m@1", bad.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_ListsVerbGroups()
    {
        var r = await Run("--help");

        Assert.Equal(0, r.ExitCode);
        foreach (var verb in new[] { "up", "status", "models", "admin" })
        {
            Assert.Contains(verb, r.Stdout, StringComparison.Ordinal);
        }
    }
}
