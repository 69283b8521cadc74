using System.Diagnostics;

namespace AiMass.Jobs.Deployments;

/// <summary>Where a replica stands, as routing sees it.</summary>
public enum ReplicaState
{
    /// <summary>Its job is queued or starting, or it has not answered a health check yet.</summary>
    Starting,

    /// <summary>Answers health checks: requests are routed to it.</summary>
    Ready,

    /// <summary>Failed health checks or a request could not reach it: ejected from routing until it answers again.</summary>
    Unhealthy,

    /// <summary>Being stopped: no new requests; stopped when its requests in flight have finished.</summary>
    Draining,
}

/// <summary>One serving replica (a job running <c>aimass serve</c>) with the counters the router keeps.</summary>
public sealed class Replica
{
    private int _inFlight;
    private long _requests;
    private volatile string? _address;
    private volatile ReplicaState _state;

    internal Replica(long jobId, string deployment, string role, int version, bool draining)
    {
        JobId = jobId;
        Deployment = deployment;
        Role = role;
        Version = version;
        _state = draining ? ReplicaState.Draining : ReplicaState.Starting;
    }

    /// <summary>The replica's job.</summary>
    public long JobId { get; }

    /// <summary>The deployment it serves.</summary>
    public string Deployment { get; }

    /// <summary><c>primary</c>, <c>canary</c> or <c>shadow</c>.</summary>
    public string Role { get; }

    /// <summary>The model version it serves.</summary>
    public int Version { get; }

    /// <summary>Its base URL once announced.</summary>
    public string? Address => _address;

    /// <summary>Its state.</summary>
    public ReplicaState State => _state;

    /// <summary>Requests in flight through the router.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Requests routed to it so far.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    internal int Attempt { get; set; }

    internal int Failures { get; set; }

    internal DateTimeOffset? UnhealthySince { get; set; }

    internal DateTimeOffset? DrainingSince { get; set; }

    internal string? LastError { get; set; }

    internal void SetAddress(string? address) => _address = address;

    internal void SetState(ReplicaState state) => _state = state;

    /// <summary>Counts a request sent to it; dispose the result when the request ends.</summary>
    public RequestScope Begin(DeploymentLoad load)
    {
        ArgumentNullException.ThrowIfNull(load);
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
        load.Enter();
        return new RequestScope(this, load, Stopwatch.GetTimestamp());
    }

    /// <summary>A router request seen by its replica and its deployment's load.</summary>
    public readonly struct RequestScope(Replica replica, DeploymentLoad load, long started) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose()
        {
            Interlocked.Decrement(ref replica._inFlight);
            load.Exit(Stopwatch.GetElapsedTime(started));
        }
    }
}

/// <summary>
/// A deployment's load as the autoscaler sees it: requests in flight, time spent by finished requests (for the
/// average concurrency since the last look), and requests waiting for a replica.
/// </summary>
public sealed class DeploymentLoad
{
    private int _inFlight;
    private int _waiting;
    private long _busyTicks;

    /// <summary>Requests in flight now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Requests waiting for a ready replica now (a cold start).</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    internal void Enter()
    {
        Interlocked.Increment(ref _inFlight);
    }

    internal void Exit(TimeSpan took)
    {
        Interlocked.Add(ref _busyTicks, took.Ticks);
        Interlocked.Decrement(ref _inFlight);
    }

    /// <summary>Marks a request waiting for a replica; dispose when it has one or gives up.</summary>
    public IDisposable Wait()
    {
        Interlocked.Increment(ref _waiting);
        return new Waiter(this);
    }

    /// <summary>Average concurrency over <paramref name="interval"/>: time of the requests that ended in it, or the requests in flight now when more.</summary>
    internal double TakeConcurrency(TimeSpan interval)
    {
        var busy = TimeSpan.FromTicks(Interlocked.Exchange(ref _busyTicks, 0));
        var average = interval > TimeSpan.Zero ? busy / interval : 0;
        return Math.Max(average, InFlight);
    }

    private sealed class Waiter(DeploymentLoad load) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref load._waiting);
            }
        }
    }
}
