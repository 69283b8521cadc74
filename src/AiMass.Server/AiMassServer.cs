using AiMass.Execution;
using AiMass.Execution.Slurm;
using AiMass.Jobs;
using AiMass.Jobs.Deployments;
using AiMass.Jobs.Studies;
using AiMass.Jobs.Storage;
using AiMass.Registry;
using AiMass.Registry.Artifacts;
using AiMass.Registry.Inspection;
using AiMass.Registry.Storage;
using AiMass.Server.Api;
using AiMass.Server.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Prometheus;

namespace AiMass.Server;

/// <summary>Builds the AI Mass control plane: configuration, services, endpoints.</summary>
public static class AiMassServer
{
    /// <summary>
    /// Creates the control plane. Configuration, lowest precedence first: <c>appsettings.json</c>, environment variables
    /// <c>AIMASS__Section__Key</c>, then <paramref name="overrides"/> (the CLI's flags).
    /// </summary>
    public static WebApplication Build(IReadOnlyDictionary<string, string?>? overrides = null, TimeProvider? time = null)
    {
        ConfigureMetricsExport();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.Configuration.AddEnvironmentVariables("AIMASS__");
        if (overrides is not null)
        {
            builder.Configuration.AddInMemoryCollection(overrides);
        }
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });

        var server = builder.Configuration.GetSection(ServerOptions.Section).Get<ServerOptions>() ?? new ServerOptions();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(ListenAddress(server.Host), server.Port);
            k.AddServerHeader = false;
        });
        builder.Services.AddAiMassControlPlane(builder.Configuration, time ?? TimeProvider.System);

        var app = builder.Build();
        app.Use(ServerTiming);
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.MapOpenApi();
        app.MapMetrics();
        app.MapHealthApi();
        app.MapModelsApi();
        app.MapAdminApi();
        app.MapJobsApi();
        app.MapDeploymentsApi();
        app.MapStudiesApi();
        Deployments.DeploymentRouter.Map(app);
        return app;
    }

    private static int _metricsConfigured;

    /// <summary>
    /// /metrics publishes the process metrics and every .NET meter (the registry's, ASP.NET Core's, EF Core's) except
    /// the runtime's private diagnostics. prometheus-net's registry is process-wide, so this runs once per process.
    /// </summary>
    /// <summary>The address to listen on: an IP address, or <c>localhost</c> for 127.0.0.1.</summary>
    public static System.Net.IPAddress ListenAddress(string host) =>
        System.Net.IPAddress.TryParse(host == "localhost" ? "127.0.0.1" : host, out var address)
            ? address
            : throw new ArgumentException($"'{host}' is not an IP address to listen on (e.g. 127.0.0.1 or 0.0.0.0)");

    /// <summary>Starts exporting every meter to the Prometheus endpoint (once per process).</summary>
    internal static void ConfigureMetricsExport()
    {
        if (Interlocked.Exchange(ref _metricsConfigured, 1) == 0)
        {
            // The default adapter starts at the first scrape and would miss what happened before it: start our own now.
            Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressMeters = true });
            var defaultBuckets = new MeterAdapterOptions().ResolveHistogramBuckets;
            _ = MeterAdapter.StartListening(new MeterAdapterOptions
            {
                InstrumentFilterPredicate = instrument => !instrument.Meter.Name.StartsWith("Private.", StringComparison.Ordinal)
                    && instrument.Meter.Scope is not QuietMeterFactory,
                // The buckets an instrument advises (the exporter's own default is 0.01 … 167772 for every histogram).
                ResolveHistogramBuckets = instrument => instrument is System.Diagnostics.Metrics.Histogram<double> { Advice.HistogramBucketBoundaries: { } buckets }
                    ? [.. buckets]
                    : defaultBuckets(instrument),
            });
            ExportServingCounters();
        }
    }

    /// <summary>
    /// The model host's <c>nv_inference_*</c> counters as Prometheus counters, brought up to
    /// <see cref="AiMass.Serving.ServingMetrics.Snapshot"/> just before each collection.
    /// </summary>
    private static void ExportServingCounters()
    {
        string[] labels = ["model", "version"];
        var success = Metrics.CreateCounter("aimass_nv_inference_request_success", "Inference requests answered, by model and version.", labels);
        var failure = Metrics.CreateCounter("aimass_nv_inference_request_failure", "Inference requests failed, by model, version and reason.", [.. labels, "reason"]);
        var rows = Metrics.CreateCounter("aimass_nv_inference_count", "Rows (batch elements) inferred.", labels);
        var executions = Metrics.CreateCounter("aimass_nv_inference_exec_count", "Model executions (a batch counts once).", labels);
        var request = Metrics.CreateCounter("aimass_nv_inference_request_duration_us", "Cumulative time from receiving a request to its answer.", labels);
        var queue = Metrics.CreateCounter("aimass_nv_inference_queue_duration_us", "Cumulative time requests waited in the queue.", labels);
        var compute = Metrics.CreateCounter("aimass_nv_inference_compute_infer_duration_us", "Cumulative time of model executions.", labels);
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            foreach (var m in AiMass.Serving.ServingMetrics.Snapshot())
            {
                success.WithLabels(m.Model, m.Version).IncTo(m.Success);
                foreach (var (reason, count) in m.Failures)
                {
                    failure.WithLabels(m.Model, m.Version, reason).IncTo(count);
                }
                rows.WithLabels(m.Model, m.Version).IncTo(m.Rows);
                executions.WithLabels(m.Model, m.Version).IncTo(m.Executions);
                request.WithLabels(m.Model, m.Version).IncTo(m.Request.TotalMicroseconds);
                queue.WithLabels(m.Model, m.Version).IncTo(m.Queue.TotalMicroseconds);
                compute.WithLabels(m.Model, m.Version).IncTo(m.Compute.TotalMicroseconds);
            }
        });
    }

    /// <summary>
    /// Leaves the ASP.NET Core and Kestrel meters of one host (those its own meter factory creates) out of the export:
    /// the host's meter factory becomes one whose meters the exporter ignores. The model host does this: its requests
    /// are counted by the <c>nv_inference_*</c> instruments, and ASP.NET Core's per-request instruments (request
    /// duration, active requests, Kestrel's memory pool) would otherwise go through the exporter's listener several
    /// times on every inference. Call before the host is built.
    /// </summary>
    internal static void QuietHostMetrics(IServiceCollection services) =>
        services.AddSingleton<System.Diagnostics.Metrics.IMeterFactory, QuietMeterFactory>();

    /// <summary>A meter factory whose meters the Prometheus export leaves out (one meter per name and version, as the default's).</summary>
    private sealed class QuietMeterFactory : System.Diagnostics.Metrics.IMeterFactory
    {
        private readonly Dictionary<(string, string?), System.Diagnostics.Metrics.Meter> _meters = [];

        public System.Diagnostics.Metrics.Meter Create(System.Diagnostics.Metrics.MeterOptions options)
        {
            ArgumentNullException.ThrowIfNull(options);
            lock (_meters)
            {
                if (!_meters.TryGetValue((options.Name, options.Version), out var meter))
                {
                    options.Scope = this;
                    meter = new System.Diagnostics.Metrics.Meter(options);
                    _meters[(options.Name, options.Version)] = meter;
                }
                return meter;
            }
        }

        public void Dispose()
        {
            lock (_meters)
            {
                foreach (var meter in _meters.Values)
                {
                    meter.Dispose();
                }
                _meters.Clear();
            }
        }
    }

    /// <summary>
    /// Adds <c>app;dur=MS</c> (time until the response starts) to <c>Server-Timing</c> so clients and benchmarks see
    /// server-side latency. Appended after what is there: an answer routed from a deployment's replica keeps the
    /// replica's <c>queue</c>, <c>compute</c> and <c>total</c>.
    /// </summary>
    private static Task ServerTiming(HttpContext context, RequestDelegate next)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        context.Response.OnStarting(() =>
        {
            var ms = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var app = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"app;dur={ms:0.###}");
            var headers = context.Response.Headers;
            var before = headers["Server-Timing"].ToString();
            headers["Server-Timing"] = before.Length == 0 ? app : $"{before}, {app}";
            return Task.CompletedTask;
        });
        return next(context);
    }

    /// <summary>Registers options, the registry, the artifact store and the API plumbing.</summary>
    public static IServiceCollection AddAiMassControlPlane(this IServiceCollection services, IConfiguration configuration, TimeProvider time)
    {
        services.AddOptions<StorageOptions>().Bind(configuration.GetSection(StorageOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ServerOptions>().Bind(configuration.GetSection(ServerOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<RegistryOptions>().Bind(configuration.GetSection(RegistryOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton(time);
        services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();
        services.AddSingleton(sp => new ServerClock(sp.GetRequiredService<TimeProvider>().GetUtcNow()));
        services.AddSingleton(sp => DataDirectoryLock.Acquire(DataDirectory(sp)));
        services.AddDbContextFactory<RegistryDbContext>((sp, o) =>
        {
            var path = Path.Combine(DataDirectory(sp), RegistryBackup.DatabaseFile);
            o.UseSqlite(new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString())
                .AddInterceptors(new SqlitePragmas());
        });
        services.AddSingleton<IArtifactStore>(sp => new FileSystemArtifactStore(DataDirectory(sp), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IArtifactInspector, OnnxInspector>();
        services.AddMetrics();
        services.AddSingleton(sp => new RegistryMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.AddSingleton(sp =>
        {
            _ = sp.GetRequiredService<DataDirectoryLock>();
            return new ModelRegistry(
                sp.GetRequiredService<IDbContextFactory<RegistryDbContext>>(),
                sp.GetRequiredService<IArtifactStore>(),
                sp.GetServices<IArtifactInspector>(),
                sp.GetRequiredService<IOptions<RegistryOptions>>().Value,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<RegistryMetrics>());
        });
        services.AddHostedService<RegistryStartup>();
        services.AddOptions<JobOptions>().Bind(configuration.GetSection(JobOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddDbContextFactory<JobsDbContext>((sp, o) => JobsDbContext.Configure(o, Path.Combine(DataDirectory(sp), RegistryBackup.DatabaseFile)));
        services.AddOptions<SlurmOptions>().Bind(configuration.GetSection(SlurmOptions.Section));
        var backend = configuration["Execution:Backend"] ?? "local";
        switch (backend)
        {
            case "local":
                services.AddSingleton<IExecutor, LocalExecutor>(_ => new LocalExecutor());
                break;
            case "slurm":
                services.AddSingleton<IExecutor>(sp =>
                {
                    var options = sp.GetRequiredService<IOptions<SlurmOptions>>().Value;
                    var data = DataDirectory(sp);
                    return new SlurmExecutor(options, new SlurmProcessCommands(options), SlurmExecutor.DefaultTag(data), Path.Combine(data, "slurm"));
                });
                break;
            default:
                throw new InvalidOperationException($"Execution:Backend must be 'local' or 'slurm' (got '{backend}')");
        }
        services.AddSingleton(sp => new JobMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.AddSingleton(sp =>
        {
            _ = sp.GetRequiredService<DataDirectoryLock>();
            return new JobController(
                sp.GetRequiredService<IDbContextFactory<JobsDbContext>>(),
                sp.GetRequiredService<IExecutor>(),
                sp.GetRequiredService<IOptions<JobOptions>>().Value,
                DataDirectory(sp),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<JobMetrics>(),
                sp.GetRequiredService<ILogger<JobController>>());
        });
        services.AddHostedService<JobsStartup>();
        services.AddOptions<DeploymentOptions>().Bind(configuration.GetSection(DeploymentOptions.Section)).ValidateDataAnnotations().ValidateOnStart()
            .PostConfigure(o =>
            {
                if (o.ReplicaCommand.Count == 0)
                {
                    foreach (var part in OwnCommand())
                    {
                        o.ReplicaCommand.Add(part);
                    }
                }
            });
        services.AddSingleton<IReplicaProbe, Deployments.HttpReplicaProbe>();
        services.AddSingleton(sp => new DeploymentController(
            sp.GetRequiredService<IDbContextFactory<JobsDbContext>>(),
            sp.GetRequiredService<JobController>(),
            sp.GetRequiredService<ModelRegistry>(),
            sp.GetRequiredService<IReplicaProbe>(),
            sp.GetRequiredService<IOptions<DeploymentOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<DeploymentController>>()));
        services.AddHostedService<DeploymentsStartup>();
        services.AddOptions<StudyOptions>().Bind(configuration.GetSection(StudyOptions.Section)).ValidateDataAnnotations().ValidateOnStart()
            .PostConfigure(o =>
            {
                if (o.TrialCommand.Count == 0)
                {
                    foreach (var part in OwnCommand())
                    {
                        o.TrialCommand.Add(part);
                    }
                }
            });
        services.AddSingleton(sp => new StudyController(
            sp.GetRequiredService<IDbContextFactory<JobsDbContext>>(),
            sp.GetRequiredService<JobController>(),
            sp.GetRequiredService<ModelRegistry>(),
            sp.GetRequiredService<IOptions<StudyOptions>>().Value,
            DataDirectory(sp),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<StudyController>>()));
        services.AddHostedService<StudiesStartup>();
        services.AddHttpForwarder();
        services.AddSingleton<Deployments.DeploymentRouter>();
        services.ConfigureHttpJsonOptions(o => AiMassJson.Configure(o.SerializerOptions));
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            ctx.ProblemDetails.Extensions.TryAdd("code", ProblemExceptionHandler.CodeFor(ctx.ProblemDetails.Status));
        });
        services.AddExceptionHandler<ProblemExceptionHandler>();
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "AI Mass control plane API";
            document.Info.Version = Api.ThisAssembly.Version;
            document.Info.Description = "Model registry, artifacts, jobs, nodes, queues and administration of the AI Mass control plane. Errors are application/problem+json with a stable 'code'.";
            return Task.CompletedTask;
        }));
        return services;
    }

    /// <summary>
    /// Validates every option and takes the data directory lock before the host starts, so a bad setting or a busy
    /// data directory is reported as one clear error (<see cref="Microsoft.Extensions.Options.OptionsValidationException"/>
    /// or <see cref="IOException"/>) instead of a failed start.
    /// </summary>
    public static void Prepare(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        _ = app.Services.GetRequiredService<IOptions<StorageOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<ServerOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<RegistryOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<JobOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<DeploymentOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<StudyOptions>>().Value;
        _ = app.Services.GetRequiredService<DataDirectoryLock>();
    }

    /// <summary>The base address the started server listens on (resolves port 0).</summary>
    public static Uri GetListeningAddress(this WebApplication app) =>
        app.GetListeningAddresses() is { Count: > 0 } addresses ? addresses[0] : throw new InvalidOperationException("the server has not started");

    /// <summary>Every address the started server listens on, in the order they were configured (resolves port 0).</summary>
    public static IReadOnlyList<Uri> GetListeningAddresses(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        return addresses.Select(a => new Uri(a.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal))).ToList();
    }

    /// <summary>
    /// How to start this same <c>aimass</c> (a replica's job runs it with <c>serve</c>): the running program, with the
    /// entry assembly when the program is the <c>dotnet</c> host; empty when this process is not <c>aimass</c> (tests set
    /// <c>Deployments:ReplicaCommand</c>).
    /// </summary>
    private static IEnumerable<string> OwnCommand()
    {
        var entry = System.Reflection.Assembly.GetEntryAssembly();
        if (entry?.GetName().Name != "aimass" || Environment.ProcessPath is not { } program)
        {
            return [];
        }
        return Path.GetFileNameWithoutExtension(program) == "dotnet" ? [program, entry.Location] : [program];
    }

    /// <summary>The resolved data directory.</summary>
    public static string DataDirectory(IServiceProvider services) =>
        Path.GetFullPath(services.GetRequiredService<IOptions<StorageOptions>>().Value.DataDirectory);
}

/// <summary>When this control plane started.</summary>
internal sealed record ServerClock(DateTimeOffset StartedAt);

/// <summary>Creates the schema and removes stale temporary files before the server accepts requests.</summary>
internal sealed class RegistryStartup(ModelRegistry registry, IServiceProvider services, ILogger<RegistryStartup> logger) : Microsoft.Extensions.Hosting.IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var removed = await registry.InitializeAsync(cancellationToken);
        Log.Started(logger, AiMassServer.DataDirectory(services), removed);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
