using System.CommandLine;
using System.Globalization;
using AiMass.Registry;
using AiMass.Server;
using AiMass.Server.Api;
using AiMass.Serving;
using Microsoft.Extensions.Hosting;

namespace AiMass.Cli;

/// <summary><c>aimass serve MODEL...</c>: one model host in this process, speaking the Open Inference Protocol over REST.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var models = new Argument<string[]>("MODEL")
        {
            Description = "An .onnx file (served as its file name, version 1) or NAME@VERSION|ALIAS from the registry (--server); NAME=... serves it under another name",
            Arity = ArgumentArity.OneOrMore,
        };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => 8000 };
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Largest dynamic batch in rows (1: no batching)", DefaultValueFactory = _ => 8 };
        var delay = new Option<int>("--max-queue-delay-us") { Description = "How long a request may wait for others to batch with, in microseconds", DefaultValueFactory = _ => 100 };
        var queue = new Option<int>("--max-queue-size") { Description = "Requests waiting at most; more are refused with 429", DefaultValueFactory = _ => 1024 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads per model", DefaultValueFactory = _ => 1 };
        var grpcPort = new Option<int?>("--grpc-port")
        {
            Description = "TCP port of the Open Inference Protocol's gRPC service (HTTP/2): default --port + 1 (0 with --port 0), 0 picks a free one, -1 turns gRPC off",
        };
        var deployment = new Option<string?>("--deployment")
        {
            Description = "Run as a replica of this deployment: announce the listening address to the control plane (--server) every 2 s; set by the control plane, which starts replicas as jobs",
        };
        var command = new Command("serve", "Serve ONNX models here over the Open Inference Protocol v2 (REST), with dynamic batching")
        {
            models, port, host, maxBatch, delay, queue, threads, grpcPort, deployment,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var p = parse.GetValue(port);
            if (p is < 0 or > 65535)
            {
                throw new CliException($"--port {p} is not a TCP port (0-65535)");
            }
            try
            {
                AiMassServer.ListenAddress(parse.GetValue(host)!);
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--host {e.Message}");
            }
            if (parse.GetValue(maxBatch) < 1 || parse.GetValue(delay) < 0 || parse.GetValue(queue) < 1 || parse.GetValue(threads) < 0)
            {
                throw new CliException("--max-batch-size and --max-queue-size must be at least 1; --max-queue-delay-us and --threads not negative");
            }
            var replica = parse.GetValue(deployment) is null ? default : ReplicaIdentity();
            var config = new ModelConfig
            {
                Batching = new BatchingOptions
                {
                    MaxBatchSize = parse.GetValue(maxBatch),
                    MaxQueueDelay = TimeSpan.FromMicroseconds(parse.GetValue(delay)),
                    MaxQueueSize = parse.GetValue(queue),
                },
                Session = new ModelSessionOptions { IntraOpThreads = parse.GetValue(threads) },
            };
            await using var repository = new ModelRepository();
            foreach (var model in parse.GetValue(models)!)
            {
                var (name, fetch) = Source(parse, model);
                repository.Register(new ModelSource(name, fetch, config));
                try
                {
                    var loaded = await repository.LoadAsync(name, ct);
                    Console.Out.WriteLine($"loaded {name} version {loaded.Version}: inputs {string.Join(", ", loaded.Session.Inputs.Select(Describe))}; outputs {string.Join(", ", loaded.Session.Outputs.Select(Describe))}"
                        + (loaded.Session.Batchable ? $"; batching up to {config.Batching.MaxBatchSize}" : "; not batchable (fixed first dimension)"));
                }
                catch (InferenceException e)
                {
                    throw new CliException(e.Message);
                }
            }
            var g = parse.GetValue(grpcPort) ?? (p == 0 ? 0 : p + 1);
            if (g is < -1 or > 65535 || (g == p && p != 0))
            {
                throw new CliException($"--grpc-port {g} must be a TCP port other than --port, 0 (a free one) or -1 (no gRPC)");
            }
            await using var app = InferenceApi.BuildHost(repository, parse.GetValue(host)!, p, g < 0 ? null : g);
            try
            {
                await app.StartAsync(ct);
            }
            catch (IOException ex) when (Cli.IsPortInUse(ex))
            {
                throw new CliException($"port {p}{(g > 0 ? $" or {g}" : "")} is already in use; choose others with --port and --grpc-port");
            }
            var addresses = app.GetListeningAddresses();
            var address = addresses[0];
            Console.Out.WriteLine($"serving on {address.ToString().TrimEnd('/')} (Open Inference Protocol v2: {address}v2/models/NAME/infer; TensorFlow Serving: {address}v1/models/NAME:predict)"
                + (addresses.Count > 1 ? $"; gRPC inference.GRPCInferenceService on {addresses[1].Authority}" : "") + ". Press Ctrl-C to stop.");
            await Console.Out.FlushAsync(ct);
            using var stopping = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var announcing = parse.GetValue(deployment) is { } replicaOf ? AnnounceAsync(parse, replicaOf, replica, address, stopping.Token) : Task.CompletedTask;
            try
            {
                await app.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException)
            {
            }
            await stopping.CancelAsync();
            await announcing;
            await app.StopAsync(CancellationToken.None);
        }));
        return command;
    }

    /// <summary>Tells the control plane where this replica listens, at once and then every 2 s (a heartbeat; a restarted control plane learns it again).</summary>
    private static async Task AnnounceAsync(ParseResult parse, string deployment, (long Job, int Attempt) replica, Uri address, CancellationToken ct)
    {
        var (job, attempt) = replica;
        using var client = Cli.CreateClient(parse);
        var announcement = new Deployments.ReplicaAnnouncement(job, attempt, address.GetLeftPart(UriPartial.Authority));
        string? lastError = null;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await client.AnnounceReplicaAsync(deployment, announcement, ct);
                lastError = null;
            }
            catch (Exception e) when (e is HttpRequestException or Client.AiMassApiException)
            {
                if (e.Message != lastError)
                {
                    await Console.Error.WriteLineAsync($"warning: cannot announce this replica of {deployment} to the control plane: {e.Message}");
                }
                lastError = e.Message;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The job and attempt this replica runs as (set by the control plane).</summary>
    private static (long Job, int Attempt) ReplicaIdentity() =>
        long.TryParse(Environment.GetEnvironmentVariable("AIMASS_JOB_ID"), NumberStyles.None, CultureInfo.InvariantCulture, out var job)
            ? (job, int.TryParse(Environment.GetEnvironmentVariable("AIMASS_ATTEMPT"), NumberStyles.None, CultureInfo.InvariantCulture, out var a) ? a : 1)
            : throw new CliException("--deployment is for replicas the control plane starts as jobs: AIMASS_JOB_ID is not set");

    private static string Describe(TensorMetadata t) => $"{t.Name} {InferDataTypes.Name(t.DataType)} [{string.Join(", ", t.Shape)}]";

    /// <summary>The model's name and how to fetch it: a file read again, or a registry reference resolved again (so an alias is followed).</summary>
    private static (string Name, Func<CancellationToken, Task<ModelArtifact>> Fetch) Source(ParseResult parse, string model)
    {
        var equals = model.IndexOf('=', StringComparison.Ordinal);
        var path = equals > 0 ? model[(equals + 1)..] : model;
        if (File.Exists(path))
        {
            var name = equals > 0 ? model[..equals] : Path.GetFileNameWithoutExtension(path);
            if (!Names.IsValidModelName(name))
            {
                throw new CliException($"'{name}' is not a valid model name; give one with NAME={path}");
            }
            var full = Path.GetFullPath(path);
            return (name, async ct => new ModelArtifact("1", await File.ReadAllBytesAsync(full, ct), []));
        }
        if (!VersionRef.TryParse(path, out var reference, out var error))
        {
            throw new CliException($"'{path}' is neither an existing file nor a registry reference NAME@VERSION|ALIAS: {error}");
        }
        var served = equals > 0 ? model[..equals] : reference.Model;
        if (!Names.IsValidModelName(served))
        {
            throw new CliException($"'{served}' is not a valid model name to serve as");
        }
        return (served, async ct =>
        {
            using var client = Cli.CreateClient(parse);
            using var buffer = new MemoryStream();
            var info = await client.DownloadArtifactAsync(reference, buffer, cancellationToken: ct);
            if (!string.Equals(info.Format, "onnx", StringComparison.Ordinal))
            {
                throw new InferenceException($"{info.Name}@{info.Version} is in format {info.Format}; serve takes onnx");
            }
            // A version named by alias answers to that label too (TensorFlow Serving's /labels/{label}).
            return new ModelArtifact(info.Version.ToString(CultureInfo.InvariantCulture), buffer.ToArray(), reference.Alias is { } alias ? [alias] : []);
        });
    }
}
