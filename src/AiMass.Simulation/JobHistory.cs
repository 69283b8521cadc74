using AiMass.Jobs;

namespace AiMass.Simulation;

/// <summary>
/// The platform's own job history as a workload: each job submitted in a window becomes a scenario job with its queue,
/// owner, priority, gang size, resources and walltime, and the run time it had.
/// </summary>
public static class JobHistory
{
    /// <summary>
    /// Converts the jobs submitted since <paramref name="since"/>. A job that ran has the run time of its last attempt;
    /// one still running has its walltime, or at least the time it has run so far; one that never ran has its
    /// walltime, or is left out (counted in <paramref name="skipped"/>, as are jobs cancelled before they ran). Submission
    /// times become offsets from the earliest one.
    /// </summary>
    public static IReadOnlyList<SimJob> ToSimJobs(IEnumerable<JobInfo> jobs, DateTimeOffset since, DateTimeOffset now, IDictionary<string, int>? skipped = null)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        void Skip(string why)
        {
            if (skipped is not null)
            {
                skipped[why] = skipped.TryGetValue(why, out var n) ? n + 1 : 1;
            }
        }
        var window = jobs.Where(j => j.SubmittedAt >= since).OrderBy(j => j.SubmittedAt).ThenBy(j => j.Id).ToList();
        if (window.Count == 0)
        {
            return [];
        }
        var origin = window[0].SubmittedAt;
        var result = new List<SimJob>(window.Count);
        foreach (var j in window)
        {
            var walltime = j.WalltimeSeconds is { } w ? TimeSpan.FromSeconds(w) : (TimeSpan?)null;
            TimeSpan? run = j switch
            {
                { StartedAt: { } start, EndedAt: { } end } => end - start,
                { State: JobState.Running or JobState.Stopping, StartedAt: { } start } => walltime is { } wt && wt > now - start ? wt : now - start,
                { StartedAt: null, State: JobState.Cancelled or JobState.Failed } => null,
                _ => walltime,
            };
            if (run is null)
            {
                Skip(j.State is JobState.Cancelled or JobState.Failed ? "ended before it ran" : "never ran and has no walltime");
                continue;
            }
            if (run <= TimeSpan.Zero)
            {
                Skip("run time not positive");
                continue;
            }
            result.Add(new SimJob(j.Id, j.SubmittedAt - origin, TimeSpan.FromSeconds(Math.Max(1, Math.Round(run.Value.TotalSeconds))), Math.Max(1, j.Replicas), j.Resources.ToVector())
            {
                Name = j.Name,
                User = j.Owner,
                Queue = j.Queue,
                Priority = j.Priority,
                Estimate = walltime,
                Preemptible = j.Preemptible,
            });
        }
        return result;
    }
}
