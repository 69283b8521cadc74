using System.Globalization;

namespace AiMass.Simulation;

/// <summary>
/// One job of a Standard Workload Format trace (the Parallel Workloads Archive's 18 fields; -1 means unknown). Times
/// are in seconds, memory in kilobytes, as the format defines them.
/// </summary>
public sealed record SwfJob(
    long Number,
    long Submit,
    long Wait,
    long Runtime,
    long AllocatedProcessors,
    double AverageCpuTime,
    double UsedMemory,
    long RequestedProcessors,
    long RequestedTime,
    double RequestedMemory,
    long Status,
    long User,
    long Group,
    long Executable,
    long Queue,
    long Partition,
    long PrecedingJob,
    long ThinkTime)
{
    /// <summary>Processors the job needs: field 8 (requested), or field 5 (allocated) when 8 is unknown.</summary>
    public long Processors => RequestedProcessors > 0 ? RequestedProcessors : AllocatedProcessors;

    /// <summary>The user's run time estimate: field 9 (requested time), or field 4 (the run time) when 9 is unknown.</summary>
    public long Estimate => RequestedTime > 0 ? RequestedTime : Runtime;
}

/// <summary>A Standard Workload Format trace: its header comments and its jobs, in file order.</summary>
/// <param name="Header">The <c>; Key: Value</c> lines of the header (<c>MaxProcs</c>, <c>MaxNodes</c>, <c>UnixStartTime</c>, ...).</param>
/// <param name="Jobs">The jobs.</param>
public sealed record SwfTrace(IReadOnlyDictionary<string, string> Header, IReadOnlyList<SwfJob> Jobs)
{
    /// <summary>The header's <c>MaxProcs</c> (else <c>MaxNodes</c>), or null when it gives neither.</summary>
    public long? MaxProcessors =>
        HeaderNumber("MaxProcs") is { } procs and > 0 ? procs : HeaderNumber("MaxNodes") is { } nodes and > 0 ? nodes : null;

    private long? HeaderNumber(string key) =>
        Header.TryGetValue(key, out var text) && long.TryParse(text.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : null;
}

/// <summary>A workload trace (SWF, DL CSV/JSON) that cannot be read; says where (file and line, or item) and why.</summary>
public sealed class TraceFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public TraceFormatException(string source, int line, string message) : base($"{source}:{line.ToString(CultureInfo.InvariantCulture)}: {message}")
    {
        Source = source;
        Line = line;
    }

    /// <summary>Creates the exception.</summary>
    public TraceFormatException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public TraceFormatException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TraceFormatException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>The 1-based line number.</summary>
    public int Line { get; }
}

/// <summary>Reads Standard Workload Format traces (https://www.cs.huji.ac.il/labs/parallel/workload/swf.html).</summary>
public static class SwfReader
{
    private const int Fields = 18;

    /// <summary>Reads a trace file.</summary>
    public static SwfTrace ReadFile(string path)
    {
        using var reader = new StreamReader(path);
        return Read(reader, path);
    }

    /// <summary>
    /// Reads a trace: header lines <c>; Key: Value</c>, other comment lines (<c>;</c>) and blank lines are skipped; each
    /// other line must hold 18 numbers. A malformed line is an error naming its line number.
    /// </summary>
    public static SwfTrace Read(TextReader reader, string source = "trace")
    {
        ArgumentNullException.ThrowIfNull(reader);
        var header = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var jobs = new List<SwfJob>();
        var values = new double[Fields];
        var number = 0;
        while (reader.ReadLine() is { } line)
        {
            number++;
            var text = line.AsSpan().Trim();
            if (text.IsEmpty)
            {
                continue;
            }
            if (text[0] == ';')
            {
                var comment = text[1..].Trim();
                var colon = comment.IndexOf(':');
                if (colon > 0 && jobs.Count == 0)
                {
                    var key = comment[..colon].Trim().ToString();
                    if (key.Length > 0 && !key.Contains(' ', StringComparison.Ordinal))
                    {
                        header[key] = comment[(colon + 1)..].Trim().ToString();
                    }
                }
                continue;
            }
            var count = 0;
            foreach (var range in text.SplitAny(" \t"))
            {
                var field = text[range];
                if (field.IsEmpty)
                {
                    continue;
                }
                if (count == Fields)
                {
                    throw new TraceFormatException(source, number, $"more than {Fields} fields");
                }
                if (!double.TryParse(field, NumberStyles.Float, CultureInfo.InvariantCulture, out values[count]) || !double.IsFinite(values[count]))
                {
                    throw new TraceFormatException(source, number, $"field {count + 1} ('{field}') is not a number");
                }
                count++;
            }
            if (count != Fields)
            {
                throw new TraceFormatException(source, number, $"{count} fields where SWF has {Fields}");
            }
            for (var i = 0; i < Fields; i++)
            {
                if (values[i] < -1)
                {
                    throw new TraceFormatException(source, number, $"field {i + 1} is {values[i].ToString(CultureInfo.InvariantCulture)}: only -1 (unknown) may be negative");
                }
            }
            long L(int field) => (long)Math.Round(values[field - 1]);
            jobs.Add(new SwfJob(L(1), L(2), L(3), L(4), L(5), values[5], values[6], L(8), L(9), values[9], L(11), L(12), L(13), L(14), L(15), L(16), L(17), L(18)));
        }
        return new SwfTrace(header, jobs);
    }
}

/// <summary>SWF jobs as scenario jobs.</summary>
public static class SwfWorkload
{
    /// <summary>
    /// The runnable jobs of an SWF trace as scenario jobs: processors become CPU cores, the run time is the work, field 9
    /// the estimate, field 12 the user (<c>user7</c>); memory per core from <paramref name="defaults"/>.
    /// </summary>
    public static IReadOnlyList<SimJob> ToSimJobs(SwfTrace trace, WorkloadDefaults? defaults = null)
    {
        ArgumentNullException.ThrowIfNull(trace);
        defaults ??= new WorkloadDefaults();
        return trace.Jobs.Where(j => j.Processors > 0).Select(j => new SimJob(
            j.Number, TimeSpan.FromSeconds(Math.Max(0, j.Submit)), TimeSpan.FromSeconds(j.Runtime), 1,
            defaults.Resources(0, j.Processors * 1000, null))
        {
            User = j.User >= 0 ? "user" + j.User.ToString(CultureInfo.InvariantCulture) : "anonymous",
            Queue = defaults.Queue,
            Estimate = j.RequestedTime > 0 ? TimeSpan.FromSeconds(j.RequestedTime) : null,
            Preemptible = defaults.Preemptible,
            StageInBytes = defaults.StageInBytes,
            StageOutBytes = defaults.StageOutBytes,
        }).ToList();
    }
}
