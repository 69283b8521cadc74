using System.Globalization;
using AiMass.TestSupport;

namespace AiMass.Bench.Registry;

internal static class Tools
{
    public static int Usage()
    {
        Console.Error.WriteLine("usage: AiMass.Bench.Registry transfer [SIZE_MIB] [RUNS] | list [VERSIONS] [PAGES] | register [COUNT] [BYTES] | all | make-model PATH [BYTES]");
        return 1;
    }

    /// <summary>Writes a linear ONNX model of about BYTES bytes (default: 4 inputs, 2 outputs).</summary>
    public static int MakeModel(string[] args)
    {
        if (args.Length < 1)
        {
            return Usage();
        }
        var bytes = args.Length > 1 ? OnnxModels.OfSize(int.Parse(args[1], CultureInfo.InvariantCulture)) : OnnxModels.Linear();
        File.WriteAllBytes(args[0], bytes);
        Console.WriteLine($"wrote {args[0]} ({bytes.Length} bytes)");
        return 0;
    }
}
