using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using AiMass.Jobs;
using AiMass.Resources;
using AiMass.Tuning;

namespace AiMass.Specs;

/// <summary>The pruner of a study and its settings.</summary>
/// <param name="Type">none, median, asha or hyperband.</param>
/// <param name="MinResource">ASHA/Hyperband: the first rung, in the steps trials report.</param>
/// <param name="MaxResource">Hyperband: the largest budget; ASHA: no rung at or above it (a trial that gets there runs to its end).</param>
/// <param name="ReductionFactor">ASHA/Hyperband: 1 in this many trials is promoted at each rung.</param>
/// <param name="StartupTrials">Median: trials that finish before any is pruned.</param>
/// <param name="WarmupSteps">Median: steps before a trial can be pruned.</param>
public sealed record PrunerSpec(string Type, long MinResource = 1, long? MaxResource = null, int ReductionFactor = 3, int StartupTrials = 5, long WarmupSteps = 0)
{
    /// <summary>The pruner, or null for none.</summary>
    public IPruner? Create() => Type switch
    {
        "median" => new MedianPruner(StartupTrials, WarmupSteps),
        "asha" => new SuccessiveHalvingPruner(MinResource, ReductionFactor, maxResource: MaxResource),
        "hyperband" => new HyperbandPruner(MinResource, MaxResource ?? 81, ReductionFactor),
        _ => null,
    };
}

/// <summary>Where the best trial's model goes.</summary>
/// <param name="Model">The registered model.</param>
/// <param name="Alias">An alias to point at the new version.</param>
/// <param name="Artifact">The model file a trial writes, relative to its trial directory (a trial may instead print <c>artifact=PATH</c>).</param>
public sealed record StudyRegisterSpec(string Model, string? Alias, string? Artifact);

/// <summary>
/// A study on the platform (docs/tuning.md): its space, sampler, pruner and budget, and the objective each trial runs
/// as a job — a command with <c>{{name}}</c> placeholders, or a training spec with placeholders.
/// </summary>
public sealed record StudySpec
{
    /// <summary>The samplers a study can use.</summary>
    public static IReadOnlyList<string> Samplers { get; } = ["random", "grid", "tpe", "tpe-multivariate", "mcts", "hmcts"];

    /// <summary>The pruners a study can use.</summary>
    public static IReadOnlyList<string> Pruners { get; } = ["none", "median", "asha", "hyperband"];

    /// <summary>The study's name (unique on the control plane).</summary>
    public required string Name { get; init; }

    /// <summary>Minimise or maximise.</summary>
    public Direction Direction { get; init; }

    /// <summary>What the value is called (a training objective reads this evaluation metric).</summary>
    public string Metric { get; init; } = "objective";

    /// <summary>The search space.</summary>
    public required SearchSpace Space { get; init; }

    /// <summary>One of <see cref="Samplers"/>.</summary>
    public string Sampler { get; init; } = "tpe";

    /// <summary>The pruner.</summary>
    public PrunerSpec Pruner { get; init; } = new("none");

    /// <summary>Configurations to try (retries of failed trials do not count).</summary>
    public int Trials { get; init; } = 100;

    /// <summary>Trials running at once.</summary>
    public int Parallel { get; init; } = 1;

    /// <summary>How often a configuration whose trial failed (non-zero exit, killed, no value) is tried again.</summary>
    public int MaxRetries { get; init; } = 2;

    /// <summary>A running trial that prints and reports nothing for this long is taken as hung: stopped, failed and retried.</summary>
    public TimeSpan? HeartbeatTimeout { get; init; }

    /// <summary>The command of a command objective (placeholders not yet filled).</summary>
    public IReadOnlyList<string>? Command { get; init; }

    /// <summary>The training spec's text of a training objective (placeholders not yet filled).</summary>
    public string? TrainingText { get; init; }

    /// <summary>Where the training spec's relative paths are resolved.</summary>
    public string? TrainingBaseDirectory { get; init; }

    /// <summary>The directory the spec came from: a command objective runs there unless <c>job.working_dir</c> says otherwise.</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>Where and how each trial's job runs (name, command and restarts are the study's).</summary>
    public required JobSpec Job { get; init; }

    /// <summary>Register the best trial's model, if set.</summary>
    public StudyRegisterSpec? Register { get; init; }

