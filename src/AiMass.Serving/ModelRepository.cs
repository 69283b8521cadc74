using Microsoft.ML.OnnxRuntime;

namespace AiMass.Serving;

/// <summary>How one model is served.</summary>
public sealed record ModelConfig
{
    /// <summary>Dynamic batching (used when the model's first dimension is dynamic).</summary>
    public BatchingOptions Batching { get; init; } = new();

    /// <summary>ONNX Runtime threads.</summary>
    public ModelSessionOptions Session { get; init; } = new();

    /// <summary>Requests run on zeros before the model reports ready (0: none).</summary>
    public int WarmupRequests { get; init; } = 1;
}

/// <summary>
/// A model the repository knows how to (re)load by name: the versions its source offers now (a file: one; the
/// registry: every ready version with its aliases), how to download one, and which of them to serve.
/// </summary>
/// <param name="Name">The name it is served as.</param>
/// <param name="List">The versions available now, with their labels.</param>
/// <param name="Download">Fetches one version's ONNX file.</param>
/// <param name="Policy">Which versions to serve.</param>
/// <param name="Config">How they are served.</param>
public sealed record ModelSource(
    string Name,
    Func<CancellationToken, Task<IReadOnlyList<AvailableVersion>>> List,
    Func<string, CancellationToken, Task<byte[]>> Download,
    VersionPolicy Policy,
    ModelConfig Config)
{
    /// <summary>A source of one fixed ONNX file, served as version <paramref name="version"/>.</summary>
    public static ModelSource File(string name, string path, ModelConfig config, string version = "1") => new(
        name,
        _ => Task.FromResult<IReadOnlyList<AvailableVersion>>([new AvailableVersion(version, [])]),
        (_, ct) => System.IO.File.ReadAllBytesAsync(path, ct),
        new VersionPolicy.Latest(1),
        config);
}

/// <summary>An entry of the repository index (<c>POST /v2/repository/index</c>).</summary>
/// <param name="Name">Model name.</param>
/// <param name="Version">Loaded version, or null.</param>
/// <param name="State"><c>READY</c> or <c>UNAVAILABLE</c>.</param>
/// <param name="Reason">Why it is unavailable.</param>
public sealed record ModelIndexEntry(string Name, string? Version, string State, string Reason);

/// <summary>A model version loaded and ready to serve: its session and its batcher.</summary>
public sealed class LoadedModel : IAsyncDisposable
{
    private volatile IReadOnlyList<string> _labels;

    internal LoadedModel(ModelSession session, DynamicBatcher batcher, ModelConfig config, IReadOnlyList<string> labels)
    {
        Session = session;
        Batcher = batcher;
        Config = config;
        _labels = labels;
    }

    /// <summary>Labels (registry aliases such as <c>production</c>) this version answers to; they follow alias moves.</summary>
    public IReadOnlyList<string> Labels
    {
        get => _labels;
        internal set => _labels = value;
    }

    /// <summary>Model name.</summary>
    public string Name => Session.Name;

    /// <summary>Version.</summary>
    public string Version => Session.Version;

    /// <summary>The ONNX Runtime session.</summary>
    public ModelSession Session { get; }

    /// <summary>The request queue.</summary>
    public DynamicBatcher Batcher { get; }

    /// <summary>How it is served.</summary>
    public ModelConfig Config { get; }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await Batcher.DisposeAsync().ConfigureAwait(false);
        Session.Dispose();
    }
}

/// <summary>Gives memory freed by ONNX Runtime back to the operating system (glibc keeps freed heap pages otherwise).</summary>
internal static partial class NativeMemory
{
    public static void Release()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                _ = MallocTrim(0);
            }
            catch (EntryPointNotFoundException)
            {
                // Not glibc (musl): nothing to trim.
            }
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}

