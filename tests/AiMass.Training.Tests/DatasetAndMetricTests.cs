using AiMass.Tensors;
using AiMass.Training.Data;

namespace AiMass.Training.Tests;

public sealed class DatasetAndMetricTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aimass-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Dataset Numbers(int count) =>
        Dataset.FromArrays(Enumerable.Range(0, count).Select(i => (float)i).ToArray(), [1], Enumerable.Range(0, count).Select(i => i % 3).ToArray());

    private static List<float> Values(IEnumerable<Batch> batches) => batches.SelectMany(b => b.Features.ToArray()).ToList();

    [Fact]
    public void Shuffling_is_a_permutation_that_depends_only_on_seed_and_epoch()
    {
        var data = Numbers(100).Batched(8).Shuffled(11);
        var epoch0 = Values(data.Batches(0));
        var epoch1 = Values(data.Batches(1));
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (float)i), epoch0.Order());
        Assert.NotEqual(epoch0, epoch1);
        Assert.Equal(epoch0, Values(data.Batches(0)));
        // Resuming at batch 5 gives exactly the rest of the epoch; prefetching changes nothing.
        Assert.Equal(epoch1.Skip(40), Values(data.Batches(1, skipBatches: 5)));
        Assert.Equal(epoch1, Values(data.Prefetched(3).Batches(1)));
        Assert.Equal(13, data.BatchesPerEpoch);
        Assert.Equal(12, data.Batched(8, dropRemainder: true).Batches().Count());
        var last = data.Batches().Last();
        Assert.Equal(4, last.Size);
        Assert.Equal(12, last.Index);
        Assert.Equal(4, last.Labels!.Classes!.Length);
    }

    [Fact]
    public void Normalisation_scales_then_standardises()
    {
        var data = Dataset.FromArrays([0, 255, 51, 102], [2]).Batched(2).Normalized(1f / 255, [0.5f], [0.25f]);
        var x = data.Batches().Single().Features.ToArray();
        Assert.Equal(-2f, x[0], 5);
        Assert.Equal(2f, x[1], 5);
        Assert.Equal(-1.2f, x[2], 5);
        Assert.Throws<ArgumentException>(() => data.Normalized(1, [1, 2, 3]));
    }

    [Fact]
    public void Csv_is_read_whole_or_streamed_with_the_same_rows_and_bad_cells_are_named()
    {
        var path = Path.Combine(_dir, "data.csv");
        File.WriteAllLines(path, ["a,b,label", .. Enumerable.Range(0, 50).Select(i => $"{i},{i * 2},{i % 2}")]);
        var options = new CsvOptions { LabelColumns = ["label"] };
        var whole = Dataset.FromCsv(path, options).Batched(7);
        var streamed = Dataset.StreamCsv(path, options).Batched(7);
        Assert.Equal(50, whole.Count);
        Assert.Null(streamed.Count);
        Assert.Equal([2], whole.FeatureShape);
        Assert.Equal(Values(whole.Batches()), Values(streamed.Batches()));
        Assert.Equal(whole.Batches().SelectMany(b => b.Labels!.Classes!), streamed.Batches().SelectMany(b => b.Labels!.Classes!));
        // A streamed shuffle (buffer of 8) still yields every row once, in another order.
        var shuffled = Values(streamed.Shuffled(3, buffer: 8).Batches());
        Assert.Equal(Values(whole.Batches()).Order(), shuffled.Order());
        Assert.NotEqual(Values(whole.Batches()), shuffled);
        Assert.Equal(whole.Digest, streamed.Digest);

        File.AppendAllLines(path, ["7,x,1"]);
        var error = Assert.Throws<InvalidDataException>(() => Dataset.FromCsv(path, options));
        Assert.Contains("data.csv:52: 'x' in column 2 is not a number", error.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<InvalidDataException>(() => Dataset.FromCsv(path, new CsvOptions { LabelColumns = ["target"] }));
        Assert.Contains("no column 'target' (columns: a, b, label)", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Regression_csv_gives_targets_and_error_metrics()
    {
        var path = Path.Combine(_dir, "reg.csv");
        File.WriteAllLines(path, ["x,y", "1,2", "2,4", "3,6"]);
        var data = Dataset.FromCsv(path, new CsvOptions { LabelColumns = ["y"], Regression = true }).Batched(3);
        var batch = data.Batches().Single();
        Assert.Equal(LabelKind.Values, data.LabelKind);
        Assert.Equal([2f, 4f, 6f], batch.Labels!.Values!.ToArray());
        var mae = Metrics.Mae();
        var rmse = Metrics.Rmse();
        var predictions = Tensor.FromArray([3f, 4f, 3f], 3, 1);
        mae.Update(predictions, batch.Labels);
        rmse.Update(predictions, batch.Labels);
        Assert.Equal(4.0 / 3, mae.Result(), 6);
        Assert.Equal(Math.Sqrt(10.0 / 3), rmse.Result(), 6);
        Assert.False(mae.HigherIsBetter);
    }

    [Fact]
    public void Classification_metrics_match_hand_computation()
    {
        // Binary with two logit columns: predicted = argmax. Labels 1,1,0,0,1; predicted 1,0,0,1,1.
        var logits = Tensor.FromArray([0, 1, 1, 0, 2, 0, 0, 3, -1, 1], 5, 2);
        var labels = new Labels([1, 1, 0, 0, 1], null);
        double Run(Func<IStreamingMetric> create)
        {
            var m = create();
            m.Update(Tensor.FromArray(logits.ToArray()[..6], 3, 2), new Labels(labels.Classes![..3], null));
            m.Update(Tensor.FromArray(logits.ToArray()[6..], 2, 2), new Labels(labels.Classes![3..], null));
            return m.Result();
        }
        Assert.Equal(0.6, Run(Metrics.Accuracy), 9);
        Assert.Equal(2.0 / 3, Run(Metrics.Precision), 9); // tp 2, fp 1
        Assert.Equal(2.0 / 3, Run(Metrics.Recall), 9); // tp 2, fn 1
        Assert.Equal(2.0 / 3, Run(Metrics.F1), 9);
        // Scores of class 1 (softmax): positives 0.73, 0.27, 0.88; negatives 0.12, 0.95 → 3 of 6 pairs ordered, no ties.
        Assert.Equal(0.5, Run(Metrics.Auc), 9);

        // One binary logit column: logit > 0 means class 1; AUC from the logit with a tie counted half.
        var single = Metrics.Auc();
        single.Update(Tensor.FromArray([2f, 1f, 1f, -1f], 4, 1), new Labels([1, 1, 0, 0], null));
        Assert.Equal((4 - 0.5) / 4, single.Result(), 9);

        // Three classes, macro averages: confusion rows (actual) 0:[2,0,0] 1:[1,1,0] 2:[0,0,1].
        var multi = Tensor.FromArray([5, 0, 0, 5, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 5], 5, 3);
        var m3 = new Labels([0, 0, 1, 1, 2], null);
        var precision = Metrics.Precision();
        precision.Update(multi, m3);
        Assert.Equal((2.0 / 3 + 1 + 1) / 3, precision.Result(), 9);
        var recall = Metrics.Recall();
        recall.Update(multi, m3);
        Assert.Equal((1 + 0.5 + 1) / 3, recall.Result(), 9);

        Assert.Throws<TrainingException>(() => Metrics.Accuracy().Update(multi, new Labels(null, Tensor.Zeros(5, 1))));
        Assert.Throws<ArgumentException>(() => Metrics.Create("acuracy"));
    }
}