    /// <summary>The sampler's seed.</summary>
    public int Seed { get; init; }

    /// <summary>The sampler.</summary>
    public ISampler CreateSampler() => Sampler switch
    {
        "random" => new RandomSampler(),
        "grid" => new GridSampler(),
        "tpe-multivariate" => new TpeSampler(new TpeOptions { Multivariate = true }),
        "mcts" => new MctsSampler(MctsOptions.Flat),
        "hmcts" => new HierarchicalMctsSampler(MctsOptions.Hierarchical),
        _ => new TpeSampler(),
    };
}

/// <summary>
/// Fills a trial's parameters into an objective: <c>{{name}}</c> becomes the parameter's value (empty when its
/// condition switches it off), <c>{{name|default}}</c> the default then; <c>AIMASS_PARAM_NAME</c> variables carry the
/// active ones.
/// </summary>
public static partial class StudyTemplate
{
    /// <summary>The placeholders in <paramref name="text"/>: (name, default or null).</summary>
    public static IEnumerable<(string Name, string? Default)> Placeholders(string text) =>
        Placeholder().Matches(text ?? "").Select(m => (m.Groups["name"].Value, m.Groups["default"].Success ? m.Groups["default"].Value : null));

    /// <summary><paramref name="text"/> with every placeholder filled from <paramref name="values"/> (the active parameters, as written).</summary>
    public static string Render(string text, IReadOnlyDictionary<string, string> values)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(values);
        return Placeholder().Replace(text, m => values.TryGetValue(m.Groups["name"].Value, out var v) ? v
            : m.Groups["default"].Success ? m.Groups["default"].Value : "");
    }

    /// <summary>The environment variable of a parameter: <c>AIMASS_PARAM_</c> and its name in capitals, other characters as <c>_</c>.</summary>
    public static string EnvName(string parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        var name = new StringBuilder("AIMASS_PARAM_", 13 + parameter.Length);
        foreach (var c in parameter)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_');
        }
        return name.ToString();
    }

    [GeneratedRegex(@"\{\{\s*(?<name>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:\|(?<default>[^}]*))?\}\}", RegexOptions.CultureInvariant)]
    private static partial Regex Placeholder();
}

/// <summary>Reads study specs (YAML, docs/tuning.md); every problem is reported with its field and line.</summary>
public static class StudySpecReader
{
    /// <summary>
    /// Parses a study spec. A training objective (<c>objective.training: FILE</c>) needs that file's text in
    /// <paramref name="trainingText"/> (the CLI reads it; the control plane never reads a client's files), and
    /// <paramref name="baseDirectory"/> — where the spec was — resolves the training spec's relative paths.
    /// </summary>
    public static StudySpec Parse(string text, string source = "study spec", string? trainingText = null, string? baseDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var errors = new SpecErrors(source);
        var map = errors.RequireRoot(text, "the study spec is empty");
        var name = map.String("name", required: true);
        if (name is not null && !Registry.Names.IsValidModelName(name))
        {
            map.Error("name", $"'{name}' is not a valid study name: letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit");
        }
        var direction = map.String("direction")?.ToLowerInvariant() switch
        {
            null or "minimize" or "minimise" => Direction.Minimize,
            "maximize" or "maximise" => Direction.Maximize,
            var other => Bad(map, "direction", $"'{other}' is not a direction: minimize or maximize", Direction.Minimize),
        };
        var metric = map.String("metric");
        var spaceMap = map.Map("space");
        SearchSpace? space = null;
        if (spaceMap is null)
        {
            map.Error("space", "is required: the parameters to tune (see docs/tuning.md)");
        }
        else
        {
            space = SearchSpaceReader.Read(spaceMap);
        }
        var sampler = map.String("sampler")?.ToLowerInvariant() ?? "tpe";
        if (!StudySpec.Samplers.Contains(sampler))
        {
            map.Error("sampler", $"'{sampler}' is not a sampler: {string.Join(", ", StudySpec.Samplers)}");
        }
        var pruner = Pruner(map);
        var trials = map.Int("trials", 1, 1_000_000) ?? 100;
        var parallel = map.Int("parallel", 1, 10_000) ?? 1;
        var retries = map.Int("max_retries", 0, 100) ?? 2;
        var heartbeat = map.Parsed<TimeSpan>("heartbeat_timeout", Quantity.TryParseDuration);
        if (heartbeat is { } h && h < TimeSpan.FromSeconds(1))
        {
            map.Error("heartbeat_timeout", "must be at least 1s");
        }
        var seed = map.Int("seed", int.MinValue, int.MaxValue) ?? 0;
        var (command, training, trainingFile) = Objective(map, space, trainingText, baseDirectory);
        if (training is not null && metric is null)
        {
            map.Error("metric", "is required with a training objective: the evaluation metric to optimise (accuracy, f1, loss, ...)");
        }
        var jobMap = map.Map("job");
        var job = jobMap is null ? JobSpecReader.ReadTemplate(EmptyMap(errors)) : JobSpecReader.ReadTemplate(jobMap);
        var register = Register(map, training is not null);
        map.RejectUnknown();
        errors.ThrowIfAny();
        return new StudySpec
        {
            Name = name!,
            Direction = direction,
            Metric = metric ?? "objective",
            Space = space!,
            Sampler = sampler,
            Pruner = pruner,
            Trials = trials,
            Parallel = parallel,
            MaxRetries = retries,
            HeartbeatTimeout = heartbeat,
            Command = command,
            TrainingText = training,
            TrainingBaseDirectory = training is null ? null : Path.GetDirectoryName(Path.GetFullPath(trainingFile!, baseDirectory ?? Environment.CurrentDirectory)),
            BaseDirectory = baseDirectory is null ? null : Path.GetFullPath(baseDirectory),
            Job = job!,
            Register = register,
            Seed = seed,
        };
    }

