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
        var host = new Option<string>("--host")
        {
            Description = "Address to listen on; 'node': the address the executor gives its tasks (AIMASS_NODE_ADDRESS; every interface unless it is loopback), as replicas on a cluster's nodes use",
            DefaultValueFactory = _ => "127.0.0.1",
        };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Largest dynamic batch in rows (1: no batching)", DefaultValueFactory = _ => 8 };
        var delay = new Option<int>("--max-queue-delay-us") { Description = "How long a request may wait for others to batch with, in microseconds", DefaultValueFactory = _ => 100 };
        var queue = new Option<int>("--max-queue-size") { Description = "Requests waiting at most; more are refused with 429", DefaultValueFactory = _ => 1024 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads per execution", DefaultValueFactory = _ => 1 };
        var instances = new Option<int>("--instances") { Description = "Batches of one model run at the same time (Triton's instance count)", DefaultValueFactory = _ => 1 };
        var versionPolicy = new Option<string?>("--version-policy")
        {
            Description = "Which versions of a registry model to serve: latest, latest:N, all, specific:1,3 or alias:NAME (default: what MODEL names)",
        };
        var poll = new Option<double>("--poll-interval")
        {
            Description = "Seconds between looks at the registry for new versions and alias moves (0: never)",
            DefaultValueFactory = _ => 30,
        };
        var grpcPort = new Option<int?>("--grpc-port")
        {
            Description = "TCP port of the Open Inference Protocol's gRPC service (HTTP/2): default --port + 1 (0 with --port 0), 0 picks a free one, -1 turns gRPC off",
        };
        var deployment = new Option<string?>("--deployment")
        {
            Description = "Run as a replica of this deployment: announce the listening address to the control plane (--server) every 2 s; set by the control plane, which starts replicas as jobs",
        };
        var command = new Command("serve", "Serve ONNX models here over the Open Inference Protocol v2 (REST and gRPC) and TensorFlow Serving REST, with dynamic batching")
        {
            models, port, host, maxBatch, delay, queue, threads, instances, versionPolicy, poll, grpcPort, deployment,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            // Before this process's first socket (the registry download below opens one).
            InferenceApi.PreferInlineSocketCompletions();
            var p = parse.GetValue(port);
            if (p is < 0 or > 65535)
            {
                throw new CliException($"--port {p} is not a TCP port (0-65535)");
            }
            var (bind, announceHost) = HostOf(parse.GetValue(host)!);
            try
            {
                AiMassServer.ListenAddress(bind);
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--host {e.Message}");
            }
            if (parse.GetValue(maxBatch) < 1 || parse.GetValue(delay) < 0 || parse.GetValue(queue) < 1 || parse.GetValue(threads) < 0 || parse.GetValue(instances) < 1 || parse.GetValue(poll) < 0)
            {
                throw new CliException("--max-batch-size, --max-queue-size and --instances must be at least 1; --max-queue-delay-us, --threads and --poll-interval not negative");
            }
            var replica = parse.GetValue(deployment) is null ? default : ReplicaIdentity();
            var config = new ModelConfig
            {
                Batching = new BatchingOptions
                {
                    MaxBatchSize = parse.GetValue(maxBatch),
                    MaxQueueDelay = TimeSpan.FromMicroseconds(parse.GetValue(delay)),
                    MaxQueueSize = parse.GetValue(queue),
                    Instances = parse.GetValue(instances),
                },
                Session = new ModelSessionOptions { IntraOpThreads = parse.GetValue(threads) },
            };
            await using var repository = new ModelRepository();
            foreach (var model in parse.GetValue(models)!)
            {
                var source = Source(parse, model, parse.GetValue(versionPolicy), config);
                repository.Register(source);
                try
                {
                    foreach (var loaded in await repository.LoadAsync(source.Name, ct))
                    {
                        Console.Out.WriteLine($"loaded {loaded.Name} version {loaded.Version}{(loaded.Labels.Count > 0 ? $" ({string.Join(", ", loaded.Labels)})" : "")}: inputs {string.Join(", ", loaded.Session.Inputs.Select(Describe))}; outputs {string.Join(", ", loaded.Session.Outputs.Select(Describe))}"
                            + (loaded.Session.Batchable ? $"; batching up to {config.Batching.MaxBatchSize}" : "; not batchable (fixed first dimension)"));
                    }
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
            await using var app = InferenceApi.BuildHost(repository, bind, p, g < 0 ? null : g);
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
            var announced = announceHost is null ? address : new UriBuilder(address) { Host = announceHost }.Uri;
            var announcing = parse.GetValue(deployment) is { } replicaOf ? AnnounceAsync(parse, replicaOf, replica, announced, stopping.Token) : Task.CompletedTask;
            var polling = parse.GetValue(poll) > 0
                ? repository.PollAsync(TimeSpan.FromSeconds(parse.GetValue(poll)), (name, e) => Console.Error.WriteLine($"warning: {name}: {e.Message}; the versions loaded stay"), stopping.Token)
                : Task.CompletedTask;
            try
            {
                await app.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException)
            {
            }
            await stopping.CancelAsync();
            await announcing;
            await polling;
            await app.StopAsync(CancellationToken.None);
        }));
        return command;
    }

    /// <summary>
    /// Where to bind and, when it differs from the bound address, the host to announce: <c>node</c> binds every
    /// interface of a cluster node and announces the node's address (AIMASS_NODE_ADDRESS), or loopback on this machine.
    /// </summary>
    private static (string Bind, string? Announce) HostOf(string host)
    {
        if (host != "node")
        {
            return (host, null);
        }
        var node = Environment.GetEnvironmentVariable("AIMASS_NODE_ADDRESS");
        var loopback = string.IsNullOrEmpty(node) || node == "localhost"
            || (System.Net.IPAddress.TryParse(node, out var ip) && System.Net.IPAddress.IsLoopback(ip));
        return loopback ? ("127.0.0.1", null) : ("0.0.0.0", node);
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

    /// <summary>
    /// A model to serve: an ONNX file (version 1), or a registry model whose versions the policy selects (NAME: the
    /// latest; NAME@VERSION: that one; NAME@ALIAS: the version the alias points at, followed when it moves; or
    /// --version-policy), served as NAME or under the name before '='.
    /// </summary>
    private static ModelSource Source(ParseResult parse, string model, string? policyText, ModelConfig config)
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
            if (policyText is not null)
            {
                throw new CliException($"--version-policy applies to registry models; {path} is a file (served as version 1)");
            }
            return ModelSource.File(name, Path.GetFullPath(path), config);
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
        if (policyText is not null && reference.Selector is not null)
        {
            throw new CliException($"give either {reference} or --version-policy {policyText}, not both");
        }
        VersionPolicy policy;
        try
        {
            policy = policyText is not null ? VersionPolicy.Parse(policyText)
                : reference.Number is { } n ? new VersionPolicy.Specific([n.ToString(CultureInfo.InvariantCulture)])
                : reference.Alias is { } alias ? new VersionPolicy.Labelled(alias)
                : new VersionPolicy.Latest(1);
        }
        catch (FormatException e)
        {
            throw new CliException($"--version-policy: {e.Message}");
        }
        return new ModelSource(served, ct => ListAsync(parse, reference.Model, ct), (version, ct) => DownloadAsync(parse, reference.Model, version, ct), policy, config);
    }

    /// <summary>The ready versions of a registry model with their aliases.</summary>
    private static async Task<IReadOnlyList<AvailableVersion>> ListAsync(ParseResult parse, string model, CancellationToken ct)
    {
        using var client = Cli.CreateClient(parse);
        var versions = new List<AvailableVersion>();
        string? token = null;
        try
        {
            do
            {
                var page = await client.ListVersionsAsync(model, status: "ready", pageSize: 1000, pageToken: token, cancellationToken: ct);
                versions.AddRange(page.Items.Where(v => string.Equals(v.Format, "onnx", StringComparison.Ordinal))
                    .Select(v => new AvailableVersion(v.Version.ToString(CultureInfo.InvariantCulture), v.Aliases)));
                token = page.NextPageToken;
            }
            while (token is not null);
        }
        catch (Client.AiMassApiException e)
        {
            throw new InferenceException((int)e.Status, $"registry: {e.Message}");
        }
        return versions;
    }

    private static async Task<byte[]> DownloadAsync(ParseResult parse, string model, string version, CancellationToken ct)
    {
        using var client = Cli.CreateClient(parse);
        using var buffer = new MemoryStream();
        try
        {
            await client.DownloadArtifactAsync(new VersionRef(model, version), buffer, cancellationToken: ct);
        }
        catch (Client.AiMassApiException e)
        {
            throw new InferenceException((int)e.Status, $"registry: {e.Message}");
        }
        return buffer.ToArray();
    }
}
