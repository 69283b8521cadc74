using AiMass.TestSupport;

namespace AiMass.Serving.Tests;

public sealed class RepositoryTests
{
    private static readonly AvailableVersion[] Versions =
    [
        new("1", []), new("2", ["staging"]), new("10", ["production"]), new("3", []),
    ];

    [Theory]
    [InlineData("latest", "10")]
    [InlineData("latest:2", "3,10")]
    [InlineData("latest:9", "1,2,3,10")]
    [InlineData("all", "1,2,3,10")]
    [InlineData("specific:2,10,77", "2,10")]
    [InlineData("alias:production", "10")]
    [InlineData("alias:nowhere", "")]
    public void Policies_select_versions_in_numeric_order(string policy, string expected) =>
        Assert.Equal(expected, string.Join(",", VersionPolicy.Parse(policy).Select(Versions)));

    [Theory]
    [InlineData("latest:0")]
    [InlineData("newest")]
    [InlineData("specific:")]
    [InlineData("all:3")]
    [InlineData("alias:")]
    public void Bad_policies_say_what_is_accepted(string policy)
    {
        var e = Assert.Throws<FormatException>(() => VersionPolicy.Parse(policy));
        Assert.Contains("latest, latest:N (N >= 1), all, specific:V1,V2 or alias:NAME", e.Message, StringComparison.Ordinal);
    }

    /// <summary>A registry stand-in whose versions and aliases the test changes.</summary>
    private sealed class FakeRegistry
    {
        public List<AvailableVersion> Available { get; } = [];

        public int Downloads { get; private set; }

        public ModelSource Source(string policy, ModelConfig? config = null) => new(
            "grid",
            _ => Task.FromResult<IReadOnlyList<AvailableVersion>>([.. Available]),
            (version, _) =>
            {
                Downloads++;
                return Task.FromResult(OnnxModels.Linear(4, 2, seed: int.Parse(version, System.Globalization.CultureInfo.InvariantCulture)));
            },
            VersionPolicy.Parse(policy),
            config ?? new ModelConfig());
    }

    private static float[] Infer(LoadedModel model) =>
        model.Session.Run([new InferTensor("X", InferDataType.Fp32, [1, 4], new float[] { 1, 2, 3, 4 })])[0].AsFloats();

    [Fact]
    public async Task Latest_two_follows_new_versions_and_unload_frees_the_old_session()
    {
        var registry = new FakeRegistry();
        registry.Available.AddRange([new("1", []), new("2", [])]);
        await using var repository = new ModelRepository();
        repository.Register(registry.Source("latest:2"));
        var first = await repository.LoadAsync("grid");
        Assert.Equal(["1", "2"], first.Select(m => m.Version));
        var v1 = repository.Find("grid", "1")!;

        registry.Available.Add(new("3", []));
        var second = await repository.LoadAsync("grid");
        Assert.Equal(["2", "3"], second.Select(m => m.Version));
        Assert.Equal(3, registry.Downloads); // version 2 was kept, not fetched again
        Assert.Null(repository.Find("grid", "1"));
        Assert.True(v1.Session.IsDisposed);
        var gone = Assert.Throws<InferenceException>(() => Infer(v1));
        Assert.Equal(503, gone.Status);
        Assert.Equal("3", repository.Find("grid")!.Version);
    }

    [Fact]
    public async Task An_alias_policy_follows_the_alias_and_labels_move_with_it()
    {
        var registry = new FakeRegistry();
        registry.Available.AddRange([new("1", ["production"]), new("2", [])]);
        await using var repository = new ModelRepository();
        repository.Register(registry.Source("alias:production"));
        Assert.Equal("1", Assert.Single(await repository.LoadAsync("grid")).Version);
        Assert.Equal("1", repository.FindByLabel("grid", "production")!.Version);

        registry.Available.Clear();
        registry.Available.AddRange([new("1", []), new("2", ["production"])]);
        var moved = Assert.Single(await repository.LoadAsync("grid"));
        Assert.Equal("2", moved.Version);
        Assert.Equal("2", repository.FindByLabel("grid", "production")!.Version);
        Assert.Null(repository.Find("grid", "1"));

        registry.Available.Clear();
        registry.Available.Add(new("2", []));
        var e = await Assert.ThrowsAsync<InferenceException>(() => repository.LoadAsync("grid"));
        Assert.Contains("no version of grid matches the version policy alias:production (available: 2)", e.Message, StringComparison.Ordinal);
        Assert.Equal("2", repository.Find("grid")!.Version); // what was served stays
    }

    [Fact]
    public async Task Specific_and_all_serve_exactly_those_versions_with_their_own_weights()
    {
        var registry = new FakeRegistry();
        registry.Available.AddRange([new("1", []), new("2", []), new("3", [])]);
        await using var repository = new ModelRepository();
        repository.Register(registry.Source("specific:1,3"));
        Assert.Equal(["1", "3"], (await repository.LoadAsync("grid")).Select(m => m.Version));
        Assert.NotEqual(Infer(repository.Find("grid", "1")!), Infer(repository.Find("grid", "3")!));

        await using var all = new ModelRepository();
        all.Register(registry.Source("all"));
        Assert.Equal(["1", "2", "3"], (await all.LoadAsync("grid")).Select(m => m.Version));
    }

    [Fact]
    public async Task Polling_picks_up_a_new_version()
    {
        var registry = new FakeRegistry();
        registry.Available.Add(new("1", []));
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var repository = new ModelRepository(time);
        repository.Register(registry.Source("latest"));
        await repository.LoadAsync("grid");
        using var stop = new CancellationTokenSource();
        var errors = new List<string>();
        var polling = repository.PollAsync(TimeSpan.FromSeconds(30), (name, e) => errors.Add(e.Message), stop.Token);
        registry.Available.Add(new("2", []));
        await Poll.UntilAsync(() =>
        {
            time.Advance(TimeSpan.FromSeconds(30));
            return Task.FromResult(repository.Find("grid")?.Version == "2");
        }, TimeSpan.FromSeconds(10), "the poll to load version 2");
        await stop.CancelAsync();
        await polling;
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Several_instances_run_batches_side_by_side_with_correct_results()
    {
        using var reference = ModelSession.Load(OnnxModels.Linear(4, 2, seed: 5), "grid", "5");
        await using var repository = new ModelRepository();
        var model = await repository.LoadAsync("grid", "5", OnnxModels.Linear(4, 2, seed: 5),
            new ModelConfig { Batching = new BatchingOptions { Instances = 3, MaxBatchSize = 4, MaxQueueDelay = TimeSpan.Zero } });
        var requests = Enumerable.Range(0, 200).Select(i => new InferenceRequest
        {
            Inputs = [new InferTensor("X", InferDataType.Fp32, [1, 4], new float[] { i, i + 1, i + 2, i + 3 })],
        }).ToList();
        var results = await Task.WhenAll(requests.Select(r => Task.Run(() => model.Batcher.InferAsync(r))));
        for (var i = 0; i < requests.Count; i++)
        {
            Assert.Equal(reference.Run(requests[i].Inputs)[0].AsFloats(), results[i][0].AsFloats());
        }
        Assert.Equal(200, model.Batcher.Inferences);
    }
}