/// <summary>
/// The models a host serves, by name and version: load (with warm-up before the version is visible), unload (which
/// drains nothing: queued requests get 503 and the session's memory is released), and lookup of a version or the
/// newest one.
/// </summary>
public sealed class ModelRepository : IAsyncDisposable
{
    private readonly Dictionary<string, SortedDictionary<string, LoadedModel>> _models = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ModelSource> _sources = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _errors = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private readonly SemaphoreSlim _syncGate = new(1, 1);
    private readonly Dictionary<string, int> _loading = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    /// <summary>Creates an empty repository.</summary>
    public ModelRepository(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>Every loaded version.</summary>
    public IReadOnlyList<LoadedModel> Models
    {
        get
        {
            lock (_lock)
            {
                return _models.Values.SelectMany(v => v.Values).ToList();
            }
        }
    }

    /// <summary>Loads a version (replacing the same version if it was loaded) and returns it once warmed up.</summary>
    public async Task<LoadedModel> LoadAsync(string name, string version, byte[] onnx, ModelConfig? config = null, IReadOnlyList<string>? labels = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(version);
        config ??= new ModelConfig();
        // Building and warming a session holds a core for up to seconds: on the thread pool, never on the thread that
        // completed the caller's download (in a model host, with inline socket completions, a socket thread that other
        // connections wait on).
        var session = await Task.Run(() => LoadWarm(onnx, name, version, config)).ConfigureAwait(false);
        var model = new LoadedModel(session, new DynamicBatcher(session, config.Batching, _time), config, labels ?? []);
        LoadedModel? replaced = null;
        lock (_lock)
        {
            if (!_models.TryGetValue(name, out var versions))
            {
                _models[name] = versions = new SortedDictionary<string, LoadedModel>(VersionOrder.Instance);
            }
            versions.TryGetValue(version, out replaced);
            versions[version] = model;
        }
        if (replaced is not null)
        {
            await replaced.DisposeAsync().ConfigureAwait(false);
        }
        return model;
    }

    /// <summary>Remembers how to load <paramref name="source"/>'s model by name (the repository's load endpoint).</summary>
    public void Register(ModelSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_lock)
        {
            _sources[source.Name] = source;
        }
    }

