using System.Collections.Concurrent;
using System.Security.Cryptography;
using AiMass.Tensors;

namespace AiMass.Training.Data;

/// <summary>What a dataset's examples are labelled with.</summary>
public enum LabelKind
{
    /// <summary>No labels (prediction input).</summary>
    None,

    /// <summary>Integer class ids (classification).</summary>
    Classes,

    /// <summary>Real-valued targets (regression), <see cref="Dataset.TargetSize"/> per example.</summary>
    Values,
}

/// <summary>The labels of a batch: class ids, or targets of shape [n, targetSize].</summary>
/// <param name="Classes">Class ids when the dataset is labelled with classes.</param>
/// <param name="Values">Targets when the dataset is labelled with values.</param>
public sealed record Labels(int[]? Classes, Tensor? Values)
{
    /// <summary>Number of labelled examples.</summary>
    public int Count => Classes?.Length ?? (Values is { } v ? v.Shape[0] : 0);
}

/// <summary>One batch: features of shape [n, ...featureShape], its labels, and its place in the epoch.</summary>
public sealed record Batch(Tensor Features, Labels? Labels, int Epoch, long Index)
{
    /// <summary>Number of examples.</summary>
    public int Size => Features.Shape[0];
}

/// <summary>
/// An input pipeline: a source of examples (arrays in memory, IDX files, CSV read whole or streamed), and how it is
/// served — seeded shuffling, batching, normalisation, and prefetching on a background thread. Datasets are
/// immutable: <see cref="Batched"/>, <see cref="Shuffled"/>, <see cref="Normalized"/> and <see cref="Prefetched"/>
/// return a new one.
/// </summary>
/// <remarks>
/// An epoch's order depends only on the seed and the epoch number, so a run that resumes from a checkpoint at
/// (epoch, batch index) sees exactly the batches it would have seen without the interruption. In-memory sources are
/// shuffled by a full permutation; streamed sources through a shuffle buffer (as tf.data does), which keeps memory
/// bounded for data larger than memory.
/// </remarks>
public sealed class Dataset
{
    private readonly IExampleSource _source;

    private Dataset(IExampleSource source, int batchSize, bool dropRemainder, ulong? seed, int shuffleBuffer, int prefetch, float scale, float[]? mean, float[]? std)
    {
        _source = source;
        BatchSize = batchSize;
        DropRemainder = dropRemainder;
        ShuffleSeed = seed;
        ShuffleBuffer = shuffleBuffer;
        PrefetchDepth = prefetch;
        Scale = scale;
        Mean = mean;
        Std = std;
    }

    private Dataset(IExampleSource source) : this(source, 32, false, null, 0, 0, 1f, null, null)
    {
    }

    /// <summary>Shape of one example's features.</summary>
    public int[] FeatureShape => _source.FeatureShape;

    /// <summary>Values per example.</summary>
    public int FeatureSize => Shapes.Size(_source.FeatureShape);

    /// <summary>What the examples are labelled with.</summary>
    public LabelKind LabelKind => _source.LabelKind;

    /// <summary>Targets per example when <see cref="LabelKind"/> is <see cref="LabelKind.Values"/>.</summary>
    public int TargetSize => _source.TargetSize;

    /// <summary>Number of examples, when known before reading (streamed CSV: null).</summary>
    public long? Count => _source.Count;

    /// <summary>Examples per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether a last, smaller batch is dropped.</summary>
    public bool DropRemainder { get; }

    /// <summary>Seed of the shuffle, or null for the stored order.</summary>
    public ulong? ShuffleSeed { get; }

    /// <summary>Shuffle buffer of a streamed source (examples).</summary>
    public int ShuffleBuffer { get; }

    /// <summary>Batches prepared ahead on a background thread (0: none).</summary>
    public int PrefetchDepth { get; }

    /// <summary>Factor applied to every feature before normalisation.</summary>
    public float Scale { get; }

    /// <summary>Mean subtracted after scaling (one value, or one per feature).</summary>
    public float[]? Mean { get; }

    /// <summary>Standard deviation divided by after subtracting the mean.</summary>
    public float[]? Std { get; }

    /// <summary>Batches per epoch, when the number of examples is known.</summary>
    public long? BatchesPerEpoch => Count is { } n ? (DropRemainder ? n / BatchSize : (n + BatchSize - 1) / BatchSize) : null;

    /// <summary>A digest of the source's content (<c>sha256:…</c>), recorded as the dataset digest in lineage.</summary>
    public string Digest => _source.Digest;

