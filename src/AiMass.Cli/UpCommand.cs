using System.CommandLine;
using System.Globalization;
using AiMass.Server;
using AiMass.Server.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace AiMass.Cli;

/// <summary><c>aimass up</c>: runs the control plane in this process on the embedded default (SQLite + local blobs).</summary>
internal static class UpCommand
{
    private static string DescribeCluster(Jobs.JobController jobs)
    {
        var nodes = jobs.Nodes();
        var total = nodes.Aggregate(Resources.ResourceVector.Zero, (sum, n) => sum + n.Capacity.ToVector());
        var policy = jobs.Policy;
        var names = nodes.Count <= 4 ? string.Join(", ", nodes.Select(n => n.Name)) : $"{nodes[0].Name} ... {nodes[^1].Name}";
        return $"{nodes.Count} node(s) ({names}; {total}), {policy.Ordering.ToString().ToLowerInvariant()} ordering, "
            + $"{policy.Backfill.ToString().ToLowerInvariant()} backfill, {jobs.ExecutorName} executor";
    }

    private static string? ClusterFile(string? path)
    {
        if (path is null)
        {
            return null;
        }
        var full = Path.GetFullPath(path);
        return File.Exists(full) ? full : throw new CliException($"cluster file '{path}' does not exist");
    }

    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir")
        {
            Description = "Data directory for the database and artifacts (env AIMASS_DATA_DIR; default ~/.aimass)",
            DefaultValueFactory = _ => StorageOptions.DefaultDataDirectory(),
        };
        var port = new Option<int>("--port")
        {
            Description = $"TCP port to listen on (0 picks a free one; default {ServerOptions.DefaultPort})",
            DefaultValueFactory = _ => ServerOptions.DefaultPort,
        };
        var host = new Option<string>("--host")
        {
            Description = "Address to bind (default 127.0.0.1; 0.0.0.0 for every interface)",
            DefaultValueFactory = _ => "127.0.0.1",
        };
        var cluster = new Option<string?>("--cluster")
        {
            Description = "Cluster file: policy, queues, nodes (virtual ones all run on this machine) and dynamic pools; default one node with this machine's CPUs, memory and GPUs",
        };
        var backend = new Option<string>("--backend")
        {
            Description = "Where jobs run: local (processes of this machine) or slurm (sbatch on the Slurm cluster this machine is a client of; nodes and partitions come from Slurm; see docs/slurm.md)",
            DefaultValueFactory = _ => "local",
        };
        backend.AcceptOnlyFromAmong("local", "slurm");
        var command = new Command("up", "Start the control plane on the embedded default: SQLite, a content-addressed artifact store and a local executor in the data directory")
        {
            dataDir, port, host, cluster, backend,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var p = parse.GetValue(port);
            if (p is < 0 or > 65535)
            {
                throw new CliException($"--port {p} is not a TCP port (0-65535)");
            }
            var directory = Path.GetFullPath(parse.GetValue(dataDir)!);
            var app = AiMassServer.Build(new Dictionary<string, string?>
            {
                [$"{StorageOptions.Section}:{nameof(StorageOptions.DataDirectory)}"] = directory,
                [$"{ServerOptions.Section}:{nameof(ServerOptions.Port)}"] = p.ToString(CultureInfo.InvariantCulture),
                [$"{ServerOptions.Section}:{nameof(ServerOptions.Host)}"] = parse.GetValue(host),
                [$"{Jobs.JobOptions.Section}:{nameof(Jobs.JobOptions.ClusterFile)}"] = ClusterFile(parse.GetValue(cluster)),
                ["Execution:Backend"] = parse.GetValue(backend),
            });
            await using (app)
            {
                try
                {
                    app.Prepare();
                    await app.StartAsync(ct);
                }
                catch (OptionsValidationException ex)
                {
                    throw new CliException($"invalid configuration: {string.Join("; ", ex.Failures)} (check appsettings.json and the AIMASS__Section__Key environment variables)");
                }
                catch (IOException ex) when (Cli.IsPortInUse(ex))
                {
                    throw new CliException($"port {p} is already in use: is another control plane running ('aimass status')? Choose another with --port.");
                }
                catch (IOException ex) when (ex.Message.Contains("data directory", StringComparison.Ordinal))
                {
                    throw new CliException(ex.Message);
                }
                catch (Specs.SpecException ex)
                {
                    throw new CliException(ex.Message);
                }
                catch (InvalidOperationException ex) when (ex.InnerException is IOException or InvalidOperationException)
                {
                    throw new CliException(ex.Message); // the backend's cluster could not be read (Slurm unreachable)
                }
                var address = app.GetListeningAddress();
                Console.Out.WriteLine($"AI Mass {ThisAssemblyVersion()} control plane listening on {address.ToString().TrimEnd('/')}");
                Console.Out.WriteLine($"  data directory: {directory}");
                Console.Out.WriteLine($"  cluster: {DescribeCluster(app.Services.GetRequiredService<Jobs.JobController>())}");
                Console.Out.WriteLine($"  API: {address}api/v1   OpenAPI: {address}openapi/v1.json");
                Console.Out.WriteLine("  Press Ctrl-C to stop.");
                await Console.Out.FlushAsync(ct);
                try
                {
                    await app.WaitForShutdownAsync(ct);
                }
                catch (OperationCanceledException)
                {
                    // Ctrl-C or SIGTERM: fall through to a clean stop.
                }
                await app.StopAsync(CancellationToken.None);
                Console.Out.WriteLine("AI Mass control plane stopped.");
            }
        }));
        return command;
    }

    private static string ThisAssemblyVersion() => AiMass.Server.Api.ThisAssembly.Version;
}
