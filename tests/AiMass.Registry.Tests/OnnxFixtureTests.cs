using System.Diagnostics;
using AiMass.TestSupport;

namespace AiMass.Registry.Tests;

/// <summary>The ONNX files the tests and the examples use are valid for the reference implementation, not only for ONNX Runtime.</summary>
public sealed class OnnxFixtureTests
{
    [Theory]
    [InlineData(4, 2)]
    [InlineData(300, 200)]
    public async Task GeneratedModels_PassOnnxChecker(int inputs, int outputs)
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("m.onnx");
        await File.WriteAllBytesAsync(path, OnnxModels.Linear(inputs, outputs));

        var (code, output) = await RunPythonAsync(
            "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); " +
            "print([i.name for i in m.graph.input], [o.name for o in m.graph.output])", path);

        Assert.True(code == 0, output);
        Assert.Contains("['X'] ['Y']", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExampleModel_IsTheGeneratedLinearModel()
    {
        var example = Path.Combine(RepoRoot(), "examples", "models", "linear.onnx");

        Assert.Equal(OnnxModels.Linear(), await File.ReadAllBytesAsync(example));
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AiMass.slnx")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (AiMass.slnx) above " + AppContext.BaseDirectory);
    }

    private static async Task<(int Code, string Output)> RunPythonAsync(string script, params string[] args)
    {
        const string python = "/usr/bin/python3";
        Assert.True(File.Exists(python), $"{python} is missing: ./test.sh installs python3-onnx (Debian) for this test");
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var output = await stdout + await stderr;
        if (output.Contains("No module named 'onnx'", StringComparison.Ordinal))
        {
            Assert.Fail("python3-onnx is not installed: ./test.sh installs it (apt-get install python3-onnx)");
        }
        return (process.ExitCode, output);
    }
}
