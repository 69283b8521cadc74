namespace AiMass.Training.Tests;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aimass-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Checkpoint Sample(long step) => new()
    {
        Step = step,
        Epoch = 2,
        InputPosition = 17,
        Model = new Dictionary<string, float[]> { ["0.weight"] = [1, 2, 3, step], ["0.bias"] = [0.5f] },
        Optimizer = new Dictionary<string, float[]> { ["0.weight.exp_avg"] = [0.1f, 0.2f, 0.3f, 0.4f] },
        Random = new Dictionary<string, ulong[]> { ["shuffle"] = [1, 2, 3, ulong.MaxValue] },
        Metadata = new Dictionary<string, string> { ["loss"] = "0.25" },
    };

    [Fact]
    public void SaveAndLoad_RoundTripsEverything_AndKeepsTheNewestK()
    {
        var store = new CheckpointStore(_dir, keepLast: 2);
        foreach (var step in new long[] { 100, 200, 300 })
        {
            store.Save(Sample(step));
        }
        Assert.Equal(["ckpt-0000000200.aimass", "ckpt-0000000300.aimass"], store.List().Select(Path.GetFileName));
        var (checkpoint, path, skipped) = store.LoadLatest();
        Assert.Empty(skipped);
        Assert.EndsWith("ckpt-0000000300.aimass", path, StringComparison.Ordinal);
        Assert.Equal(300, checkpoint!.Step);
        Assert.Equal(2, checkpoint.Epoch);
        Assert.Equal(17, checkpoint.InputPosition);
        Assert.Equal([1f, 2, 3, 300], checkpoint.Model["0.weight"]);
        Assert.Equal([0.1f, 0.2f, 0.3f, 0.4f], checkpoint.Optimizer["0.weight.exp_avg"]);
        Assert.Equal([1UL, 2, 3, ulong.MaxValue], checkpoint.Random["shuffle"]);
        Assert.Equal("0.25", checkpoint.Metadata["loss"]);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void LoadLatest_SkipsTruncatedAndDamagedFiles_WithTheReason()
    {
        var store = new CheckpointStore(_dir, keepLast: 5);
        store.Save(Sample(100));
        var second = store.Save(Sample(200));
        var third = store.Save(Sample(300));
        var bytes = File.ReadAllBytes(third);
        File.WriteAllBytes(third, bytes[..(bytes.Length / 2)]);        // truncated by a crash
        var damaged = File.ReadAllBytes(second);
        damaged[damaged.Length / 2] ^= 0xFF;                            // a flipped bit
        File.WriteAllBytes(second, damaged);

        var (checkpoint, _, skipped) = store.LoadLatest();
        Assert.Equal(100, checkpoint!.Step);
        Assert.Equal(2, skipped.Count);
        Assert.All(skipped, s => Assert.Contains("SHA-256 does not match", s, StringComparison.Ordinal));
        Assert.Contains(skipped, s => s.StartsWith("ckpt-0000000300.aimass", StringComparison.Ordinal));
    }

    [Fact]
    public void CheckpointableRandom_RestoredState_ContinuesTheSameSequence()
    {
        var random = new CheckpointableRandom(42);
        _ = Enumerable.Range(0, 10).Select(_ => random.Next(100)).ToArray();
        var state = random.State;
        var expected = Enumerable.Range(0, 20).Select(_ => random.NextDouble()).ToArray();
        var restored = new CheckpointableRandom(7) { State = state };
        Assert.Equal(expected, Enumerable.Range(0, 20).Select(_ => restored.NextDouble()));
        Assert.All(Enumerable.Range(0, 1000).Select(_ => random.Next(10)), v => Assert.InRange(v, 0, 9));
        Assert.NotEqual(new CheckpointableRandom(1).NextUInt64(), new CheckpointableRandom(2).NextUInt64());
    }
}
