using AiMass.Tensors;
using AiMass.Training.Data;

namespace AiMass.Training;

/// <summary>
/// A metric accumulated over the batches of one evaluation: the estimator creates a fresh one per evaluation,
/// feeds it every batch's predictions and labels, and reads <see cref="Result"/> at the end.
/// </summary>
public interface IStreamingMetric
{
    /// <summary>Name under which the result is reported (<c>accuracy</c>, <c>f1</c>…).</summary>
    string Name { get; }

    /// <summary>Whether larger values are better (used by early stopping and the best-model exporter).</summary>
    bool HigherIsBetter { get; }

    /// <summary>Adds one batch: predictions [n, k] (logits for classification) and the batch's labels.</summary>
    void Update(Tensor predictions, Labels labels);

    /// <summary>The value over every batch so far.</summary>
    double Result();
}

/// <summary>Built-in evaluation metrics. Classification metrics take logits [n, k] (k = 1: a binary logit).</summary>
public static class Metrics
{
    /// <summary>Names of the built-in metrics, for specs and <see cref="Create"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = ["accuracy", "precision", "recall", "f1", "auc", "mae", "rmse"];

    /// <summary>Fraction of examples whose arg-max class (or logit &gt; 0 for one column) equals the label.</summary>
    public static Func<IStreamingMetric> Accuracy { get; } = () => new ConfusionMetric("accuracy", ConfusionMetric.Kind.Accuracy);

    /// <summary>Precision: binary for one or two columns (class 1 positive), else macro-averaged over classes.</summary>
    public static Func<IStreamingMetric> Precision { get; } = () => new ConfusionMetric("precision", ConfusionMetric.Kind.Precision);

    /// <summary>Recall, averaged like <see cref="Precision"/>.</summary>
    public static Func<IStreamingMetric> Recall { get; } = () => new ConfusionMetric("recall", ConfusionMetric.Kind.Recall);

    /// <summary>F1 (harmonic mean of precision and recall), averaged like <see cref="Precision"/>.</summary>
    public static Func<IStreamingMetric> F1 { get; } = () => new ConfusionMetric("f1", ConfusionMetric.Kind.F1);

    /// <summary>Area under the ROC curve (exact, ties counted half): binary, or one-vs-rest macro average over classes.</summary>
    public static Func<IStreamingMetric> Auc { get; } = () => new AucMetric();

    /// <summary>Mean absolute error of regression predictions.</summary>
    public static Func<IStreamingMetric> Mae { get; } = () => new ErrorMetric("mae", squared: false);

    /// <summary>Root mean squared error of regression predictions.</summary>
    public static Func<IStreamingMetric> Rmse { get; } = () => new ErrorMetric("rmse", squared: true);

    /// <summary>A built-in metric by name.</summary>
    public static Func<IStreamingMetric> Create(string name) => name switch
    {
        "accuracy" => Accuracy,
        "precision" => Precision,
        "recall" => Recall,
        "f1" => F1,
        "auc" => Auc,
        "mae" => Mae,
        "rmse" => Rmse,
        _ => throw new ArgumentException($"unknown metric '{name}' (known: {string.Join(", ", Names)})", nameof(name)),
    };

    /// <summary>Whether a larger value of the named metric is better (<c>loss</c>, <c>mae</c>, <c>rmse</c>: no).</summary>
    public static bool IsHigherBetter(string name) => name is not ("loss" or "mae" or "rmse" or "mse");

    internal static int Columns(Tensor predictions) => predictions.Rank == 1 ? 1 : predictions.Length / predictions.Shape[0];

    private static int[] RequireClasses(Labels labels, string metric) =>
        labels.Classes ?? throw new TrainingException($"metric '{metric}' needs class labels; this dataset has {(labels.Values is null ? "none" : "real-valued targets")}");

    private sealed class ConfusionMetric(string name, ConfusionMetric.Kind kind) : IStreamingMetric
    {
        public enum Kind
        {
            Accuracy,
            Precision,
            Recall,
            F1,
        }

        private long[,]? _confusion; // [actual, predicted]
        private int _classes;

        public string Name => name;

        public bool HigherIsBetter => true;

        public void Update(Tensor predictions, Labels labels)
        {
            var classes = RequireClasses(labels, name);
            var k = Columns(predictions);
            var width = Math.Max(2, k);
            if (_confusion is null || _classes < width)
            {
                var grown = new long[width, width];
                for (var a = 0; a < _classes; a++)
                {
                    for (var p = 0; p < _classes; p++)
                    {
                        grown[a, p] = _confusion![a, p];
                    }
                }
                (_confusion, _classes) = (grown, width);
            }
            var values = predictions.Span;
            for (var i = 0; i < classes.Length; i++)
            {
                var row = values.Slice(i * k, k);
                var predicted = k == 1 ? (row[0] > 0 ? 1 : 0) : ArgMax(row);
                if (classes[i] >= _classes)
                {
                    throw new TrainingException($"label {classes[i]} is outside the model's {_classes} classes");
                }
                _confusion[classes[i], predicted]++;
            }
        }