    /// <summary>The training spec file a study spec's objective names (<c>objective.training</c>), or null; for a client to read and send it.</summary>
    public static string? TrainingFile(string text)
    {
        var errors = new SpecErrors("study spec");
        var objective = errors.Root(text ?? "")?.Map("objective");
        return objective?.Raw("training") is YamlDotNet.RepresentationModel.YamlScalarNode s ? s.Value : null;
    }

    private static T Bad<T>(SpecMap map, string field, string message, T fallback)
    {
        map.Error(field, message);
        return fallback;
    }

    private static SpecMap EmptyMap(SpecErrors errors) =>
        new(new YamlDotNet.RepresentationModel.YamlMappingNode(), "job", errors);

    private static PrunerSpec Pruner(SpecMap map)
    {
        if (map.Raw("pruner") is YamlDotNet.RepresentationModel.YamlScalarNode)
        {
            var type = map.String("pruner")?.ToLowerInvariant() ?? "none";
            return StudySpec.Pruners.Contains(type) ? new PrunerSpec(type) : Bad(map, "pruner", $"'{type}' is not a pruner: {string.Join(", ", StudySpec.Pruners)}", new PrunerSpec("none"));
        }
        var p = map.Map("pruner");
        if (p is null)
        {
            return new PrunerSpec("none");
        }
        var kind = p.String("type", required: true)?.ToLowerInvariant() ?? "none";
        if (!StudySpec.Pruners.Contains(kind))
        {
            p.Error("type", $"'{kind}' is not a pruner: {string.Join(", ", StudySpec.Pruners)}");
        }
        var spec = new PrunerSpec(kind,
            p.Parsed<long>("min_resource", PositiveLong) ?? 1,
            p.Parsed<long>("max_resource", PositiveLong),
            p.Int("reduction_factor", 2, 100) ?? 3,
            p.Int("startup_trials", 0, 1_000_000) ?? 5,
            p.Parsed<long>("warmup_steps", PositiveLong) ?? 0);
        if (spec.MaxResource is { } max && max < spec.MinResource)
        {
            p.Error("max_resource", "must be at least min_resource");
        }
        p.RejectUnknown();
        return spec;
    }

