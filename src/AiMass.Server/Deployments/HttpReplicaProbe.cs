using AiMass.Jobs.Deployments;

namespace AiMass.Server.Deployments;

/// <summary>Health checks over HTTP: a replica is healthy when <c>GET /v2/models/{model}/ready</c> answers 200.</summary>
internal sealed class HttpReplicaProbe : IReplicaProbe, IDisposable
{
    private readonly HttpClient _client = new(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(2), PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30) })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public async Task<string?> ProbeAsync(string address, string model, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await _client.GetAsync(new Uri($"{address}/v2/models/{Uri.EscapeDataString(model)}/ready"), cancellationToken);
            return response.IsSuccessStatusCode ? null : $"readiness check answered {(int)response.StatusCode}";
        }
        catch (HttpRequestException e)
        {
            return e.Message;
        }
    }

    public void Dispose() => _client.Dispose();
}