        public double Result()
        {
            if (_confusion is null)
            {
                return double.NaN;
            }
            long total = 0, correct = 0;
            for (var a = 0; a < _classes; a++)
            {
                for (var p = 0; p < _classes; p++)
                {
                    total += _confusion[a, p];
                    correct += a == p ? _confusion[a, p] : 0;
                }
            }
            if (kind == Kind.Accuracy)
            {
                return total == 0 ? double.NaN : correct / (double)total;
            }
            // Binary problems score the positive class 1; multi-class ones average over the classes (macro).
            var positives = _classes == 2 ? [1] : Enumerable.Range(0, _classes).ToArray();
            return positives.Average(c =>
            {
                long tp = _confusion[c, c], fp = 0, fn = 0;
                for (var o = 0; o < _classes; o++)
                {
                    fp += o == c ? 0 : _confusion[o, c];
                    fn += o == c ? 0 : _confusion[c, o];
                }
                var precision = tp + fp == 0 ? 0 : tp / (double)(tp + fp);
                var recall = tp + fn == 0 ? 0 : tp / (double)(tp + fn);
                return kind switch
                {
                    Kind.Precision => precision,
                    Kind.Recall => recall,
                    _ => precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall),
                };
            });
        }
    }

    private sealed class AucMetric : IStreamingMetric
    {
        private readonly List<float[]> _scores = [];
        private readonly List<int> _labels = [];
        private int _k;

        public string Name => "auc";

        public bool HigherIsBetter => true;

        public void Update(Tensor predictions, Labels labels)
        {
            var classes = RequireClasses(labels, Name);
            _k = Columns(predictions);
            var values = predictions.Span;
            for (var i = 0; i < classes.Length; i++)
            {
                var row = values.Slice(i * _k, _k).ToArray();
                if (_k > 1)
                {
                    // Softmax, so that one-vs-rest scores are comparable across examples.
                    var max = row.Max();
                    var sum = 0f;
                    for (var j = 0; j < row.Length; j++)
                    {
                        sum += row[j] = MathF.Exp(row[j] - max);
                    }
                    for (var j = 0; j < row.Length; j++)
                    {
                        row[j] /= sum;
                    }
                }
                _scores.Add(row);
                _labels.Add(classes[i]);
            }
        }

        public double Result()
        {
            if (_labels.Count == 0)
            {
                return double.NaN;
            }
            if (_k <= 2)
            {
                return BinaryAuc(_scores.Select(s => s[_k == 1 ? 0 : 1]).ToArray(), _labels.Select(l => l == 1).ToArray());
            }
            var aucs = Enumerable.Range(0, _k)
                .Select(c => BinaryAuc(_scores.Select(s => s[c]).ToArray(), _labels.Select(l => l == c).ToArray()))
                .Where(a => !double.IsNaN(a))
                .ToList();
            return aucs.Count == 0 ? double.NaN : aucs.Average();
        }

        /// <summary>Mann-Whitney U over ranks (ties get their average rank).</summary>
        private static double BinaryAuc(float[] scores, bool[] positive)
        {
            var order = Enumerable.Range(0, scores.Length).OrderBy(i => scores[i]).ToArray();
            double rankSum = 0;
            long positives = positive.LongCount(p => p);
            long negatives = positive.Length - positives;
            if (positives == 0 || negatives == 0)
            {
                return double.NaN;
            }
            for (var i = 0; i < order.Length;)
            {
                var j = i;
                while (j + 1 < order.Length && scores[order[j + 1]] == scores[order[i]])
                {
                    j++;
                }
                var rank = (i + j) / 2.0 + 1;
                for (var t = i; t <= j; t++)
                {
                    rankSum += positive[order[t]] ? rank : 0;
                }
                i = j + 1;
            }
            return (rankSum - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
        }
    }

    private sealed class ErrorMetric(string name, bool squared) : IStreamingMetric
    {
        private double _sum;
        private long _count;

        public string Name => name;

        public bool HigherIsBetter => false;

        public void Update(Tensor predictions, Labels labels)
        {
            var targets = labels.Values
                ?? throw new TrainingException($"metric '{name}' needs real-valued targets; this dataset has {(labels.Classes is null ? "none" : "class labels")}");
            if (targets.Length != predictions.Length)
            {
                throw new TrainingException($"metric '{name}': {predictions.Length} predictions for {targets.Length} targets (shapes {Shapes.Format(predictions.Shape)} and {Shapes.Format(targets.Shape)})");
            }
            var p = predictions.Span;
            var t = targets.Span;
            for (var i = 0; i < p.Length; i++)
            {
                var d = (double)p[i] - t[i];
                _sum += squared ? d * d : Math.Abs(d);
            }
            _count += p.Length;
        }

        public double Result() => _count == 0 ? double.NaN : squared ? Math.Sqrt(_sum / _count) : _sum / _count;
    }

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }
        return best;
    }
}
