namespace AiMass.Scheduling;

/// <summary>How a deployment's replica count follows its load.</summary>
public sealed record AutoscalingPolicy
{
    /// <summary>Fewest replicas; 0 allows scaling to zero after <see cref="ScaleToZeroAfter"/> without requests.</summary>
    public int MinReplicas { get; init; } = 1;

    /// <summary>Most replicas.</summary>
    public int MaxReplicas { get; init; } = 1;

    /// <summary>Concurrent requests one replica should carry (the target the replica count is computed from).</summary>
    public double TargetInFlight { get; init; } = 4;

    /// <summary>How long the load must ask for more replicas before they are added.</summary>
    public TimeSpan UpscaleDelay { get; init; } = TimeSpan.Zero;

    /// <summary>How long the load must ask for fewer replicas before some are removed (the largest need seen meanwhile wins).</summary>
    public TimeSpan DownscaleDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Time without any request after which a deployment with <see cref="MinReplicas"/> 0 stops its last replica.</summary>
    public TimeSpan ScaleToZeroAfter { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>A change of the replica count and why.</summary>
/// <param name="From">Replicas before.</param>
/// <param name="To">Replicas wanted now.</param>
/// <param name="Reason">In words, for the deployment's events.</param>
public sealed record ScaleDecision(int From, int To, string Reason);

/// <summary>
/// Decides a deployment's replica count from its observed concurrency (requests in flight, averaged over the
/// observation interval), like Knative's KPA: <c>ceil(concurrency / target)</c> clamped to [min, max], added after
/// <see cref="AutoscalingPolicy.UpscaleDelay"/>, removed after <see cref="AutoscalingPolicy.DownscaleDelay"/> (to the
/// largest need seen in that window, so a dip does not flap), to zero after an idle period, and from zero at once when
/// a request waits. Pure and deterministic: time comes from the caller.
/// </summary>
public sealed class ReplicaAutoscaler
{
    private DateTimeOffset? _aboveSince;
    private DateTimeOffset? _belowSince;
    private int _neededInWindow;
    private DateTimeOffset _lastActive;

    /// <summary>Starts at <paramref name="replicas"/> (clamped to the policy); the deployment counts as active at <paramref name="now"/> when it has replicas.</summary>
    public ReplicaAutoscaler(AutoscalingPolicy policy, int replicas, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Policy = policy;
        Desired = Math.Clamp(replicas, policy.MinReplicas, Math.Max(policy.MinReplicas, policy.MaxReplicas));
        _lastActive = Desired > 0 ? now : DateTimeOffset.MinValue;
    }

    /// <summary>The policy in force.</summary>
    public AutoscalingPolicy Policy { get; private set; }

    /// <summary>The replica count wanted now.</summary>
    public int Desired { get; private set; }

    /// <summary>When the deployment last had a request in flight or waiting.</summary>
    public DateTimeOffset LastActive => _lastActive;

    /// <summary>Takes a new policy (a scale command); the count is clamped to it at once.</summary>
    public ScaleDecision? Update(AutoscalingPolicy policy, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Policy = policy;
        _aboveSince = _belowSince = null;
        var clamped = Math.Clamp(Desired, policy.MinReplicas, Math.Max(policy.MinReplicas, policy.MaxReplicas));
        if (clamped == Desired)
        {
            return null;
        }
        var from = Desired;
        Desired = clamped;
        if (Desired > 0)
        {
            _lastActive = now;
        }
        return new ScaleDecision(from, Desired, $"replicas {policy.MinReplicas}..{policy.MaxReplicas} set");
    }

    /// <summary>
    /// Records one observation: the average number of requests in flight since the previous one, and whether a request
    /// is waiting for a replica (none is ready). Returns a decision when the count changes.
    /// </summary>
    public ScaleDecision? Observe(DateTimeOffset now, double concurrency, bool requestWaiting)
    {
        var policy = Policy;
        if (concurrency > 0 || requestWaiting)
        {
            _lastActive = now;
        }
        var max = Math.Max(policy.MinReplicas, policy.MaxReplicas);
        var need = concurrency <= 0 ? 0 : (int)Math.Min(max, Math.Ceiling(concurrency / Math.Max(policy.TargetInFlight, 1e-9) - 1e-9));
        var idle = now - _lastActive;
        var floor = policy.MinReplicas > 0 || idle < policy.ScaleToZeroAfter ? Math.Max(1, policy.MinReplicas) : 0;
        var target = Math.Clamp(Math.Max(need, requestWaiting ? 1 : 0), Math.Min(floor, max), max);
        if (policy.MinReplicas == 0 && Desired == 0 && !requestWaiting && concurrency <= 0)
        {
            target = 0; // stays at zero until a request comes
        }

        if (target > Desired)
        {
            _belowSince = null;
            if (Desired == 0 && requestWaiting)
            {
                return Change(target, "scale from zero: a request is waiting");
            }
            _aboveSince ??= now;
            if (now - _aboveSince.Value >= policy.UpscaleDelay)
            {
                return Change(target, Load(concurrency, policy));
            }
            return null;
        }
        _aboveSince = null;
        if (target < Desired)
        {
            if (target == 0)
            {
                return Change(0, $"scale to zero: no request for {idle.TotalSeconds:0.#} s");
            }
            if (_belowSince is null)
            {
                _belowSince = now;
                _neededInWindow = target;
            }
            _neededInWindow = Math.Max(_neededInWindow, target);
            if (now - _belowSince.Value >= policy.DownscaleDelay)
            {
                var to = _neededInWindow;
                _belowSince = null;
                return to < Desired ? Change(to, Load(concurrency, policy) + $" for {policy.DownscaleDelay.TotalSeconds:0.#} s") : null;
            }
            return null;
        }
        _belowSince = null;
        return null;
    }

    private static string Load(double concurrency, AutoscalingPolicy policy) =>
        FormattableString.Invariant($"{concurrency:0.##} requests in flight, target {policy.TargetInFlight:0.##} per replica");

    private ScaleDecision Change(int to, string reason)
    {
        var from = Desired;
        Desired = to;
        _aboveSince = _belowSince = null;
        return new ScaleDecision(from, to, reason);
    }
}
