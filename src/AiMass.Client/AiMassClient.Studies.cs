using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using AiMass.Registry;
using AiMass.Studies;

namespace AiMass.Client;

public sealed partial class AiMassClient
{
    // ------------------------------------------------------------ studies

    /// <summary>Creates a study; its trials run as jobs.</summary>
    public Task<StudyInfo> CreateStudyAsync(CreateStudyRequest request, CancellationToken cancellationToken = default) =>
        SendAsync<StudyInfo>(HttpMethod.Post, "api/v1/studies", JsonContent.Create(request, options: AiMassJson.Options), cancellationToken);

    /// <summary>One page of studies, newest first.</summary>
    public Task<Page<StudyInfo>> ListStudiesAsync(StudyState? state = null, int? pageSize = null, string? pageToken = null, CancellationToken cancellationToken = default) =>
        SendAsync<Page<StudyInfo>>(HttpMethod.Get, "api/v1/studies" + Query(("state", state?.ToString().ToLowerInvariant()),
            ("page_size", pageSize?.ToString(CultureInfo.InvariantCulture)), ("page_token", pageToken)), null, cancellationToken);

    /// <summary>One study, by id or name.</summary>
    public Task<StudyInfo> GetStudyAsync(string study, CancellationToken cancellationToken = default) =>
        SendAsync<StudyInfo>(HttpMethod.Get, $"api/v1/studies/{Esc(study)}", null, cancellationToken);

    /// <summary>Stops a study.</summary>
    public Task<StudyInfo> StopStudyAsync(string study, CancellationToken cancellationToken = default) =>
        SendAsync<StudyInfo>(HttpMethod.Post, $"api/v1/studies/{Esc(study)}/stop", null, cancellationToken);

    /// <summary>A study's trials by number.</summary>
    public Task<List<TrialInfo>> GetTrialsAsync(string study, string? state = null, bool values = false, CancellationToken cancellationToken = default) =>
        SendAsync<List<TrialInfo>>(HttpMethod.Get, $"api/v1/studies/{Esc(study)}/trials" + Query(("state", state), ("values", values ? "true" : null)), null, cancellationToken);

    /// <summary>One trial with its intermediate values.</summary>
    public Task<TrialInfo> GetTrialAsync(string study, int number, CancellationToken cancellationToken = default) =>
        SendAsync<TrialInfo>(HttpMethod.Get, $"api/v1/studies/{Esc(study)}/trials/{number.ToString(CultureInfo.InvariantCulture)}", null, cancellationToken);

    /// <summary>The best complete trial.</summary>
    public Task<TrialInfo> GetBestTrialAsync(string study, CancellationToken cancellationToken = default) =>
        SendAsync<TrialInfo>(HttpMethod.Get, $"api/v1/studies/{Esc(study)}/best", null, cancellationToken);

    /// <summary>Reports a trial's intermediate value (with a step) or final value (without).</summary>
    public Task<TrialReportResult> ReportTrialAsync(string study, int number, double value, long? step = null, CancellationToken cancellationToken = default) =>
        SendAsync<TrialReportResult>(HttpMethod.Post, $"api/v1/studies/{Esc(study)}/trials/{number.ToString(CultureInfo.InvariantCulture)}/report",
            JsonContent.Create(new TrialReport(value, step), options: AiMassJson.Options), cancellationToken);

    /// <summary>The study's report (history, parallel coordinates, importance) as JSON.</summary>
    public Task<JsonElement> GetStudyReportAsync(string study, CancellationToken cancellationToken = default) =>
        SendAsync<JsonElement>(HttpMethod.Get, $"api/v1/studies/{Esc(study)}/report", null, cancellationToken);
}