    /// <summary>A short description of the source and the serving settings (kept in checkpoints).</summary>
    public string Describe() =>
        $"{_source.Describe()}; batch {BatchSize}{(DropRemainder ? " drop-remainder" : "")}; shuffle {(ShuffleSeed is { } s ? s.ToString(System.Globalization.CultureInfo.InvariantCulture) : "off")}";

    /// <summary>Examples held in memory: features row-major ([count, ...featureShape]) and optional labels.</summary>
    public static Dataset FromArrays(float[] features, int[] featureShape, int[]? classes = null, float[]? targets = null, int targetSize = 1, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(featureShape);
        return new Dataset(new ArraySource(features, featureShape, classes, targets, targetSize, name ?? "arrays"));
    }

    /// <summary>Images and labels from IDX files (MNIST, Fashion-MNIST), plain or gzip: features of shape [rows, columns] as raw pixel values.</summary>
    public static Dataset FromIdx(string imagesPath, string? labelsPath = null)
    {
        var images = Idx.Read(imagesPath);
        if (images.Shape.Length < 2)
        {
            throw new InvalidDataException($"{imagesPath}: IDX images need at least two dimensions, got {images.Shape.Length}");
        }
        int[]? labels = null;
        if (labelsPath is not null)
        {
            labels = Idx.ReadLabels(labelsPath);
            if (labels.Length != images.Count)
            {
                throw new InvalidDataException($"{labelsPath} has {labels.Length} labels but {imagesPath} has {images.Count} images");
            }
        }
        return new Dataset(new ArraySource(images.Values, images.Shape[1..], labels, null, 1, Path.GetFileName(imagesPath)) { Files = labelsPath is null ? [imagesPath] : [imagesPath, labelsPath] });
    }

    /// <summary>A CSV file read whole into memory.</summary>
    public static Dataset FromCsv(string path, CsvOptions? options = null)
    {
        var csv = new CsvSource(path, options ?? new CsvOptions());
        var features = new List<float>();
        var classes = new List<int>();
        var targets = new List<float>();
        foreach (var (f, c, t) in csv.Rows())
        {
            features.AddRange(f);
            if (csv.LabelKind == LabelKind.Classes)
            {
                classes.Add(c);
            }
            else if (t is not null)
            {
                targets.AddRange(t);
            }
        }
        return new Dataset(new ArraySource(features.ToArray(), csv.FeatureShape, csv.LabelKind == LabelKind.Classes ? classes.ToArray() : null,
            csv.LabelKind == LabelKind.Values ? targets.ToArray() : null, csv.TargetSize, Path.GetFileName(path)) { Files = [path] });
    }

    /// <summary>A CSV file read row by row in every epoch, for data larger than memory.</summary>
    public static Dataset StreamCsv(string path, CsvOptions? options = null) => new(new CsvSource(path, options ?? new CsvOptions()));

    /// <summary>Served in batches of <paramref name="size"/>.</summary>
    public Dataset Batched(int size, bool dropRemainder = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        return new(_source, size, dropRemainder, ShuffleSeed, ShuffleBuffer, PrefetchDepth, Scale, Mean, Std);
    }

