using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using AiMass.Client;
using AiMass.TestSupport;
using Microsoft.Data.Sqlite;

namespace AiMass.Bench.Registry;

/// <summary>
/// The registry's performance targets, each measured against a running <c>aimass up</c> child process:
/// artifact transfer through the CLI against <c>cp</c> on the same disk, listing one page out of 100,000 versions,
/// and end-to-end registration of a 1 MB ONNX model.
/// </summary>
internal static partial class Benchmarks
{
    private static string Dll => Path.Combine(AppContext.BaseDirectory, "aimass.dll");

    public static async Task<int> TransferAsync(string workDir, int sizeMiB, int runs)
    {
        Directory.CreateDirectory(workDir);
        var source = Path.Combine(workDir, "artifact.bin");
        WriteRandomFile(source, (long)sizeMiB << 20);
        var size = new FileInfo(source).Length;
        var data = Path.Combine(workDir, "data");
        DeleteDir(data);
        await using var server = await ServerProcess.StartAsync(Dll, data);
        var env = new Dictionary<string, string> { ["AIMASS_SERVER"] = server.Address.ToString() };

        var cp = new List<double>();
        var cpSync = new List<double>();
        var up = new List<double>();
        var down = new List<double>();
        var upMem = new List<long>();
        var downMem = new List<long>();
        for (var run = 0; run < runs; run++)
        {
            var copy = Path.Combine(workDir, "copy.bin");
            File.Delete(copy);
            cp.Add(Time(() => Run("cp", [source, copy])));
            File.Delete(copy);
            cpSync.Add(Time(() => Run("sh", ["-c", $"cp '{source}' '{copy}' && sync '{copy}'"])));
            File.Delete(copy);

            var (upSeconds, upGrowth) = await server.MeasureAsync(() => RunCli(env, "models", "register", source, "--name", "big", "--format", "raw"));
            up.Add(upSeconds);
            upMem.Add(upGrowth);
            var target = Path.Combine(workDir, "download.bin");
            File.Delete(target);
            var (downSeconds, downGrowth) = await server.MeasureAsync(() => RunCli(env, "models", "download", "big@latest", "-o", target));
            down.Add(downSeconds);
            downMem.Add(downGrowth);
            if (new FileInfo(target).Length != size)
            {
                throw new InvalidOperationException("download has the wrong size");
            }
            File.Delete(target);
            RunCli(env, "models", "delete", "big@latest");
        }
        File.Delete(source);

        double Mbps(double seconds) => size / seconds / (1 << 20);
        Console.WriteLine();
        Console.WriteLine($"## Artifact transfer, {sizeMiB} MiB, {runs} runs (median), same disk ({workDir})");
        Console.WriteLine();
        Console.WriteLine("| operation | median s | MiB/s | vs cp | server RSS growth (max) |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        var cpMedian = Median(cp);
        Row("cp", Median(cp), Mbps(Median(cp)), 1.0, null);
        Row("cp + sync (durable, as the registry)", Median(cpSync), Mbps(Median(cpSync)), cpMedian / Median(cpSync), null);
        Row("aimass models register (upload)", Median(up), Mbps(Median(up)), cpMedian / Median(up), upMem.Max());
        Row("aimass models download", Median(down), Mbps(Median(down)), cpMedian / Median(down), downMem.Max());
        Console.WriteLine();
        Console.WriteLine($"raw: cp {Join(cp)}; cp+sync {Join(cpSync)}; upload {Join(up)}; download {Join(down)}");
        return 0;

        static void Row(string name, double seconds, double mibps, double ratio, long? mem) =>
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {seconds:0.000} | {mibps:0} | {ratio:P0} | {(mem is null ? "-" : $"{mem.Value / (1 << 20)} MiB")} |"));
    }

    public static async Task<int> ListAsync(string workDir, int versions, int pages)
    {
        var data = Path.Combine(workDir, "list-data");
        DeleteDir(data);
        // Create the schema and one real version through the server, then copy that row to reach the count quickly.
        await using (var seed = await ServerProcess.StartAsync(Dll, data))
        {
            using var client = new AiMassClient(seed.Address);
            await client.RegisterVersionAsync("many", new MemoryStream(OnnxModels.Linear()));
            await client.SetAliasAsync("many", "production", 1);
        }
        SeedVersions(Path.Combine(data, "aimass.db"), versions);

        await using var server = await ServerProcess.StartAsync(Dll, data);
        using var http = new HttpClient { BaseAddress = server.Address };
        var serverMs = new List<double>();
        var clientMs = new List<double>();
        string? token = null;
        // Warm-up: JIT and SQLite page cache, as a long-running control plane has them.
        for (var i = 0; i < 20; i++)
        {
            using var _ = await http.GetAsync(new Uri("api/v1/models/many/versions?page_size=100", UriKind.Relative));
        }
        for (var i = 0; i < pages; i++)
        {
            // Walk the listing page by page, from the newest version to the oldest: every depth is measured.
            var url = $"api/v1/models/many/versions?page_size=100{(token is null ? "" : "&page_token=" + Uri.EscapeDataString(token))}";
            var sw = Stopwatch.StartNew();
            using var response = await http.GetAsync(new Uri(url, UriKind.Relative));
            var body = await response.Content.ReadAsStringAsync();
            clientMs.Add(sw.Elapsed.TotalMilliseconds);
            response.EnsureSuccessStatusCode();
            serverMs.Add(ServerTimingMs(response));
            token = NextToken().Match(body) is { Success: true } m ? m.Groups[1].Value : null;
        }
        Console.WriteLine();
        Console.WriteLine($"## Listing: page of 100 versions out of {versions:N0} versions of one model, {pages} pages");
        Console.WriteLine();
        Console.WriteLine("| measure | p50 ms | p90 ms | p99 ms | max ms |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        Pct("server-side (Server-Timing)", serverMs);
        Pct("client round trip (loopback)", clientMs);
        return 0;
    }

    public static async Task<int> RegisterAsync(string workDir, int count, int bytes)
    {
        var data = Path.Combine(workDir, "register-data");
        DeleteDir(data);
        await using var server = await ServerProcess.StartAsync(Dll, data);
        using var client = new AiMassClient(server.Address);
        var models = Enumerable.Range(0, count + 5).Select(i => OnnxModels.OfSize(bytes, seed: i)).ToList();
        for (var i = 0; i < 5; i++)
        {
            await client.RegisterVersionAsync("warmup", new MemoryStream(models[count + i]));
        }
        var ms = new List<double>();
        var serverMs = new List<double>();
        using var http = new HttpClient { BaseAddress = server.Address };
        for (var i = 0; i < count; i++)
        {
            using var content = new ByteArrayContent(models[i]);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
            var sw = Stopwatch.StartNew();
            using var response = await http.PostAsync(new Uri("api/v1/models/timed/versions?format=onnx", UriKind.Relative), content);
            await response.Content.ReadAsStringAsync();
            ms.Add(sw.Elapsed.TotalMilliseconds);
            response.EnsureSuccessStatusCode();
            serverMs.Add(ServerTimingMs(response));
        }
        Console.WriteLine();
        Console.WriteLine($"## Registration of a {models[0].Length / 1e6:0.00} MB ONNX model, end to end over HTTP, {count} registrations");
        Console.WriteLine();
        Console.WriteLine("| measure | p50 ms | p90 ms | p99 ms | max ms |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        Pct("client round trip (upload, sha256, ONNX Runtime load, fsync, commit)", ms);
        Pct("server-side (Server-Timing)", serverMs);
        return 0;
    }

    private static void SeedVersions(string dbPath, int total)
    {
        using var connection = new SqliteConnection($"Data Source={dbPath};Pooling=False");
        connection.Open();
        using var tx = connection.BeginTransaction();
        using (var insert = connection.CreateCommand())
        {
            insert.Transaction = tx;
            // Copies version 1 (same blob) as versions 2..total, with a tag on every tenth.
            insert.CommandText = """
                WITH RECURSIVE n(v) AS (SELECT 2 UNION ALL SELECT v + 1 FROM n WHERE v < $total)
                INSERT INTO model_versions (model_id, version, status, status_message, format, digest, size, signature_json, params_json, metrics_json,
                    description, source, dataset_digest, parent_model, parent_version, created_at_ms, updated_at_ms)
                SELECT f.model_id, n.v, f.status, NULL, f.format, f.digest, f.size, f.signature_json, f.params_json, f.metrics_json,
                    'seeded', 'job:' || n.v, NULL, NULL, NULL, f.created_at_ms + n.v, f.updated_at_ms + n.v
                FROM n, (SELECT * FROM model_versions WHERE version = 1) f;
                INSERT INTO version_tags (version_id, key, value) SELECT id, 'batch', CAST(version / 10 AS TEXT) FROM model_versions WHERE version % 10 = 0;
                UPDATE models SET latest_version = $total, version_count = $total WHERE name = 'many';
                """;
            insert.Parameters.AddWithValue("$total", total);
            insert.ExecuteNonQuery();
        }
        tx.Commit();
    }

    private static double ServerTimingMs(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Server-Timing", out var values) && DurRegex().Match(values.First()) is { Success: true } m
            ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)
            : double.NaN;

    private static void Pct(string name, List<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToList();
        double P(double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Floor(p * sorted.Count))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {P(0.5):0.00} | {P(0.9):0.00} | {P(0.99):0.00} | {sorted[^1]:0.00} |"));
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Join(List<double> values) => string.Join(" ", values.Select(v => v.ToString("0.000", CultureInfo.InvariantCulture)));

    private static double Time(Action action)
    {
        var sw = Stopwatch.StartNew();
        action();
        return sw.Elapsed.TotalSeconds;
    }

    private static void RunCli(Dictionary<string, string> env, params string[] args) => Run("dotnet", [Dll, .. args], env);

    private static void Run(string file, string[] args, Dictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in env ?? [])
        {
            psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {stderr} {stdout.Result}");
        }
    }

    private static void WriteRandomFile(string path, long size)
    {
        var rng = new Random(42);
        var buffer = new byte[4 << 20];
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 0);
        for (long written = 0; written < size; written += buffer.Length)
        {
            rng.NextBytes(buffer);
            file.Write(buffer, 0, (int)Math.Min(buffer.Length, size - written));
        }
    }

    private static void DeleteDir(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }

    [GeneratedRegex(@"dur=([0-9.]+)")]
    private static partial Regex DurRegex();

    [GeneratedRegex("\"next_page_token\":\"([^\"]+)\"")]
    private static partial Regex NextToken();
}
