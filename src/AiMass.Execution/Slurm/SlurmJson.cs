using System.Globalization;
using System.Text.Json;
using AiMass.Resources;

namespace AiMass.Execution.Slurm;

/// <summary>A Slurm job as <c>squeue --json</c> (or <c>sacct --json</c>) reports it.</summary>
/// <param name="Id">The job id.</param>
/// <param name="Name">Its name (<c>aimass-JOB.ATTEMPT</c> for AI Mass's jobs).</param>
/// <param name="Comment">Its comment (carries the control plane's tag).</param>
/// <param name="State">Its state (<c>PENDING</c>, <c>RUNNING</c>, <c>COMPLETED</c>, <c>TIMEOUT</c>, ...).</param>
/// <param name="ExitCode">The batch script's exit code, 128 + N when killed by signal N; null when not ended.</param>
/// <param name="Reason">Why it waits or ended (<c>Resources</c>, <c>NonZeroExitCode</c>, ...).</param>
/// <param name="Nodes">The nodes it runs or ran on.</param>
public sealed record SlurmJob(string Id, string Name, string Comment, string State, int? ExitCode, string Reason, string Nodes)
{
    /// <summary>Whether the job has ended and will not run again.</summary>
    public bool HasEnded => SlurmStates.IsFinal(State);
}