    /// <summary>
    /// Loads a registered model's versions as its policy selects them now, from its source: versions newly selected are
    /// downloaded, loaded and warmed up first; then versions no longer selected are unloaded (so a rollover leaves no
    /// gap), and labels move with the registry's aliases. Returns the versions served, oldest first.
    /// </summary>
    public async Task<IReadOnlyList<LoadedModel>> LoadAsync(string name, CancellationToken cancellationToken = default)
    {
        ModelSource? source;
        lock (_lock)
        {
            _sources.TryGetValue(name, out source);
        }
        if (source is null)
        {
            throw new InferenceException(404, $"model {name} is not in this host's repository (known: {string.Join(", ", Index().Select(e => e.Name).Distinct())})");
        }
        lock (_lock)
        {
            _loading[name] = _loading.GetValueOrDefault(name) + 1;
        }
        await _syncGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var available = await source.List(cancellationToken).ConfigureAwait(false);
            var wanted = source.Policy.Select(available);
            if (wanted.Count == 0)
            {
                throw new InferenceException(404, $"no version of {name} matches the version policy {source.Policy} (available: {(available.Count == 0 ? "none" : string.Join(", ", available.Select(v => v.Version)))})");
            }
            var labels = available.ToDictionary(v => v.Version, v => v.Labels, StringComparer.Ordinal);
            var served = new List<LoadedModel>();
            foreach (var version in wanted)
            {
                if (Find(name, version) is { } loaded)
                {
                    loaded.Labels = labels[version];
                    served.Add(loaded);
                    continue;
                }
                var onnx = await source.Download(version, cancellationToken).ConfigureAwait(false);
                served.Add(await LoadAsync(name, version, onnx, source.Config, labels[version]).ConfigureAwait(false));
            }
            foreach (var other in Models.Where(m => m.Name == name && !wanted.Contains(m.Version, StringComparer.Ordinal)).ToList())
            {
                await UnloadAsync(name, other.Version).ConfigureAwait(false);
            }
            lock (_lock)
            {
                _errors.Remove(name);
            }
            return served;
        }
        catch (Exception e) when (e is InferenceException or IOException or HttpRequestException or OnnxRuntimeException)
        {
            lock (_lock)
            {
                _errors[name] = e.Message;
            }
            throw e as InferenceException ?? new InferenceException($"model {name} could not be loaded: {e.Message}", e);
        }
        finally
        {
            _syncGate.Release();
            lock (_lock)
            {
                if (--_loading[name] == 0)
                {
                    _loading.Remove(name);
                }
            }
        }
    }

    /// <summary>Whether a load of the model is under way (requests for it get 503 with Retry-After rather than 404).</summary>
    public bool IsLoading(string name)
    {
        lock (_lock)
        {
            return _loading.ContainsKey(name);
        }
    }

    /// <summary>
    /// Loads every registered model again (see <see cref="LoadAsync(string, CancellationToken)"/>) every
    /// <paramref name="interval"/> until <paramref name="cancellationToken"/> ends, so new versions and alias moves are
    /// picked up as TensorFlow Serving's file-system polling does. A failure keeps what is served and is reported to
    /// <paramref name="onError"/>.
    /// </summary>
    public async Task PollAsync(TimeSpan interval, Action<string, Exception> onError, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onError);
        using var timer = new PeriodicTimer(interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                List<string> names;
                lock (_lock)
                {
                    names = [.. _sources.Keys];
                }
                foreach (var name in names)
                {
                    try
                    {
                        await LoadAsync(name, cancellationToken).ConfigureAwait(false);
                    }
                    catch (InferenceException e)
                    {
                        onError(name, e);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Every registered or loaded model with its state.</summary>
    public IReadOnlyList<ModelIndexEntry> Index()
    {
        lock (_lock)
        {
            var entries = _models.Values.SelectMany(v => v.Values).Select(m => new ModelIndexEntry(m.Name, m.Version, "READY", "")).ToList();
            foreach (var name in _sources.Keys.Where(n => !_models.ContainsKey(n)))
            {
                entries.Add(new ModelIndexEntry(name, null, "UNAVAILABLE", _errors.GetValueOrDefault(name, "unloaded")));
            }
            return entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        }
    }

    private static ModelSession LoadWarm(byte[] onnx, string name, string version, ModelConfig config)
    {
        var session = ModelSession.Load(onnx, name, version, config.Session);
        try
        {
            for (var i = 0; i < config.WarmupRequests; i++)
            {
                session.Run(session.Inputs.Select(Zeros).ToList());
            }
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Unloads one version, or every version of the model; returns how many were unloaded.</summary>
    public async Task<int> UnloadAsync(string name, string? version = null)
    {
        List<LoadedModel> removed;
        lock (_lock)
        {
            if (!_models.TryGetValue(name, out var versions))
            {
                return 0;
            }
            removed = version is null ? versions.Values.ToList() : versions.TryGetValue(version, out var one) ? [one] : [];
            foreach (var m in removed)
            {
                versions.Remove(m.Version);
            }
            if (versions.Count == 0)
            {
                _models.Remove(name);
            }
        }
        foreach (var m in removed)
        {
            await m.DisposeAsync().ConfigureAwait(false);
        }
        if (removed.Count > 0)
        {
            // On this thread: trimmed from a thread-pool thread, glibc kept 16 of a 100 MB model's MB (the memory
            // benchmark: 82 % returned against 98 %).
            NativeMemory.Release();
        }
        return removed.Count;
    }

    /// <summary>A loaded version (the newest when <paramref name="version"/> is null), or null.</summary>
    public LoadedModel? Find(string name, string? version = null)
    {
        lock (_lock)
        {
            if (!_models.TryGetValue(name, out var versions) || versions.Count == 0)
            {
                return null;
            }
            return version is null ? versions.Values.Last() : versions.GetValueOrDefault(version);
        }
    }

    /// <summary>The loaded version of <paramref name="name"/> carrying <paramref name="label"/>, or null.</summary>
    public LoadedModel? FindByLabel(string name, string label)
    {
        lock (_lock)
        {
            return _models.TryGetValue(name, out var versions) ? versions.Values.LastOrDefault(m => m.Labels.Contains(label)) : null;
        }
    }

    /// <summary>Whether the model (any version) is loaded.</summary>
    public bool Contains(string name)
    {
        lock (_lock)
        {
            return _models.ContainsKey(name);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var m in Models)
        {
            await m.DisposeAsync().ConfigureAwait(false);
        }
        lock (_lock)
        {
            _models.Clear();
        }
        _syncGate.Dispose();
    }

    private static InferTensor Zeros(TensorMetadata input)
    {
        var shape = input.Shape.Select(d => d < 0 ? 1L : d).ToArray();
        var data = InferDataTypes.NewArray(input.DataType, (int)InferTensor.ElementCount(shape));
        if (data is string[] strings)
        {
            Array.Fill(strings, "");
        }
        return new InferTensor(input.Name, input.DataType, shape, data);
    }
}
