using System.Text;

namespace AiMass.Serving.Tests;

/// <summary>The quick request reader takes only valid JSON and reads it exactly as the general reader does.</summary>
public sealed class OipFastReaderTests
{
    private static readonly string[] Requests =
    [
        """{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.24866858, -1.5e-3, 3E+2, 0]}]}""",
        """
        {"id": "r-1", "parameters": {"priority": 1, "binary_data_output": true},
         "inputs": [
           {"name": "a", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2.5], [3, -4e-300]]},
           {"name": "b", "shape": [3], "datatype": "INT64", "data": [1, -2, 9007199254740993]},
           {"name": "c", "shape": [2], "datatype": "BOOL", "data": [true, false]},
           {"name": "d", "shape": [1], "datatype": "UINT8", "data": 255},
           {"name": "e", "shape": [2], "datatype": "BYTES", "data": ["x", "h\u00e9"]},
           {"name": "f", "shape": [0], "datatype": "FP16", "data": []}
         ],
         "outputs": [{"name": "y", "parameters": {"binary_data": true}}, {"name": "z"}]}
        """,
        """{"inputs":[{"data":[1,2],"name":"late","datatype":"INT32","shape":[2]}],"id":7}""",
    ];

    [Fact]
    public void CommonRequests_AreReadQuickly_AndAsTheGeneralReaderReadsThem()
    {
        // Including data before its datatype (read as a JSON value, then converted) and a name with an escape.
        foreach (var text in Requests)
        {
            var json = Encoding.UTF8.GetBytes(text);
            var quick = OipFastReader.TryRead(json, default);
            Assert.NotNull(quick);
            AssertSame(OipCodec.ReadJson(json, default), quick);
        }
        // What it does not take is left to the general reader: escapes in names, fields the protocol does not define.
        Assert.Null(OipFastReader.TryRead("""{"inputs": [{"name": "\u0061", "shape": [1], "datatype": "FP32", "data": [1]}]}"""u8, default));
        Assert.Null(OipFastReader.TryRead("""{"inputs": [], "extra": 1}"""u8, default));
    }

    [Fact]
    public void MutatedRequests_AreNeverAcceptedWhereTheGeneralReaderRefusesThem()
    {
        var random = new Random(4242);
        const string Alphabet = "{}[],:\"\\ -+.eE0123456789tfnaluxs\n";
        var accepted = 0;
        for (var round = 0; round < 30_000; round++)
        {
            var bytes = Encoding.UTF8.GetBytes(Requests[random.Next(2)]).ToList();
            for (var m = random.Next(1, 3); m > 0; m--)
            {
                var at = random.Next(bytes.Count);
                switch (random.Next(3))
                {
                    case 0:
                        bytes.RemoveAt(at);
                        break;
                    case 1:
                        bytes.Insert(at, (byte)Alphabet[random.Next(Alphabet.Length)]);
                        break;
                    default:
                        bytes[at] = (byte)Alphabet[random.Next(Alphabet.Length)];
                        break;
                }
            }
            var json = bytes.ToArray();
            InferenceRequest? quick;
            try
            {
                quick = OipFastReader.TryRead(json, default);
            }
            catch (InferenceException)
            {
                // A valid request the codec refuses: the general reader must refuse it too.
                Assert.Throws<InferenceException>(() => OipCodec.ReadJson(json, default));
                continue;
            }
            if (quick is null)
            {
                continue;
            }
            accepted++;
            InferenceRequest general;
            try
            {
                general = OipCodec.ReadJson(json, default);
            }
            catch (Exception e) when (e is InferenceException or System.Text.Json.JsonException)
            {
                Assert.Fail($"the quick reader accepted what the general reader refuses ({e.Message}):\n{Encoding.UTF8.GetString(json)}");
                return;
            }
            AssertSame(general, quick);
        }
        Assert.InRange(accepted, 100, 30_000); // the mutations do reach the accepting paths
    }

    private static void AssertSame(InferenceRequest expected, InferenceRequest actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.Priority, actual.Priority);
        Assert.Equal(expected.BinaryOutputs, actual.BinaryOutputs);
        Assert.Equal(expected.Outputs, actual.Outputs);
        AssertSameInputs(expected, actual);
    }

    /// <summary>The two requests carry the same input tensors: names, datatypes, shapes and values.</summary>
    internal static void AssertSameInputs(InferenceRequest expected, InferenceRequest actual)
    {
        Assert.Equal(expected.Inputs.Count, actual.Inputs.Count);
        for (var i = 0; i < expected.Inputs.Count; i++)
        {
            Assert.Equal(expected.Inputs[i].Name, actual.Inputs[i].Name);
            Assert.Equal(expected.Inputs[i].DataType, actual.Inputs[i].DataType);
            Assert.Equal(expected.Inputs[i].Shape, actual.Inputs[i].Shape);
            Assert.Equal(expected.Inputs[i].Data, actual.Inputs[i].Data);
        }
    }
}