/// <summary>Reads the JSON of Slurm 22.05 and later (<c>squeue --json</c>, <c>sacct --json</c>, <c>sinfo --json</c>).</summary>
public static class SlurmJson
{
    /// <summary>The jobs of a <c>squeue --json</c> or <c>sacct --json</c> answer.</summary>
    public static IReadOnlyList<SlurmJob> ParseJobs(string json)
    {
        using var doc = Parse(json, "squeue --json");
        var jobs = new List<SlurmJob>();
        if (!doc.RootElement.TryGetProperty("jobs", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            throw new SlurmCommandException("the answer of squeue --json has no \"jobs\" list");
        }
        foreach (var job in list.EnumerateArray())
        {
            var id = job.TryGetProperty("job_id", out var idElement) && idElement.TryGetInt64(out var n)
                ? n.ToString(CultureInfo.InvariantCulture) : Text(job, "job_id");
            // squeue: "job_state": "RUNNING" (22.05) or ["RUNNING"] (23.02+); sacct: "state": {"current": ...}.
            var state = State(job);
            jobs.Add(new SlurmJob(id, Text(job, "name"), Text(job, "comment"), state, ExitCode(job, state), Text(job, "state_reason"), Text(job, "nodes")));
        }
        return jobs;
    }

    /// <summary>The nodes of a <c>sinfo --json</c> answer.</summary>
    public static IReadOnlyList<ExecutorNode> ParseNodes(string json)
    {
        using var doc = Parse(json, "sinfo --json");
        var nodes = new List<ExecutorNode>();
        if (!doc.RootElement.TryGetProperty("nodes", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            throw new SlurmCommandException("the answer of sinfo --json has no \"nodes\" list");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in list.EnumerateArray())
        {
            var name = Text(node, "name");
            if (name.Length == 0 || !seen.Add(name))
            {
                continue;
            }
            var cpus = Number(node, "cpus");
            var memoryMb = Number(node, "real_memory");
            var (gpus, model) = Gpus(Text(node, "gres"));
            var partitions = node.TryGetProperty("partitions", out var p) && p.ValueKind == JsonValueKind.Array
                ? p.EnumerateArray().Select(e => e.GetString() ?? "").Where(s => s.Length > 0).ToList() : [];
            var stateWords = StateWords(node);
            var available = stateWords.Count > 0 && !stateWords.Any(w => w is "down" or "drain" or "drained" or "draining" or "fail" or "failing"
                or "future" or "maint" or "not_responding" or "power_down" or "powered_down" or "powering_down" or "reboot_requested" or "unknown");
            var address = Text(node, "address");
            var reason = Text(node, "reason");
            nodes.Add(new ExecutorNode(name, address.Length > 0 ? address : name, partitions,
                new ResourceVector(cpus * 1000, memoryMb * 1024 * 1024, gpus), available, string.Join('+', stateWords), reason.Length > 0 ? reason : null)
            {
                GpuModel = model,
                Features = Text(node, "active_features").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            });
        }
        return nodes;
    }

    /// <summary>
    /// The partitions of <c>scontrol --oneliner show partition</c> (one line of <c>Key=Value</c> pairs per partition;
    /// Slurm 22.05's scontrol has no JSON).
    /// </summary>
    public static IReadOnlyList<ExecutorPartition> ParsePartitions(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var partitions = new List<ExecutorPartition>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var pair in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    fields[pair[..eq]] = pair[(eq + 1)..];
                }
            }
            if (!fields.TryGetValue("PartitionName", out var name))
            {
                continue;
            }
            partitions.Add(new ExecutorPartition(name, fields.GetValueOrDefault("Default") == "YES"));
        }
        // The default partition first: jobs of the default queue go there.
        return [.. partitions.Where(p => p.IsDefault), .. partitions.Where(p => !p.IsDefault)];
    }

    /// <summary>A time limit as <c>sbatch --time</c> takes it: whole minutes, rounded up (Slurm keeps limits in minutes).</summary>
    public static string FormatTime(TimeSpan limit) =>
        Math.Max(1, (long)Math.Ceiling(limit.TotalMinutes - 1e-9)).ToString(CultureInfo.InvariantCulture);

    private static JsonDocument Parse(string json, string what)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new SlurmCommandException($"the answer of {what} is not JSON ({e.Message}); Slurm 22.05 or later with its openapi plugins is needed", e);
        }
        // squeue and sinfo exit 0 with empty lists and an "errors" entry when slurmctld cannot be reached: an empty
        // answer must never be read as "no jobs" (every job would look gone).
        if (doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array && errors.GetArrayLength() > 0)
        {
            var text = string.Join("; ", errors.EnumerateArray().Select(e =>
                string.Join(": ", new[] { Text(e, "description"), Text(e, "error"), Text(e, "source") is { Length: > 0 } src ? "from " + src : "" }.Where(x => x.Length > 0))));
            doc.Dispose();
            throw new ExecutorUnavailableException($"{what} reported an error ({text}); is slurmctld running and reachable?");
        }
        return doc;
    }

    private static string State(JsonElement job)
    {
        if (job.TryGetProperty("job_state", out var s))
        {
            return s.ValueKind switch
            {
                JsonValueKind.String => s.GetString() ?? "",
                JsonValueKind.Array => s.EnumerateArray().Select(e => e.GetString()).FirstOrDefault(x => x is not null) ?? "",
                _ => "",
            };
        }
        if (job.TryGetProperty("state", out var st) && st.ValueKind == JsonValueKind.Object && st.TryGetProperty("current", out var current))
        {
            return current.ValueKind == JsonValueKind.Array ? current.EnumerateArray().Select(e => e.GetString()).FirstOrDefault(x => x is not null) ?? "" : current.GetString() ?? "";
        }
        return "";
    }

    private static int? ExitCode(JsonElement job, string state)
    {
        if (!SlurmStates.IsFinal(state) || !job.TryGetProperty("exit_code", out var e))
        {
            return null;
        }
        switch (e.ValueKind)
        {
            case JsonValueKind.Number:
                // squeue 22.05: the wait status of the batch script, as waitpid(2) gives it.
                var status = e.GetInt32();
                var signal = status & 0x7f;
                return signal != 0 ? 128 + signal : (status >> 8) & 0xff;
            case JsonValueKind.Object:
                // sacct, and squeue 23.02+: {"return_code": N, "signal": {"signal_id": S}} (numbers or {"number": N}).
                var sig = e.TryGetProperty("signal", out var s) ? Inner(s.ValueKind == JsonValueKind.Object && s.TryGetProperty("signal_id", out var id) ? id : s) : 0;
                return sig is > 0 ? 128 + sig : e.TryGetProperty("return_code", out var rc) ? Inner(rc) : null;
            default:
                return null;
        }
    }

    private static int? Inner(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.GetInt32(),
        JsonValueKind.Object when e.TryGetProperty("number", out var n) && n.ValueKind == JsonValueKind.Number => n.GetInt32(),
        _ => null,
    };

    private static List<string> StateWords(JsonElement node)
    {
        var words = new List<string>();
        if (node.TryGetProperty("state", out var s))
        {
            if (s.ValueKind == JsonValueKind.String)
            {
                words.Add(s.GetString()!.ToLowerInvariant());
            }
            else if (s.ValueKind == JsonValueKind.Array)
            {
                words.AddRange(s.EnumerateArray().Select(e => (e.GetString() ?? "").ToLowerInvariant()));
            }
        }
        if (node.TryGetProperty("state_flags", out var flags) && flags.ValueKind == JsonValueKind.Array)
        {
            words.AddRange(flags.EnumerateArray().Select(e => (e.GetString() ?? "").ToLowerInvariant()));
        }
        return words.Where(w => w.Length > 0).Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>GPUs of a node's <c>gres</c> string: <c>gpu:4</c>, <c>gpu:a100:4(S:0-1)</c>, <c>gpu:a100:2,gpu:v100:2</c>.</summary>
    internal static (long Count, string? Model) Gpus(string gres)
    {
        long count = 0;
        string? model = null;
        foreach (var item in gres.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var plain = item.Split('(')[0];
            var parts = plain.Split(':');
            if (parts[0] != "gpu")
            {
                continue;
            }
            if (parts.Length >= 2 && long.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                count += n;
                if (parts.Length >= 3)
                {
                    model = model is null || model == parts[1] ? parts[1] : model;
                }
            }
            else if (parts.Length == 1 || parts.Length == 2)
            {
                count += 1;
                model ??= parts.Length == 2 ? parts[1] : null;
            }
        }
        return (count, model);
    }

    private static string Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString() ?? "",
            JsonValueKind.Number => v.GetRawText(),
            _ => "",
        } : "";

    private static long Number(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) ? Inner(v) ?? (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var l) ? l : 0) : 0;
}