    private static bool PositiveLong(string text, out long value, out string? error)
    {
        error = long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) ? null : $"'{text}' is not a whole, non-negative number";
        return error is null;
    }

    private static (IReadOnlyList<string>? Command, string? Training, string? TrainingFile) Objective(SpecMap map, SearchSpace? space, string? trainingText, string? baseDirectory)
    {
        var objective = map.Map("objective");
        if (objective is null)
        {
            map.Error("objective", "is required: {command: ...} that prints objective=<number>, or {training: train.yaml} (see docs/tuning.md)");
            return (null, null, null);
        }
        var before = objective.Errors.Count;
        IReadOnlyList<string>? command = null;
        string? training = null;
        string? file = null;
        if (objective.Has("command"))
        {
            if (objective.Raw("command") is YamlDotNet.RepresentationModel.YamlScalarNode)
            {
                var line = objective.String("command", required: true);
                command = string.IsNullOrWhiteSpace(line) ? Bad<IReadOnlyList<string>?>(objective, "command", "must not be empty", null) : ["/bin/sh", "-c", line];
            }
            else
            {
                command = objective.StringList("command") is { Count: > 0 } list ? list : Bad<IReadOnlyList<string>?>(objective, "command", "must not be empty", null);
            }
            CheckPlaceholders(objective, "command", space, command ?? []);
        }
        if (objective.Has("training"))
        {
            file = objective.String("training", required: true);
            if (command is not null)
            {
                objective.Error("training", "an objective is a command or a training spec, not both");
            }
            else if (file is not null && trainingText is null)
            {
                objective.Error("training", $"the text of '{file}' must be sent with the study ('aimass tune' reads it)");
            }
            else if (file is not null)
            {
                training = trainingText;
                // Placeholders in comments are filled like any other, but only those outside comments must name parameters.
                CheckPlaceholders(objective, "training", space, training!.Split('\n').Where(line => !line.TrimStart().StartsWith('#')));
                if (space is not null && objective.Errors.Count == before)
                {
                    CheckTraining(objective, space, training!, file, baseDirectory);
                }
            }
        }
        else if (command is null && !objective.Has("command"))
        {
            objective.Error("", "needs a command or a training spec");
        }
        objective.RejectUnknown();
        return (command, training, file);
    }

    private static void CheckPlaceholders(SpecMap objective, string field, SearchSpace? space, IEnumerable<string> texts)
    {
        if (space is null)
        {
            return;
        }
        foreach (var name in texts.SelectMany(StudyTemplate.Placeholders).Select(p => p.Name).Distinct())
        {
            if (!space.Contains(name))
            {
                var guess = space.Parameters.Select(p => p.Name).OrderBy(p => SpecMap.Distance(p, name)).FirstOrDefault(p => SpecMap.Distance(p, name) <= 2);
                objective.Error(field, $"placeholder {{{{{name}}}}} names no parameter of the space" + (guess is null ? "" : $"; did you mean '{guess}'?"));
            }
        }
    }

    /// <summary>The training spec must read well with the parameters filled in: tried with a few drawn configurations, before any trial runs.</summary>
    private static void CheckTraining(SpecMap objective, SearchSpace space, string text, string file, string? baseDirectory)
    {
        var random = new Random(0);
        var sampler = new RandomSampler();
        var view = new Study(space, sampler);
        for (var i = 0; i < 4; i++)
        {
            var values = space.Format(sampler.Sample(view, random));
            try
            {
                TrainingSpecReader.Parse(StudyTemplate.Render(text, values), file,
                    Path.GetDirectoryName(Path.GetFullPath(file, baseDirectory ?? Environment.CurrentDirectory)));
            }
            catch (SpecException e)
            {
                var first = e.Errors.Count > 0 ? e.Errors[0] : null;
                objective.Error("training", $"with {string.Join(", ", values.Select(v => $"{v.Key}={v.Value}"))} the training spec is not valid: "
                    + (first is null ? e.Message : $"{first.Field} (line {first.Line}): {first.Message}"));
                return;
            }
        }
    }

    private static StudyRegisterSpec? Register(SpecMap map, bool training)
    {
        var r = map.Map("register");
        if (r is null)
        {
            return null;
        }
        var model = r.String("model", required: true);
        if (model is not null && !Registry.Names.IsValidModelName(model))
        {
            r.Error("model", $"'{model}' is not a valid model name");
        }
        var alias = r.String("alias");
        var artifact = r.String("artifact");
        if (training && artifact is not null)
        {
            r.Error("artifact", "a training objective registers the model it exports; artifact is for command objectives");
        }
        r.RejectUnknown();
        return model is null ? null : new StudyRegisterSpec(model, alias, artifact);
    }
}
