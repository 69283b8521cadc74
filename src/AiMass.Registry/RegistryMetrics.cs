using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AiMass.Registry;

/// <summary>
/// The registry's instruments (System.Diagnostics.Metrics, meter <c>AiMass.Registry</c>); the host exports them in
/// Prometheus format at <c>/metrics</c>, prefixed with the meter name (<c>aimass_registry_registrations</c>, ...).
/// </summary>
public sealed class RegistryMetrics : IDisposable
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "AiMass.Registry";

    private readonly Meter _meter;
    private readonly Counter<long> _registrations;
    private readonly Counter<long> _uploadedBytes;
    private readonly Histogram<double> _registrationSeconds;
    private readonly Counter<long> _aliasMoves;

    /// <summary>Creates the instruments.</summary>
    public RegistryMetrics(IMeterFactory? factory = null)
    {
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _registrations = _meter.CreateCounter<long>("registrations", description: "Artifact uploads by format and outcome (ready, invalid_artifact, digest_mismatch, payload_too_large, error).");
        _uploadedBytes = _meter.CreateCounter<long>("uploaded_bytes", unit: "By", description: "Bytes of artifacts stored.");
        _registrationSeconds = _meter.CreateHistogram<double>("registration_duration", unit: "s", description: "Time to stream, hash, inspect and commit an artifact.");
        _aliasMoves = _meter.CreateCounter<long>("alias_moves", description: "Alias moves by action (set, remove, rollback).");
    }

    internal void Registered(string format, string outcome, long bytes, TimeSpan elapsed)
    {
        var tags = new TagList { { "format", format }, { "outcome", outcome } };
        _registrations.Add(1, tags);
        if (outcome == "ready")
        {
            _uploadedBytes.Add(bytes, new KeyValuePair<string, object?>("format", format));
        }
        _registrationSeconds.Record(elapsed.TotalSeconds, tags);
    }

    internal void AliasMoved(AliasAction action) =>
        _aliasMoves.Add(1, new KeyValuePair<string, object?>("action", action.ToString().ToLowerInvariant()));

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();
}
