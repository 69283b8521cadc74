using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using AiMass.Client;
using AiMass.Registry;
using AiMass.Specs;
using AiMass.Studies;
using AiMass.Tuning;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary><c>aimass tune</c> and <c>aimass studies ...</c>: hyperparameter studies whose trials run as jobs.</summary>
internal static class TuneCommands
{
    public static Command Tune()
    {
        var file = new Argument<string>("SPEC") { Description = "The study spec (YAML): space, objective, sampler, pruner, budget; see docs/tuning.md and examples/tuning/" };
        var sampler = new Option<string?>("--sampler") { Description = $"Overrides the spec's sampler: {string.Join(", ", StudySpec.Samplers)}" };
        sampler.AcceptOnlyFromAmong([.. StudySpec.Samplers]);
        var trials = new Option<int?>("--trials") { Description = "Overrides the spec's number of configurations to try" };
        var parallel = new Option<int?>("--parallel") { Description = "Overrides the spec's number of trials running at once" };
        var seed = new Option<int?>("--seed") { Description = "Overrides the spec's seed" };
        var name = new Option<string?>("--name") { Description = "Overrides the spec's study name" };
        var detach = new Option<bool>("--detach", "-d") { Description = "Return once the study is created instead of following it to its end" };
        var command = new Command("tune", "Run a hyperparameter study: each trial is a job on the cluster; prints trials as they end and the best one")
        {
            file, sampler, trials, parallel, seed, name, detach,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var path = Path.GetFullPath(parse.GetValue(file)!);
            var text = await ReadAsync(path, "study spec", ct);
            var baseDirectory = Path.GetDirectoryName(path)!;
            string? training = null;
            if (StudySpecReader.TrainingFile(text) is { } trainingFile)
            {
                training = await ReadAsync(Path.GetFullPath(trainingFile, baseDirectory), "training spec named by objective.training", ct);
            }
            // Checked here first, so mistakes are reported before anything reaches the control plane.
            StudySpecReader.Parse(text, path, training, baseDirectory);
            using var client = Cli.CreateClient(parse);
            var study = await client.CreateStudyAsync(new CreateStudyRequest(text, path, baseDirectory, training,
                parse.GetValue(sampler), parse.GetValue(trials), parse.GetValue(parallel), parse.GetValue(seed), parse.GetValue(name)), ct);
            if (parse.GetValue(detach))
            {
                Cli.Print(parse, study, $"study {study.Name} (id {study.Id}) created: {study.Trials} trials, {study.Parallel} at a time, sampler {study.Sampler}, pruner {study.Pruner}"
                    + $"\nfollow it with 'aimass studies show {study.Name}'");
                return;
            }
            await FollowAsync(parse, client, study, ct);
        }));
        return command;
    }

    public static Command Studies()
    {
        var command = new Command("studies", "List, inspect, stop and report on hyperparameter studies");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Show());
        command.Subcommands.Add(Best());
        command.Subcommands.Add(Stop());
        command.Subcommands.Add(Report());
        return command;
    }

    private static async Task<string> ReadAsync(string path, string what, CancellationToken ct)
    {
        try
        {
            return await File.ReadAllTextAsync(path, ct);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CliException($"{what} '{path}' does not exist");
        }
    }

    /// <summary>Prints each trial as it ends until the study ends (Ctrl-C leaves it running on the control plane).</summary>
    private static async Task FollowAsync(ParseResult parse, AiMassClient client, StudyInfo study, CancellationToken ct)
    {
        var json = Cli.WantsJson(parse);
        if (!json)
        {
            Console.Out.WriteLine($"study {study.Name} (id {study.Id}): {study.Trials} trials, {study.Parallel} at a time, sampler {study.Sampler}, pruner {study.Pruner}, {study.Direction} {study.Metric}");
            Console.Out.WriteLine($"(Ctrl-C stops following; the study goes on — 'aimass studies stop {study.Name}' stops it)");
        }
        var printed = new HashSet<int>();
        double? best = null;
        while (true)
        {
            try
            {
                var trials = await client.GetTrialsAsync(study.Name, cancellationToken: ct);
                foreach (var t in trials.Where(t => t.State != "running" && printed.Add(t.Number)))
                {
                    if (json)
                    {
                        continue;
                    }
                    var improved = t.State == "complete" && t.Value is { } v && (best is null || (study.Direction == "minimize" ? v < best : v > best));
                    if (improved)
                    {
                        best = t.Value;
                    }
                    Console.Out.WriteLine(TrialLine(t, study.Metric) + (improved ? "  * best so far" : ""));
                }
                study = await client.GetStudyAsync(study.Name, ct);
                if (study.State is StudyState.Completed or StudyState.Stopped)
                {
                    break;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw new CliException($"stopped following; study {study.Name} goes on ('aimass studies show {study.Name}', 'aimass studies stop {study.Name}')");
            }
        }
        Cli.Print(parse, study, Summary(study));
        if (study.Best is null)
        {
            throw new SilentFailure();
        }
    }

    private static string Summary(StudyInfo s) =>
        $"study {s.Name} {s.State.ToString().ToLowerInvariant()}: {s.Complete} complete, {s.Pruned} pruned, {s.Failed} failed of {s.Started} trials"
        + (s.Best is { } b ? $"\nbest: trial {b.Number}, {s.Metric} {Number(b.Value)} with {Params(b)}" : "")
        + (s.Message is null ? "" : $"\n{s.Message}");

    private static string TrialLine(TrialInfo t, string metric) => t.State switch
    {
        "complete" => $"trial {t.Number} complete: {metric} {Number(t.Value)}  ({Params(t)})",
        "pruned" => $"trial {t.Number} pruned: {t.Reason}  ({Params(t)})",
        _ => $"trial {t.Number} failed: {t.Reason}  ({Params(t)})",
    } + (t.RetryOf is { } r ? $" [retry of trial {r}]" : "");

    private static string Params(TrialInfo t) => string.Join(", ", t.Params.Select(p => $"{p.Key}={p.Value}"));

    private static string Number(double? value) => value is { } v ? v.ToString("G6", CultureInfo.InvariantCulture) : "-";

    private static Argument<string> StudyArgument() => new("STUDY") { Description = "The study's name or id" };

    private static Command List()
    {
        var state = new Option<string?>("--state") { Description = "Only studies in this state: running, stopping, stopped, completed" };
        state.AcceptOnlyFromAmong("running", "stopping", "stopped", "completed");
        var (pageSize, pageToken, all) = Cli.PagingOptions();
        var command = new Command("list", "List studies, newest first") { state, pageSize, pageToken, all };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            StudyState? filter = parse.GetValue(state) is { } wanted ? Enum.Parse<StudyState>(wanted, ignoreCase: true) : null;
            var (items, token) = await Cli.FetchAsync(parse.GetValue(pageToken), parse.GetValue(all), t => client.ListStudiesAsync(filter, parse.GetValue(pageSize), t, ct));
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new Page<StudyInfo>(items, token));
                return;
            }
            var table = new Table().AddColumns("ID", "NAME", "STATE", "SAMPLER", "PRUNER", "TRIALS", "RUNNING", "COMPLETE", "PRUNED", "FAILED", "BEST", "CREATED");
            foreach (var s in items)
            {
                table.AddRow(s.Id.ToString(CultureInfo.InvariantCulture), Cli.Esc(s.Name), s.State.ToString().ToLowerInvariant(), s.Sampler, s.Pruner,
                    $"{s.Started}/{s.Trials}", Int(s.Running), Int(s.Complete), Int(s.Pruned), Int(s.Failed),
                    s.Best is { } b ? $"{Number(b.Value)} (#{b.Number})" : "-", Cli.Time(s.CreatedAt));
            }
            AnsiConsole.Write(table);
            if (token is not null)
            {
                Console.Out.WriteLine($"more: --page-token {token}");
            }
        }));
        return command;
    }

    private static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static Command Show()
    {
        var study = StudyArgument();
        var state = new Option<string?>("--state") { Description = "Only trials in this state: running, complete, pruned, failed" };
        state.AcceptOnlyFromAmong("running", "complete", "pruned", "failed");
        var command = new Command("show", "A study and its trials") { study, state };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var s = await client.GetStudyAsync(parse.GetValue(study)!, ct);
            var trials = await client.GetTrialsAsync(s.Name, parse.GetValue(state), cancellationToken: ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new { study = s, trials });
                return;
            }
            Console.Out.WriteLine($"{s.Name} (id {s.Id}) {s.State.ToString().ToLowerInvariant()}: {s.Direction} {s.Metric}, sampler {s.Sampler}, pruner {s.Pruner}, {s.Objective} objective, "
                + $"{s.Started}/{s.Trials} trials ({s.Running} running), {s.Parallel} at a time; created {Cli.Time(s.CreatedAt)}{(s.EndedAt is { } e ? $", ended {Cli.Time(e)}" : "")}");
            if (s.Message is not null)
            {
                Console.Out.WriteLine(s.Message);
            }
            var names = trials.SelectMany(t => t.Params.Keys).Distinct().ToList();
            var table = new Table().AddColumns(["#", "STATE", s.Metric.ToUpperInvariant(), .. names.Select(n => n.ToUpperInvariant()), "STEPS", "JOB", "NOTE"]);
            foreach (var t in trials)
            {
                table.AddRow([Int(t.Number), t.State + (s.Best?.Number == t.Number ? " *" : ""), Number(t.Value),
                    .. names.Select(n => Cli.Esc(t.Params.GetValueOrDefault(n, ""))), Int(t.IntermediateCount),
                    t.JobId?.ToString(CultureInfo.InvariantCulture) ?? "-", Cli.Esc((t.RetryOf is { } r ? $"retry of {r}; " : "") + (t.Reason ?? ""))]);
            }
            AnsiConsole.Write(table);
        }));
        return command;
    }

    private static Command Best()
    {
        var study = StudyArgument();
        var command = new Command("best", "The best complete trial of a study: its value and parameters") { study };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var s = await client.GetStudyAsync(parse.GetValue(study)!, ct);
            var best = await client.GetBestTrialAsync(s.Name, ct);
            Cli.Print(parse, best, $"trial {best.Number}: {s.Metric} {Number(best.Value)}\n"
                + string.Join("\n", best.Params.Select(p => $"  {p.Key}: {p.Value}"))
                + (s.Registered is { } r ? $"\nregistered as {r}" : ""));
        }));
        return command;
    }

    private static Command Stop()
    {
        var study = StudyArgument();
        var command = new Command("stop", "Stop a study: its running trials are cancelled, no new trial starts") { study };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var s = await client.StopStudyAsync(parse.GetValue(study)!, ct);
            Cli.Print(parse, s, $"study {s.Name} stopping: {s.Running} running trial(s) are being cancelled");
        }));
        return command;
    }

    private static Command Report()
    {
        var study = StudyArgument();
        var output = new Option<string>("--output", "-o") { Description = "Directory for history, parallel-coordinates and importance (.png and .svg) and report.json", Required = true };
        var command = new Command("report", "Draw a study's optimisation history, parallel coordinates and parameter importance") { study, output };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var s = await client.GetStudyAsync(parse.GetValue(study)!, ct);
            var json = await client.GetStudyReportAsync(s.Name, ct);
            var report = json.Deserialize<StudyReport>(AiMassJson.Options) ?? throw new CliException("the control plane sent an empty report");
            var files = report.Write(parse.GetValue(output)!, s.Name);
            Cli.Print(parse, report, string.Join("\n", files.Prepend($"report of {s.Name} ({report.Lines.Count} complete trials):"))
                + "\nimportance: " + string.Join(", ", report.Importance.Select(i => $"{i.Name} {i.Importance:P0}")));
        }));
        return command;
    }
}