    /// <summary>Shuffled anew every epoch from <paramref name="seed"/>; a streamed source shuffles within <paramref name="buffer"/> examples.</summary>
    public Dataset Shuffled(ulong seed, int buffer = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buffer, 1);
        return new(_source, BatchSize, DropRemainder, seed, buffer, PrefetchDepth, Scale, Mean, Std);
    }

    /// <summary>Features become <c>(x * scale - mean) / std</c>; mean and std have one value or one per feature.</summary>
    public Dataset Normalized(float scale, float[]? mean = null, float[]? std = null)
    {
        foreach (var (what, values) in new[] { ("mean", mean), ("std", std) })
        {
            if (values is not null && values.Length != 1 && values.Length != FeatureSize)
            {
                throw new ArgumentException($"{what} needs 1 or {FeatureSize} values (one per feature), got {values.Length}");
            }
        }
        if (std is not null && std.Any(s => !(s > 0)))
        {
            throw new ArgumentException("std must be positive");
        }
        return new(_source, BatchSize, DropRemainder, ShuffleSeed, ShuffleBuffer, PrefetchDepth, scale, mean, std);
    }

    /// <summary>Prepares up to <paramref name="batches"/> batches ahead on a background thread.</summary>
    public Dataset Prefetched(int batches = 2)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batches);
        return new(_source, BatchSize, DropRemainder, ShuffleSeed, ShuffleBuffer, batches, Scale, Mean, Std);
    }

    /// <summary>The first <paramref name="count"/> examples (in stored order) as an in-memory dataset.</summary>
    public Dataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var n = FeatureSize;
        var features = new List<float>();
        var classes = new List<int>();
        var targets = new List<float>();
        foreach (var (f, c, t) in _source.Examples(null, 0).Take(count))
        {
            features.AddRange(f);
            classes.Add(c);
            if (t is not null)
            {
                targets.AddRange(t);
            }
        }
        var source = new ArraySource(features.ToArray(), FeatureShape, LabelKind == LabelKind.Classes ? classes.ToArray() : null,
            LabelKind == LabelKind.Values ? targets.ToArray() : null, TargetSize, $"first {features.Count / n} of {_source.Describe()}");
        return new(source, BatchSize, DropRemainder, ShuffleSeed, ShuffleBuffer, PrefetchDepth, Scale, Mean, Std);
    }

    /// <summary>The batches of one epoch, skipping the first <paramref name="skipBatches"/> (to resume mid-epoch).</summary>
    public IEnumerable<Batch> Batches(int epoch = 0, long skipBatches = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfNegative(skipBatches);
        var batches = Produce(epoch, skipBatches);
        return PrefetchDepth > 0 ? Prefetch(batches, PrefetchDepth) : batches;
    }

    private IEnumerable<Batch> Produce(int epoch, long skipBatches)
    {
        var n = FeatureSize;
        var seed = ShuffleSeed is { } s ? s ^ (0x9E3779B97F4A7C15UL * (ulong)(epoch + 1)) : (ulong?)null;
        var skipExamples = skipBatches * BatchSize;
        using var examples = _source.Examples(seed, ShuffleBuffer).GetEnumerator();
        for (long i = 0; i < skipExamples && examples.MoveNext(); i++)
        {
        }
        var index = skipBatches;
        while (true)
        {
            var features = new float[BatchSize * n];
            var classes = LabelKind == LabelKind.Classes ? new int[BatchSize] : null;
            var targets = LabelKind == LabelKind.Values ? new float[BatchSize * TargetSize] : null;
            var count = 0;
            while (count < BatchSize && examples.MoveNext())
            {
                var (f, c, t) = examples.Current;
                Transform(f, features.AsSpan(count * n, n));
                if (classes is not null)
                {
                    classes[count] = c;
                }
                t?.CopyTo(targets.AsSpan(count * TargetSize, TargetSize));
                count++;
            }
            if (count == 0 || (count < BatchSize && DropRemainder))
            {
                yield break;
            }
            if (count < BatchSize)
            {
                Array.Resize(ref features, count * n);
                if (classes is not null)
                {
                    Array.Resize(ref classes, count);
                }
                if (targets is not null)
                {
                    Array.Resize(ref targets, count * TargetSize);
                }
            }
            Labels? labels = LabelKind switch
            {
                LabelKind.Classes => new Labels(classes, null),
                LabelKind.Values => new Labels(null, Tensor.FromArray(targets!, count, TargetSize)),
                _ => null,
            };
            yield return new Batch(Tensor.FromArray(features, [count, .. FeatureShape]), labels, epoch, index++);
            if (count < BatchSize)
            {
                yield break;
            }
        }
    }

    private void Transform(ReadOnlySpan<float> from, Span<float> to)
    {
        for (var i = 0; i < to.Length; i++)
        {
            var v = from[i] * Scale;
            if (Mean is { } m)
            {
                v -= m.Length == 1 ? m[0] : m[i];
            }
            if (Std is { } s)
            {
                v /= s.Length == 1 ? s[0] : s[i];
            }
            to[i] = v;
        }
    }

    private static IEnumerable<Batch> Prefetch(IEnumerable<Batch> batches, int depth)
    {
        using var queue = new BlockingCollection<Batch>(depth);
        using var stop = new CancellationTokenSource();
        Exception? failure = null;
        var producer = new Thread(() =>
        {
            try
            {
                foreach (var batch in batches)
                {
                    queue.Add(batch, stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
#pragma warning disable CA1031 // the producer's failure is rethrown on the consumer's thread
            catch (Exception e)
            {
                failure = e;
            }
#pragma warning restore CA1031
            finally
            {
                queue.CompleteAdding();
            }
        })
        { IsBackground = true, Name = "aimass-prefetch" };
        producer.Start();
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable())
            {
                yield return batch;
            }
            if (failure is not null)
            {
                throw new InvalidDataException($"the input pipeline failed: {failure.Message}", failure);
            }
        }
        finally
        {
            stop.Cancel();
            producer.Join();
        }
    }

    internal interface IExampleSource
    {
        int[] FeatureShape { get; }

        LabelKind LabelKind { get; }

        int TargetSize { get; }

        long? Count { get; }

        string Digest { get; }

        string Describe();

        /// <summary>Examples as (features, class, targets); the spans stay valid until the next one.</summary>
        IEnumerable<(float[] Features, int Class, float[]? Targets)> Examples(ulong? shuffleSeed, int shuffleBuffer);
    }

    private static string DigestOfFiles(IEnumerable<string> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        foreach (var file in files)
        {
            using var stream = File.OpenRead(file);
            int read;
            while ((read = stream.Read(buffer)) > 0)
            {
                sha.AppendData(buffer, 0, read);
            }
        }
        return "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private sealed class ArraySource : IExampleSource
    {
        private readonly float[] _features;
        private readonly int[]? _classes;
        private readonly float[]? _targets;
        private readonly string _name;
        private string? _digest;

        public ArraySource(float[] features, int[] featureShape, int[]? classes, float[]? targets, int targetSize, string name)
        {
            if (classes is not null && targets is not null)
            {
                throw new ArgumentException("a dataset has classes or targets, not both");
            }
            var size = Shapes.Size(featureShape);
            if (size < 1 || features.Length % size != 0)
            {
                throw new ArgumentException($"{features.Length} feature values do not make whole examples of shape {Shapes.Format(featureShape)}");
            }
            var count = features.Length / size;
            if (classes is not null && classes.Length != count)
            {
                throw new ArgumentException($"{count} examples but {classes.Length} class labels");
            }
            if (classes is not null && classes.FirstOrDefault(c => c < 0) is var bad && bad < 0)
            {
                throw new ArgumentException($"class labels must be non-negative, found {bad}");
            }
            ArgumentOutOfRangeException.ThrowIfLessThan(targetSize, 1);
            if (targets is not null && targets.Length != count * targetSize)
            {
                throw new ArgumentException($"{count} examples need {count * targetSize} target values, got {targets.Length}");
            }
            _features = features;
            FeatureShape = (int[])featureShape.Clone();
            _classes = classes;
            _targets = targets;
            TargetSize = targetSize;
            Count = count;
            _name = name;
        }

        public IReadOnlyList<string> Files { get; init; } = [];

        public int[] FeatureShape { get; }

        public LabelKind LabelKind => _classes is not null ? LabelKind.Classes : _targets is not null ? LabelKind.Values : LabelKind.None;

        public int TargetSize { get; }

        public long? Count { get; }

        public string Digest => _digest ??= Files.Count > 0 ? DigestOfFiles(Files) : DigestOfArrays();

        public string Describe() => $"{_name} ({Count} examples of {Shapes.Format(FeatureShape)})";

        public IEnumerable<(float[] Features, int Class, float[]? Targets)> Examples(ulong? shuffleSeed, int shuffleBuffer)
        {
            var count = (int)Count!.Value;
            var order = Enumerable.Range(0, count).ToArray();
            if (shuffleSeed is { } seed)
            {
                new CheckpointableRandom(seed).Shuffle(order);
            }
            var size = _features.Length / Math.Max(1, count);
            var features = new float[size];
            var targets = _targets is null ? null : new float[TargetSize];
            foreach (var i in order)
            {
                Array.Copy(_features, (long)i * size, features, 0, size);
                if (targets is not null)
                {
                    Array.Copy(_targets!, (long)i * TargetSize, targets, 0, TargetSize);
                }
                yield return (features, _classes?[i] ?? 0, targets);
            }
        }

        private string DigestOfArrays()
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_features.AsSpan()));
            if (_classes is not null)
            {
                sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_classes.AsSpan()));
            }
            if (_targets is not null)
            {
                sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_targets.AsSpan()));
            }
            return "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
        }
    }

    private sealed class CsvSource : IExampleSource
    {
        private readonly string _path;
        private readonly CsvOptions _options;
        private readonly int[] _featureColumns;
        private readonly int[] _labelColumns;
        private string? _digest;

        public CsvSource(string path, CsvOptions options)
        {
            ArgumentNullException.ThrowIfNull(path);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"CSV file {path} does not exist", path);
            }
            _path = path;
            _options = options;
            using var reader = new StreamReader(path);
            var first = reader.ReadLine() ?? throw new InvalidDataException($"{path} is empty");
            var cells = Split(first);
            string[] names = options.HasHeader ? cells : cells.Select((_, i) => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            int Column(string name) => Array.IndexOf(names, name) is var i and >= 0
                ? i
                : throw new InvalidDataException($"{path}: no column '{name}' (columns: {string.Join(", ", names)})");
            _labelColumns = options.LabelColumns.Select(Column).ToArray();
            _featureColumns = options.FeatureColumns is { Count: > 0 } chosen
                ? chosen.Select(Column).ToArray()
                : Enumerable.Range(0, names.Length).Except(_labelColumns).ToArray();
            if (_featureColumns.Length == 0)
            {
                throw new InvalidDataException($"{path}: no feature columns left besides the label");
            }
            LabelKind = _labelColumns.Length == 0 ? LabelKind.None : options.Regression ? LabelKind.Values : LabelKind.Classes;
            if (LabelKind == LabelKind.Classes && _labelColumns.Length != 1)
            {
                throw new InvalidDataException($"{path}: classification takes one label column, got {_labelColumns.Length}");
            }
            FeatureShape = [_featureColumns.Length];
            TargetSize = Math.Max(1, _labelColumns.Length);
        }

        public int[] FeatureShape { get; }

        public LabelKind LabelKind { get; }

        public int TargetSize { get; }

        public long? Count => null;

        public string Digest => _digest ??= DigestOfFiles([_path]);

        public string Describe() => $"{Path.GetFileName(_path)} (CSV, {FeatureShape[0]} features)";

        public IEnumerable<(float[] Features, int Class, float[]? Targets)> Rows()
        {
            using var reader = new StreamReader(_path);
            var line = 0;
            if (_options.HasHeader)
            {
                reader.ReadLine();
                line++;
            }
            string? text;
            while ((text = reader.ReadLine()) is not null)
            {
                line++;
                if (text.Length == 0)
                {
                    continue;
                }
                var cells = Split(text);
                var features = new float[_featureColumns.Length];
                for (var i = 0; i < features.Length; i++)
                {
                    features[i] = Number(cells, _featureColumns[i], line);
                }
                var targets = LabelKind == LabelKind.Values ? _labelColumns.Select(c => Number(cells, c, line)).ToArray() : null;
                var cls = 0;
                if (LabelKind == LabelKind.Classes)
                {
                    var v = Number(cells, _labelColumns[0], line);
                    if (v < 0 || v != MathF.Floor(v))
                    {
                        throw new InvalidDataException($"{_path}:{line}: class label '{cells[_labelColumns[0]]}' in column {_labelColumns[0] + 1} is not a non-negative integer");
                    }
                    cls = (int)v;
                }
                yield return (features, cls, targets);
            }
        }

        public IEnumerable<(float[] Features, int Class, float[]? Targets)> Examples(ulong? shuffleSeed, int shuffleBuffer)
        {
            if (shuffleSeed is not { } seed)
            {
                foreach (var row in Rows())
                {
                    yield return row;
                }
                yield break;
            }
            // A shuffle buffer: each row read replaces a random one of the buffer, which is emitted.
            var random = new CheckpointableRandom(seed);
            var buffer = new List<(float[], int, float[]?)>(Math.Min(shuffleBuffer, 1 << 16));
            foreach (var row in Rows())
            {
                if (buffer.Count < shuffleBuffer)
                {
                    buffer.Add(row);
                    continue;
                }
                var k = random.Next(buffer.Count);
                yield return buffer[k];
                buffer[k] = row;
            }
            random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(buffer));
            foreach (var row in buffer)
            {
                yield return row;
            }
        }

        private float Number(string[] cells, int column, int line)
        {
            if (column >= cells.Length)
            {
                throw new InvalidDataException($"{_path}:{line}: {cells.Length} cells, column {column + 1} is missing");
            }
            return float.TryParse(cells[column], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v)
                ? v
                : throw new InvalidDataException($"{_path}:{line}: '{cells[column]}' in column {column + 1} is not a number");
        }

        private string[] Split(string line) => line.Split(_options.Delimiter).Select(c => c.Trim().Trim('"')).ToArray();
    }
}

/// <summary>How a CSV file is read.</summary>
public sealed record CsvOptions
{
    /// <summary>Whether the first line names the columns (default true).</summary>
    public bool HasHeader { get; init; } = true;

    /// <summary>Cell separator.</summary>
    public char Delimiter { get; init; } = ',';

    /// <summary>Label columns by name (or 0-based index as text without a header); empty for unlabelled data.</summary>
    public IReadOnlyList<string> LabelColumns { get; init; } = [];

    /// <summary>Feature columns; empty means every column that is not a label.</summary>
    public IReadOnlyList<string>? FeatureColumns { get; init; }

    /// <summary>Labels are real-valued targets (regression) rather than class ids.</summary>
    public bool Regression { get; init; }
}
