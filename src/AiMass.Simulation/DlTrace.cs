using System.Globalization;
using System.Text;
using System.Text.Json;
using AiMass.Resources;

namespace AiMass.Simulation;

/// <summary>
/// Reads deep-learning job traces: a CSV file with a header line, a JSON array of job objects (or <c>{"jobs": [...]}</c>),
/// or Microsoft's Philly <c>cluster_job_log</c> JSON. Columns are matched by name, with the names of the public
/// Philly and Alibaba PAI traces accepted as aliases (docs/simulator.md lists them). Times are seconds, or timestamps
/// (made relative to the earliest submission).
/// </summary>
public static class DlTraceReader
{
    private static readonly string[] IdNames = ["job_id", "jobid", "id", "job_name", "name"];
    private static readonly string[] SubmitNames = ["submit_time", "submitted_time", "submit", "creation_time", "arrival_time"];
    private static readonly string[] DurationNames = ["duration", "run_time", "runtime", "duration_seconds"];
    private static readonly string[] StartNames = ["start_time", "scheduled_time"];
    private static readonly string[] EndNames = ["end_time", "deletion_time", "finish_time"];
    private static readonly string[] GpuNames = ["num_gpus", "gpus", "num_gpu", "gpu_num", "gpu"];
    private static readonly string[] CpuNames = ["num_cpus", "cpus", "cpu", "cpu_num"];
    private static readonly string[] MemoryNames = ["memory", "mem"];
    private static readonly string[] UserNames = ["user", "user_name", "username"];
    private static readonly string[] QueueNames = ["queue", "vc", "virtual_cluster"];
    private static readonly string[] GpuModelNames = ["gpu_model", "gpu_type", "gpu_spec"];
    private static readonly string[] TaskNames = ["tasks", "num_tasks", "num_workers", "workers"];
    private static readonly string[] EstimateNames = ["estimate", "walltime", "requested_time"];
    private static readonly string[] StageInNames = ["stage_in_bytes", "input_bytes"];
    private static readonly string[] StageOutNames = ["stage_out_bytes", "output_bytes"];
    private static readonly string[] CommNames = ["comm_bandwidth"];

    /// <summary>Reads a trace file; the format follows the extension (<c>.csv</c>, <c>.json</c>).</summary>
    public static IReadOnlyList<SimJob> ReadFile(string path, WorkloadDefaults? defaults = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var text = File.ReadAllText(path);
        return Path.GetExtension(path).Equals(".json", StringComparison.OrdinalIgnoreCase)
            ? ReadJson(text, defaults, path)
            : ReadCsv(new StringReader(text), defaults, path);
    }

