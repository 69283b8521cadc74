using System.Globalization;
using System.Net.Http.Json;
using AiMass.Deployments;
using AiMass.Jobs;
using AiMass.Registry;

namespace AiMass.Client;

public sealed partial class AiMassClient
{
    // ------------------------------------------------------------ deployments

    /// <summary>Creates a deployment.</summary>
    public Task<DeploymentInfo> CreateDeploymentAsync(DeploymentSpec spec, CancellationToken cancellationToken = default) =>
        SendAsync<DeploymentInfo>(HttpMethod.Post, "api/v1/deployments", JsonContent.Create(spec, options: AiMassJson.Options), cancellationToken);

    /// <summary>One page of deployments by name.</summary>
    public Task<Page<DeploymentInfo>> ListDeploymentsAsync(int? pageSize = null, string? pageToken = null, CancellationToken cancellationToken = default) =>
        SendAsync<Page<DeploymentInfo>>(HttpMethod.Get, "api/v1/deployments" + Query(("page_size", pageSize?.ToString(CultureInfo.InvariantCulture)), ("page_token", pageToken)), null, cancellationToken);

    /// <summary>One deployment.</summary>
    public Task<DeploymentInfo> GetDeploymentAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<DeploymentInfo>(HttpMethod.Get, $"api/v1/deployments/{Esc(name)}", null, cancellationToken);

    /// <summary>Changes a deployment (model rollover, replicas, canary, shadow, promotion).</summary>
    public Task<DeploymentInfo> UpdateDeploymentAsync(string name, DeploymentPatch patch, CancellationToken cancellationToken = default) =>
        SendAsync<DeploymentInfo>(HttpMethod.Patch, $"api/v1/deployments/{Esc(name)}", JsonContent.Create(patch, options: AiMassJson.Options), cancellationToken);

    /// <summary>Deletes a deployment (its replicas are drained and stopped).</summary>
    public Task<DeploymentInfo> DeleteDeploymentAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<DeploymentInfo>(HttpMethod.Delete, $"api/v1/deployments/{Esc(name)}", null, cancellationToken);

    /// <summary>Events of a deployment after an event id.</summary>
    public Task<List<JobEventInfo>> GetDeploymentEventsAsync(string name, long after = 0, int? limit = null, CancellationToken cancellationToken = default) =>
        SendAsync<List<JobEventInfo>>(HttpMethod.Get, $"api/v1/deployments/{Esc(name)}/events"
            + Query(("after", after.ToString(CultureInfo.InvariantCulture)), ("limit", limit?.ToString(CultureInfo.InvariantCulture))), null, cancellationToken);

    /// <summary>Tells the control plane where a replica of <paramref name="deployment"/> listens.</summary>
    public Task AnnounceReplicaAsync(string deployment, ReplicaAnnouncement announcement, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, $"api/v1/deployments/{Esc(deployment)}/replicas", JsonContent.Create(announcement, options: AiMassJson.Options), cancellationToken);

    /// <summary>Sends an inference request through the control plane's router and returns the answer's status and body.</summary>
    public async Task<(int Status, string Body)> InferAsync(string deployment, string body, string protocol = "v2", CancellationToken cancellationToken = default)
    {
        var path = protocol == "v1" ? $"v1/models/{Esc(deployment)}:predict" : $"v2/models/{Esc(deployment)}/infer";
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await _http.PostAsync(new Uri(path, UriKind.Relative), content, cancellationToken).ConfigureAwait(false);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
    }
}
