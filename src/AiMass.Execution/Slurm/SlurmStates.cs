namespace AiMass.Execution.Slurm;

/// <summary>Slurm's job states, and what each final one means for an AI Mass task.</summary>
public static class SlurmStates
{
    private static readonly HashSet<string> Final = new(StringComparer.Ordinal)
    {
        "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT",
    };

    /// <summary>Whether a job in this state has ended (COMPLETING is not final: its processes are still being stopped).</summary>
    public static bool IsFinal(string state) => Final.Contains(state);

    /// <summary>
    /// How a task of an ended Slurm job ended. <paramref name="recorded"/> is the status the task's wrapper wrote (null
    /// when it wrote none: the task never started, or was killed with its wrapper). A state that says Slurm stopped the
    /// job (time limit, node failure, preemption, memory) decides over the code the killed command left.
    /// </summary>
    public static TaskExit ToExit(SlurmJob job, TaskExit? recorded)
    {
        ArgumentNullException.ThrowIfNull(job);
        var id = $"Slurm job {job.Id}";
        return job.State switch
        {
            "COMPLETED" => recorded ?? TaskExit.FromCode(job.ExitCode ?? 0),
            "FAILED" => recorded ?? (job.ExitCode is { } c
                ? TaskExit.FromCode(c) with { Description = $"{TaskExit.FromCode(c).Description} before its task recorded a status ({id} FAILED; see the log)" }
                : new TaskExit(1, $"{id} FAILED ({job.Reason}) before its task recorded a status; see the log")),
            "TIMEOUT" or "DEADLINE" => new TaskExit(recorded?.ExitCode ?? job.ExitCode ?? 143,
                $"stopped by Slurm at its time limit ({id} {job.State})") { End = TaskEnd.Walltime },
            "PREEMPTED" => new TaskExit(recorded?.ExitCode ?? job.ExitCode, $"preempted by Slurm ({id} PREEMPTED)") { End = TaskEnd.Preempted },
            "NODE_FAIL" or "BOOT_FAIL" => new TaskExit(null, $"its node failed ({id} {job.State} on {Nodes(job)})") { End = TaskEnd.NodeFailure },
            "OUT_OF_MEMORY" => new TaskExit(recorded?.ExitCode ?? 137, $"killed by Slurm for using more memory than requested ({id} OUT_OF_MEMORY)") { End = TaskEnd.OutOfMemory },
            "CANCELLED" => recorded is { Succeeded: true } ? recorded
                : new TaskExit(recorded?.ExitCode ?? job.ExitCode ?? 143, $"cancelled in Slurm ({id} CANCELLED{(job.Reason is "" or "None" ? "" : ", " + job.Reason)})"),
            _ => recorded ?? new TaskExit(job.ExitCode ?? 1, $"{id} ended in state {job.State}"),
        };
    }

    private static string Nodes(SlurmJob job) => job.Nodes.Length > 0 ? job.Nodes : "its node";
}
