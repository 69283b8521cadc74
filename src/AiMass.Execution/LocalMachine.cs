using System.Diagnostics;
using System.Globalization;
using AiMass.Resources;

namespace AiMass.Execution;

/// <summary>What this machine offers: CPUs and memory as .NET sees them (cgroup limits included), GPUs from nvidia-smi.</summary>
/// <param name="Capacity">CPUs, memory and GPUs.</param>
/// <param name="GpuModel">The model of the first GPU, if any.</param>
/// <param name="GpuMemoryBytes">Memory of the first GPU, if any.</param>
public sealed record LocalMachine(ResourceVector Capacity, string? GpuModel, long? GpuMemoryBytes)
{
    /// <summary>Looks at this machine; GPUs are counted only when <c>nvidia-smi</c> is installed and answers within 10 s.</summary>
    public static LocalMachine Describe()
    {
        var cpus = Environment.ProcessorCount * 1000L;
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var (gpus, model, gpuMemory) = NvidiaGpus();
        return new LocalMachine(new ResourceVector(cpus, memory, gpus), model, gpuMemory);
    }

    private static (int Count, string? Model, long? Memory) NvidiaGpus()
    {
        var path = Environment.GetEnvironmentVariable("PATH")?.Split(':').Select(d => Path.Combine(d, "nvidia-smi")).FirstOrDefault(File.Exists);
        if (path is null)
        {
            return (0, null, null);
        }
        try
        {
            var info = new ProcessStartInfo(path, "--query-gpu=name,memory.total --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(10_000) || process.ExitCode != 0)
            {
                return (0, null, null);
            }
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (lines.Length == 0)
            {
                return (0, null, null);
            }
            var first = lines[0].Split(',', StringSplitOptions.TrimEntries);
            long? mib = first.Length > 1 && long.TryParse(first[1], NumberStyles.None, CultureInfo.InvariantCulture, out var m) ? m << 20 : null;
            return (lines.Length, first[0], mib);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return (0, null, null);
        }
    }
}
