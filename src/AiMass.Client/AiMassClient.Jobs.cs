using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using AiMass.Jobs;
using AiMass.Registry;

namespace AiMass.Client;

public sealed partial class AiMassClient
{
    // ------------------------------------------------------------ jobs

    /// <summary>Submits a job spec (YAML or JSON text); <paramref name="sourceName"/> (a file name) prefixes error messages.</summary>
    public Task<JobInfo> SubmitJobAsync(string spec, string? sourceName = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var content = new StringContent(spec, Encoding.UTF8, "application/yaml");
        if (sourceName is not null)
        {
            content.Headers.Add("X-AiMass-Spec-Name", Uri.EscapeDataString(Path.GetFileName(sourceName)));
        }
        return SendAsync<JobInfo>(HttpMethod.Post, "api/v1/jobs", content, cancellationToken);
    }

    /// <summary>One page of jobs, newest first.</summary>
    public Task<Page<JobInfo>> ListJobsAsync(string? state = null, string? queue = null, string? owner = null, int? pageSize = null, string? pageToken = null, CancellationToken cancellationToken = default) =>
        SendAsync<Page<JobInfo>>(HttpMethod.Get, "api/v1/jobs" + Query(("state", state), ("queue", queue), ("owner", owner),
            ("page_size", pageSize?.ToString(CultureInfo.InvariantCulture)), ("page_token", pageToken)), null, cancellationToken);

    /// <summary>One job.</summary>
    public Task<JobInfo> GetJobAsync(long id, CancellationToken cancellationToken = default) =>
        SendAsync<JobInfo>(HttpMethod.Get, $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}", null, cancellationToken);

    /// <summary>Cancels a job.</summary>
    public Task<JobInfo> CancelJobAsync(long id, CancellationToken cancellationToken = default) =>
        SendAsync<JobInfo>(HttpMethod.Post, $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}/cancel", null, cancellationToken);

    /// <summary>Events of a job after an event id.</summary>
    public Task<List<JobEventInfo>> GetJobEventsAsync(long id, long after = 0, int? limit = null, CancellationToken cancellationToken = default) =>
        SendAsync<List<JobEventInfo>>(HttpMethod.Get, $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}/events"
            + Query(("after", after.ToString(CultureInfo.InvariantCulture)), ("limit", limit?.ToString(CultureInfo.InvariantCulture))), null, cancellationToken);

    /// <summary>Every event of the cluster after an event id.</summary>
    public Task<List<JobEventInfo>> GetEventsAsync(long after = 0, int? limit = null, CancellationToken cancellationToken = default) =>
        SendAsync<List<JobEventInfo>>(HttpMethod.Get, "api/v1/events"
            + Query(("after", after.ToString(CultureInfo.InvariantCulture)), ("limit", limit?.ToString(CultureInfo.InvariantCulture))), null, cancellationToken);

    /// <summary>Copies a job's logs to <paramref name="destination"/>; with <paramref name="follow"/> until the job ends.</summary>
    public async Task CopyJobLogsAsync(long id, Stream destination, int? attempt = null, int? task = null, bool follow = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var path = $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}/logs" + Query(("attempt", attempt?.ToString(CultureInfo.InvariantCulture)),
            ("task", task?.ToString(CultureInfo.InvariantCulture)), ("follow", follow ? "true" : null));
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (body.ConfigureAwait(false))
        {
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await destination.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Reports metric values of a running job.</summary>
    public Task ReportJobMetricsAsync(long id, IReadOnlyDictionary<string, double> values, long? step = null, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}/metrics",
            JsonContent.Create(new JobMetricReport { Step = step, Values = values }, options: AiMassJson.Options), cancellationToken);

    /// <summary>Metric values a job reported.</summary>
    public Task<List<JobMetricInfo>> GetJobMetricsAsync(long id, string? name = null, CancellationToken cancellationToken = default) =>
        SendAsync<List<JobMetricInfo>>(HttpMethod.Get, $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}/metrics" + Query(("name", name)), null, cancellationToken);

    /// <summary>Reports a checkpoint of a running job; its next attempt resumes from the latest.</summary>
    public Task<JobCheckpointInfo> ReportJobCheckpointAsync(long id, string path, long? step = null, CancellationToken cancellationToken = default) =>
        SendAsync<JobCheckpointInfo>(HttpMethod.Post, $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}/checkpoints",
            JsonContent.Create(new JobCheckpointReport { Path = path, Step = step }, options: AiMassJson.Options), cancellationToken);

    /// <summary>Checkpoints a job reported.</summary>
    public Task<List<JobCheckpointInfo>> GetJobCheckpointsAsync(long id, CancellationToken cancellationToken = default) =>
        SendAsync<List<JobCheckpointInfo>>(HttpMethod.Get, $"api/v1/jobs/{id.ToString(CultureInfo.InvariantCulture)}/checkpoints", null, cancellationToken);

    // ------------------------------------------------------------ cluster

    /// <summary>Nodes with allocation and live use.</summary>
    public Task<List<NodeInfo>> ListNodesAsync(CancellationToken cancellationToken = default) =>
        SendAsync<List<NodeInfo>>(HttpMethod.Get, "api/v1/nodes", null, cancellationToken);

    /// <summary>Drains a node, takes it down or brings it up.</summary>
    public Task<NodeInfo> SetNodeStateAsync(string name, string state, string? reason = null, CancellationToken cancellationToken = default) =>
        SendAsync<NodeInfo>(HttpMethod.Post, $"api/v1/nodes/{Esc(name)}/state",
            JsonContent.Create(new NodeStateRequest { State = state, Reason = reason }, options: AiMassJson.Options), cancellationToken);

    /// <summary>Queues with their lengths and allocation.</summary>
    public Task<List<QueueInfo>> ListQueuesAsync(CancellationToken cancellationToken = default) =>
        SendAsync<List<QueueInfo>>(HttpMethod.Get, "api/v1/queues", null, cancellationToken);

    /// <summary>The cluster as a cluster file (YAML): policy, queues, nodes and dynamic pools.</summary>
    public async Task<string> GetClusterFileAsync(CancellationToken cancellationToken = default)
    {
        using var response = await _http.GetAsync(new Uri("api/v1/cluster", UriKind.Relative), cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        return await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
    }
}
