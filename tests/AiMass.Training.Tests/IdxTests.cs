using System.Buffers.Binary;
using System.IO.Compression;
using AiMass.Training.Data;

namespace AiMass.Training.Tests;

public sealed class IdxTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aimass-idx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Images(int count, int rows, int cols)
    {
        var data = new byte[16 + count * rows * cols];
        data[2] = 0x08;
        data[3] = 3;
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(12), cols);
        for (var i = 16; i < data.Length; i++)
        {
            data[i] = (byte)(i * 7);
        }
        return data;
    }

    [Fact]
    public void Read_PlainAndGzip_GiveShapeAndValues()
    {
        var bytes = Images(3, 2, 4);
        var plain = Path.Combine(_dir, "images-idx3-ubyte");
        File.WriteAllBytes(plain, bytes);
        var gz = plain + ".gz";
        using (var file = File.Create(gz))
        using (var zip = new GZipStream(file, CompressionLevel.Fastest))
        {
            zip.Write(bytes);
        }
        foreach (var path in new[] { plain, gz })
        {
            var array = Idx.Read(path);
            Assert.Equal([3, 2, 4], array.Shape);
            Assert.Equal(3, array.Count);
            Assert.Equal(8, array.ItemSize);
            Assert.Equal((byte)(17 * 7), array.Values[1]);
        }
    }

    [Fact]
    public void Read_TruncatedOrForeignFiles_SayWhat()
    {
        var truncated = Path.Combine(_dir, "short");
        File.WriteAllBytes(truncated, Images(3, 2, 4)[..30]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => Idx.Read(truncated)).Message, StringComparison.Ordinal);
        var foreign = Path.Combine(_dir, "png");
        File.WriteAllBytes(foreign, [0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 0]);
        Assert.Contains("not IDX", Assert.Throws<InvalidDataException>(() => Idx.Read(foreign)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FashionMnist_FromDebiansPackage()
    {
        const string Root = "/usr/share/datasets/fashion-mnist";
        Assert.True(File.Exists(Path.Combine(Root, "t10k-labels-idx1-ubyte.gz")),
            $"Fashion-MNIST is missing from {Root}: ./test.sh installs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)");
        var images = Idx.Read(Path.Combine(Root, "t10k-images-idx3-ubyte.gz"));
        var labels = Idx.ReadLabels(Path.Combine(Root, "t10k-labels-idx1-ubyte.gz"));
        Assert.Equal([10_000, 28, 28], images.Shape);
        Assert.Equal(10_000, labels.Length);
        Assert.Equal(Enumerable.Range(0, 10), labels.Distinct().Order());
        Assert.InRange(images.Values.Max(), 250, 255);
    }
}
