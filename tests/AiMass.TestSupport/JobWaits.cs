using AiMass.Client;
using AiMass.Jobs;

namespace AiMass.TestSupport;

/// <summary>Waiting for jobs of a control plane, and reading their logs.</summary>
public static class JobWaits
{
    public static async Task<JobInfo> WaitForAsync(this AiMassClient client, long id, Func<JobInfo, bool> condition, string what, int seconds = 30)
    {
        JobInfo job = null!;
        await Poll.UntilAsync(async () =>
        {
            job = await client.GetJobAsync(id);
            return condition(job);
        }, TimeSpan.FromSeconds(seconds), $"job {id} {what}");
        return job;
    }

    public static Task<JobInfo> WaitForStateAsync(this AiMassClient client, long id, JobState state, int seconds = 30) =>
        client.WaitForAsync(id, j => j.State == state, $"to be {state} (reason so far: see the job)", seconds);

    /// <summary>Waits until the job runs and every task's process id (or resource manager's job id) is recorded.</summary>
    public static Task<JobInfo> WaitForRunningAsync(this AiMassClient client, long id, int seconds = 30) =>
        client.WaitForAsync(id, j => j.State == JobState.Running && j.Tasks.Count > 0 && j.Tasks.All(t => t.Pid is not null || t.ExternalId is not null), "to run with its processes started", seconds);

    public static async Task<string> LogsAsync(this AiMassClient client, long id, int? attempt = null, int? task = null)
    {
        using var buffer = new MemoryStream();
        await client.CopyJobLogsAsync(id, buffer, attempt, task);
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>A shell script that waits (up to 60 s) for a file to appear.</summary>
    public static string WaitFor(string file) => $"i=0; while [ ! -f '{file}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
}