    /// <summary>Reads a CSV trace: a header line naming the columns, then one job per line.</summary>
    public static IReadOnlyList<SimJob> ReadCsv(TextReader reader, WorkloadDefaults? defaults = null, string source = "trace")
    {
        ArgumentNullException.ThrowIfNull(reader);
        var lineNumber = 0;
        string[]? header = null;
        var rows = new List<Row>();
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#'))
            {
                continue;
            }
            var cells = SplitCsv(line, source, lineNumber);
            if (header is null)
            {
                header = cells.Select(c => c.Trim().ToLowerInvariant()).ToArray();
                continue;
            }
            if (cells.Count != header.Length)
            {
                throw new TraceFormatException(source, lineNumber, $"{cells.Count} columns where the header has {header.Length}");
            }
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < header.Length; i++)
            {
                values[header[i]] = cells[i].Trim();
            }
            rows.Add(new Row(lineNumber, values));
        }
        if (header is null)
        {
            throw new TraceFormatException(source, 0, "the trace is empty: it needs a header line naming its columns");
        }
        RequireColumn(header, IdNames, "the job id", source);
        RequireColumn(header, SubmitNames, "the submission time", source);
        if (!header.Any(DurationNames.Contains) && !(header.Any(StartNames.Contains) && header.Any(EndNames.Contains)))
        {
            throw new TraceFormatException(source, 1, $"no column gives the run time: name one {string.Join(" or ", DurationNames)}, or give {StartNames[0]} and {EndNames[0]}");
        }
        return Build(rows, defaults ?? new WorkloadDefaults(), source);
    }

    /// <summary>Reads a JSON trace: an array of job objects, <c>{"jobs": [...]}</c>, or Philly's <c>cluster_job_log</c>.</summary>
    public static IReadOnlyList<SimJob> ReadJson(string json, WorkloadDefaults? defaults = null, string source = "trace")
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new TraceFormatException(source, (int)(e.LineNumber ?? 0) + 1, "not valid JSON: " + e.Message);
        }
        using (document)
        {
            var array = document.RootElement;
            if (array.ValueKind == JsonValueKind.Object && array.TryGetProperty("jobs", out var jobs))
            {
                array = jobs;
            }
            if (array.ValueKind != JsonValueKind.Array)
            {
                throw new TraceFormatException(source, 1, "a JSON trace is an array of jobs, or an object with a \"jobs\" array");
            }
            var rows = new List<Row>();
            var index = 0;
            foreach (var item in array.EnumerateArray())
            {
                index++;
                if (item.ValueKind != JsonValueKind.Object)
                {
                    throw new TraceFormatException(source, index, $"job {index} is not a JSON object");
                }
                rows.Add(item.TryGetProperty("attempts", out var attempts) ? PhillyRow(item, attempts, index, source) : FlatRow(item, index));
            }
            return Build(rows.Where(r => r.Values.Count > 0).ToList(), defaults ?? new WorkloadDefaults(), source, itemNumbers: true);
        }
    }

    /// <summary>Writes jobs as a CSV trace this reader reads back (the columns docs/simulator.md documents).</summary>
    public static void WriteCsv(TextWriter writer, IEnumerable<SimJob> jobs)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(jobs);
        writer.Write("job_id,name,submit_time,duration,num_gpus,num_cpus,memory,tasks,user,queue,gpu_model,estimate,priority,preemptible,stage_in_bytes,stage_out_bytes,comm_bandwidth\n");
        foreach (var j in jobs)
        {
            var model = j.NodeSelector.TryGetValue("gpu_model", out var m) ? m : "";
            writer.Write(string.Create(CultureInfo.InvariantCulture,
                $"{j.Id},{CsvText.Quote(j.Name ?? "")},{Seconds(j.Submit)},{Seconds(j.Duration)},{j.Gpus},{j.CpuMillis / 1000.0:0.###},{j.PerTask.MemoryBytes * j.Tasks},{j.Tasks},{CsvText.Quote(j.User)},{CsvText.Quote(j.Queue)},{CsvText.Quote(model)},{(j.Estimate is { } e ? Seconds(e) : "")},{j.Priority},{(j.Preemptible ? "true" : "false")},{j.StageInBytes},{j.StageOutBytes},{j.CommBandwidth:0.###}\n"));
        }
    }

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);


    private sealed record Row(int Line, Dictionary<string, string> Values);

    private static Row FlatRow(JsonElement item, int index)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in item.EnumerateObject())
        {
            values[p.Name.ToLowerInvariant()] = p.Value.ValueKind switch
            {
                JsonValueKind.String => p.Value.GetString()!,
                JsonValueKind.Null => "",
                _ => p.Value.GetRawText(),
            };
        }
        return new Row(index, values);
    }

    /// <summary>
    /// A Philly job: <c>jobid</c>, <c>user</c>, <c>vc</c>, <c>submitted_time</c>, and <c>attempts</c> with start and end
    /// times and the GPUs of each machine. Its run time is from the first attempt's start to the last attempt's end
    /// (the usual reading of the trace); its GPUs are those of its first attempt. Jobs that never ran are left out.
    /// </summary>
    private static Row PhillyRow(JsonElement item, JsonElement attempts, int index, string source)
    {
        string? Text(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s && s != "None" ? s : null;
        if (attempts.ValueKind != JsonValueKind.Array)
        {
            throw new TraceFormatException(source, index, $"job {index}: \"attempts\" must be an array");
        }
        var list = attempts.EnumerateArray().ToList();
        var start = list.Select(a => Text(a, "start_time")).FirstOrDefault(s => s is not null);
        var end = list.Select(a => Text(a, "end_time")).LastOrDefault(s => s is not null);
        if (start is null || end is null)
        {
            return new Row(index, []);
        }
        var gpus = 0;
        if (list[0].TryGetProperty("detail", out var detail) && detail.ValueKind == JsonValueKind.Array)
        {
            foreach (var machine in detail.EnumerateArray())
            {
                if (machine.TryGetProperty("gpus", out var g) && g.ValueKind == JsonValueKind.Array)
                {
                    gpus += g.GetArrayLength();
                }
            }
        }
        return new Row(index, new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["jobid"] = Text(item, "jobid") ?? index.ToString(CultureInfo.InvariantCulture),
            ["user"] = Text(item, "user") ?? "anonymous",
            ["vc"] = Text(item, "vc") ?? "",
            ["submitted_time"] = Text(item, "submitted_time") ?? start,
            ["start_time"] = start,
            ["end_time"] = end,
            ["num_gpus"] = gpus.ToString(CultureInfo.InvariantCulture),
        });
    }

    private static void RequireColumn(string[] header, string[] names, string what, string source)
    {
        if (!header.Any(names.Contains))
        {
            throw new TraceFormatException(source, 1, $"no column gives {what}: name one {string.Join(", ", names)}");
        }
    }

    private static List<SimJob> Build(List<Row> rows, WorkloadDefaults defaults, string source, bool itemNumbers = false)
    {
        TraceFormatException Bad(Row r, string message) => new(source, r.Line, itemNumbers ? $"job {r.Line}: {message}" : message);
        // Times are seconds, or timestamps made relative to the earliest submission.
        var parsed = new List<(Row Row, double Submit, double Duration)>(rows.Count);
        DateTimeOffset? origin = null;
        var stamps = new List<(int Index, DateTimeOffset Submit)>();
        foreach (var row in rows)
        {
            var submitText = Get(row, SubmitNames) ?? throw Bad(row, "the submission time is empty");
            double submit;
            if (double.TryParse(submitText, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && double.IsFinite(s))
            {
                submit = s;
            }
            else if (TryTimestamp(submitText, out var stamp))
            {
                stamps.Add((parsed.Count, stamp));
                origin = origin is null || stamp < origin ? stamp : origin;
                submit = double.NaN;
            }
            else
            {
                throw Bad(row, $"submission time '{submitText}' is neither seconds nor a timestamp (yyyy-MM-dd HH:mm:ss or ISO 8601)");
            }
            parsed.Add((row, submit, Duration(row, Bad)));
        }
        foreach (var (index, stamp) in stamps)
        {
            parsed[index] = parsed[index] with { Submit = (stamp - origin!.Value).TotalSeconds };
        }
        var jobs = new List<SimJob>(parsed.Count);
        var ids = new HashSet<long>();
        var next = 1L;
        foreach (var (row, submit, duration) in parsed)
        {
            var idText = Get(row, IdNames) ?? throw Bad(row, "the job id is empty");
            var numeric = long.TryParse(idText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id);
            if (!numeric)
            {
                while (ids.Contains(next))
                {
                    next++;
                }
                id = next;
            }
            if (!ids.Add(id))
            {
                throw Bad(row, $"job id {idText} appears more than once");
            }
            if (submit < 0)
            {
                throw Bad(row, $"submission time {submit.ToString(CultureInfo.InvariantCulture)} is negative");
            }
            var gpus = Number(row, GpuNames, "GPUs", Bad) is { } g ? (long)Math.Round(g) : 0;
            long? cpu = Number(row, CpuNames, "CPUs", Bad) is { } c ? (long)Math.Round(c * 1000)
                : Number(row, ["cpu_milli"], "CPU millicores", Bad) is { } cm ? (long)Math.Round(cm) : null;
            long? memory = null;
            if (Get(row, MemoryNames) is { } memoryText)
            {
                memory = Quantity.TryParseBytes(memoryText, out var bytes, out var error) ? bytes : throw Bad(row, $"memory: {error}");
            }
            else if (Number(row, ["memory_mib"], "memory (MiB)", Bad) is { } mib)
            {
                memory = (long)Math.Round(mib * (1 << 20));
            }
            var tasks = Number(row, TaskNames, "tasks", Bad) is { } t ? (int)t : 1;
            if (tasks < 1)
            {
                throw Bad(row, $"tasks must be at least 1 (got {tasks})");
            }
            var total = defaults.Resources(gpus, cpu, memory);
            if (total.Gpus % tasks != 0 || total.CpuMillis % tasks != 0)
            {
                throw Bad(row, $"{total.Gpus} GPUs and {total.CpuMillis / 1000.0} CPUs cannot be split into {tasks} equal tasks");
            }
            var perTask = new ResourceVector(total.CpuMillis / tasks, total.MemoryBytes / tasks, total.Gpus / tasks);
            var selector = Get(row, GpuModelNames) is { Length: > 0 } model && gpus > 0
                ? new Dictionary<string, string>(StringComparer.Ordinal) { ["gpu_model"] = model }
                : new Dictionary<string, string>(StringComparer.Ordinal);
            var estimate = Number(row, EstimateNames, "estimate", Bad) is { } e && e > 0 ? TimeSpan.FromSeconds(e) : (TimeSpan?)null;
            var priority = Get(row, ["priority"]) is { } pt
                ? int.TryParse(pt, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var pv) ? pv : throw Bad(row, $"priority: '{pt}' is not a whole number")
                : 0;
            jobs.Add(new SimJob(id, TimeSpan.FromSeconds(submit), TimeSpan.FromSeconds(duration), tasks, perTask)
            {
                Name = numeric ? (Get(row, ["name", "job_name"]) is { } named && named != idText ? named : null) : idText,
                User = Get(row, UserNames) is { Length: > 0 } user ? user : "anonymous",
                Queue = Get(row, QueueNames) is { Length: > 0 } queue ? queue : defaults.Queue,
                Priority = priority,
                Estimate = estimate,
                NodeSelector = selector,
                Preemptible = Get(row, ["preemptible"]) is { } p2 ? (bool.TryParse(p2, out var yes) ? yes : throw Bad(row, $"preemptible: '{p2}' is not true or false")) : defaults.Preemptible,
                StageInBytes = Number(row, StageInNames, "stage-in bytes", Bad) is { } si ? (long)si : defaults.StageInBytes,
                StageOutBytes = Number(row, StageOutNames, "stage-out bytes", Bad) is { } so ? (long)so : defaults.StageOutBytes,
                CommBandwidth = Number(row, CommNames, "comm bandwidth (bytes/s)", Bad) ?? defaults.CommBandwidth,
            });
        }
        return jobs;
    }

    private static double Duration(Row row, Func<Row, string, TraceFormatException> bad)
    {
        if (Get(row, DurationNames) is { } text)
        {
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)
                ? d : throw bad(row, $"run time '{text}' is not a number of seconds");
        }
        var startText = Get(row, StartNames);
        var endText = Get(row, EndNames);
        if (startText is null || endText is null)
        {
            throw bad(row, "the run time is missing (no duration, or no start and end time)");
        }
        if (double.TryParse(startText, NumberStyles.Float, CultureInfo.InvariantCulture, out var s)
            && double.TryParse(endText, NumberStyles.Float, CultureInfo.InvariantCulture, out var e))
        {
            return e - s;
        }
        if (TryTimestamp(startText, out var start) && TryTimestamp(endText, out var end))
        {
            return (end - start).TotalSeconds;
        }
        throw bad(row, $"start '{startText}' and end '{endText}' are not both seconds or both timestamps");
    }

    private static string? Get(Row row, string[] names)
    {
        foreach (var name in names)
        {
            if (row.Values.TryGetValue(name, out var value) && value.Length > 0)
            {
                return value;
            }
        }
        return null;
    }

    private static double? Number(Row row, string[] names, string what, Func<Row, string, TraceFormatException> bad)
    {
        var text = Get(row, names);
        if (text is null)
        {
            return null;
        }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value) || value < 0)
        {
            throw bad(row, $"{what}: '{text}' is not a number of at least 0");
        }
        return value;
    }

    private static bool TryTimestamp(string text, out DateTimeOffset value) =>
        DateTimeOffset.TryParseExact(text, ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm:ss.FFFFFFF", "yyyy-MM-ddTHH:mm:ss", "yyyy-MM-ddTHH:mm:ss.FFFFFFFK", "yyyy-MM-ddTHH:mm:ssK"],
            CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out value);

    /// <summary>Splits one CSV line (RFC 4180 quotes; no line breaks inside fields).</summary>
    private static List<string> SplitCsv(string line, string source, int number)
    {
        var cells = new List<string>();
        var cell = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    cell.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    cell.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                cells.Add(cell.ToString());
                cell.Clear();
            }
            else
            {
                cell.Append(c);
            }
        }
        if (quoted)
        {
            throw new TraceFormatException(source, number, "a quoted field is not closed");
        }
        cells.Add(cell.ToString());
        return cells;
    }
}
