using System.CommandLine;
using System.Globalization;
using System.Text;
using AiMass.IO;
using AiMass.Simulation;
using AiMass.Specs;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary><c>aimass sim ...</c>: the cluster simulator (the platform's meta-model), in this process.</summary>
internal static class SimCommands
{
    private const string SwfPolicies = "fcfs, easy, conservative";

    public static Command Create()
    {
        var command = new Command("sim", "Simulate the cluster: replay workloads with the live scheduler on a virtual clock (docs/simulator.md)");
        command.Subcommands.Add(Run());
        command.Subcommands.Add(Compare());
        command.Subcommands.Add(Snapshot());
        return command;
    }

    /// <summary>The options both commands share: what to simulate.</summary>
    private sealed class Inputs
    {
        public Option<string?> Trace { get; } = new("--trace") { Description = "A Standard Workload Format trace (.swf), replayed on N identical processors" };

        public Option<string?> Scenario { get; } = new("--scenario") { Description = "A scenario (.yaml): cluster, workload, failures, checkpoints (docs/simulator.md)" };

        public Option<long?> Processors { get; } = new("--processors") { Description = "With --trace: processors of the machine (default: the trace header's MaxProcs)" };

        public Option<int?> Seed { get; } = new("--seed") { Description = "With --scenario: the seed of its random draws (default: the scenario's)" };

        public Option<string?> Output { get; } = new("--output") { Description = "Directory for the results (jobs.csv, summary.json; with --scenario also timeseries.csv; plots as PNG and SVG)" };

        public Option<string[]> WhatIf { get; } = new("--what-if")
        {
            Description = $"With --scenario: a change to try (repeatable): {Simulation.WhatIf.Forms}",
            AllowMultipleArgumentsPerToken = false,
        };

        public void AddTo(Command command)
        {
            command.Options.Add(Trace);
            command.Options.Add(Scenario);
            command.Options.Add(Processors);
            command.Options.Add(Seed);
            command.Options.Add(Output);
            command.Options.Add(WhatIf);
        }

        /// <summary>The what-if changes asked for (only with a scenario).</summary>
        public List<Simulation.WhatIf> Changes(ParseResult parse, Scenario? scenario)
        {
            var texts = parse.GetValue(WhatIf) ?? [];
            if (texts.Length > 0 && scenario is null)
            {
                throw new CliException("--what-if applies to --scenario");
            }
            try
            {
                return texts.Select(Simulation.WhatIf.Parse).ToList();
            }
            catch (ArgumentException e)
            {
                throw new CliException(e.Message);
            }
        }

        /// <summary>The scenario, or null for an SWF replay (then the trace); exactly one of the two must be given.</summary>
        public (Scenario? Scenario, string? TracePath, SwfTrace? Swf) Load(ParseResult parse)
        {
            var trace = parse.GetValue(Trace);
            var scenario = parse.GetValue(Scenario);
            if ((trace is null) == (scenario is null))
            {
                throw new CliException("give either --trace FILE.swf or --scenario FILE.yaml");
            }
            if (scenario is not null)
            {
                if (parse.GetValue(Processors) is not null)
                {
                    throw new CliException("--processors applies to --trace; a scenario declares its nodes");
                }
                var loaded = ScenarioReader.ReadFile(scenario);
                return (parse.GetValue(Seed) is { } seed ? loaded with { Seed = seed } : loaded, null, null);
            }
            if (parse.GetValue(Seed) is not null)
            {
                throw new CliException("--seed applies to --scenario (an SWF replay draws nothing at random)");
            }
            var (path, swf) = LoadTrace(trace!, parse.GetValue(Processors));
            return (null, path, swf);
        }
    }

    private static Command Run()
    {
        var inputs = new Inputs();
        var policy = new Option<string?>("--policy")
        {
            Description = "With --trace: fcfs, easy (default) or conservative. With --scenario: terms joined by '+' that change the scenario's policy — "
                + "fifo|priority|drf|sjf|las, easy|conservative|nobackfill, binpack|spread, preempt|nopreempt; fcfs = fifo+nobackfill (default: the scenario's own)",
        };
        var command = new Command("run", "Simulate a scenario or replay an SWF trace with the live scheduler; print the summary, write per-job results and plots") { policy };
        inputs.AddTo(command);
        command.SetAction((parse, ct) => Cli.RunAsync(parse, () =>
        {
            var (scenario, path, swf) = inputs.Load(parse);
            var output = parse.GetValue(inputs.Output);
            var changes = inputs.Changes(parse, scenario);
            if (scenario is not null)
            {
                scenario = Change(scenario, changes);
                var result = Simulate(scenario, SimulationPolicy(parse.GetValue(policy) ?? "scenario"));
                if (Cli.WantsJson(parse))
                {
                    Cli.PrintJson(new { Scenario = scenario.Name, scenario.Seed, result.Policy, result.Summary, result.Skipped, result.Events, ElapsedSeconds = result.Elapsed.TotalSeconds });
                }
                else
                {
                    AnsiConsole.Write(ScenarioTable(scenario, result));
                }
                if (output is not null)
                {
                    var files = ScenarioReport.Write(output, result, scenario);
                    if (!Cli.WantsJson(parse))
                    {
                        Console.Out.WriteLine($"wrote {string.Join(", ", files.Select(Path.GetFileName))} to {output}");
                    }
                }
                return Task.CompletedTask;
            }
            var chosen = (parse.GetValue(policy) ?? "easy").ToLowerInvariant();
            RequireSwfPolicies("--policy", [chosen]);
            var replay = Replay(swf!, chosen, parse.GetValue(inputs.Processors));
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new { Trace = path, Policy = chosen, replay.Summary, replay.Skipped, replay.Events, ElapsedSeconds = replay.Elapsed.TotalSeconds });
            }
            else
            {
                AnsiConsole.Write(SwfTable(chosen, replay));
            }
            if (output is not null)
            {
                SimulationReport.Write(output, replay, chosen, path!);
                if (!Cli.WantsJson(parse))
                {
                    Console.Out.WriteLine($"wrote {Path.Combine(output, "jobs.csv")}, {Path.Combine(output, "summary.json")} and plots");
                }
            }
            return Task.CompletedTask;
        }));
        return command;
    }

    private static Command Compare()
    {
        var inputs = new Inputs();
        var policies = new Option<string?>("--policies")
        {
            Description = "Comma-separated policies. With --trace: fcfs, easy, conservative (default: all three). "
                + "With --scenario: policies as for 'sim run --policy', e.g. fcfs,easy,sjf+easy,las,drf+easy (default: fcfs,easy,sjf+easy,las)",
        };
        var command = new Command("compare", "Run several policies on the same scenario or SWF trace and print their figures side by side (with --output: per-policy results and overlaid plots)") { policies };
        inputs.AddTo(command);
        command.SetAction((parse, ct) => Cli.RunAsync(parse, () =>
        {
            var (scenario, path, swf) = inputs.Load(parse);
            var output = parse.GetValue(inputs.Output);
            var changes = inputs.Changes(parse, scenario);
            var chosen = (parse.GetValue(policies) ?? (scenario is null ? "fcfs,easy,conservative" : "fcfs,easy,sjf+easy,las"))
                .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(p => p.ToLowerInvariant()).Distinct(StringComparer.Ordinal).ToList();
            if (chosen.Count == 0)
            {
                throw new CliException("--policies: name at least one policy");
            }
            return scenario is null
                ? CompareSwf(swf!, path!, chosen, parse.GetValue(inputs.Processors), output, Cli.WantsJson(parse))
                : CompareScenario(scenario, changes, chosen, output, Cli.WantsJson(parse));
        }));
        return command;
    }

    private static Command Snapshot()
    {
        var output = new Option<string>("--output") { Description = "The scenario file to write (e.g. snap.yaml); its cluster and jobs go next to it (snap.cluster.yaml, snap.jobs.csv)", Required = true };
        var since = new Option<string>("--since") { Description = "How far back the job history goes (e.g. 7d, 12h)", DefaultValueFactory = _ => "7d" };
        var command = new Command("snapshot", "Write a scenario from the running cluster: its policy, queues, nodes and pools, and the jobs submitted recently") { output, since };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            if (!Resources.Quantity.TryParseDuration(parse.GetValue(since), out var window, out var error) || window <= TimeSpan.Zero)
            {
                throw new CliException($"--since: {error ?? "must be a positive duration"}");
            }
            var path = Path.GetFullPath(parse.GetValue(output)!);
            var stem = Path.GetFileNameWithoutExtension(path);
            var directory = Path.GetDirectoryName(path)!;
            using var client = Cli.CreateClient(parse);
            var clusterYaml = await client.GetClusterFileAsync(ct);
            var now = DateTimeOffset.UtcNow;
            var (jobs, _) = await Cli.FetchAsync<Jobs.JobInfo>(null, all: true, t => client.ListJobsAsync(pageSize: 500, pageToken: t, cancellationToken: ct));
            var skipped = new SortedDictionary<string, int>(StringComparer.Ordinal);
            var workload = JobHistory.ToSimJobs(jobs, now - window, now, skipped);
            Directory.CreateDirectory(directory);
            var clusterFile = stem + ".cluster.yaml";
            var jobsFile = stem + ".jobs.csv";
            AtomicFile.Write(Path.Combine(directory, clusterFile), clusterYaml);
            var csv = new StringWriter(CultureInfo.InvariantCulture);
            DlTraceReader.WriteCsv(csv, workload);
            AtomicFile.Write(Path.Combine(directory, jobsFile), csv.ToString());
            var server = parse.GetValue(Cli.Server);
            AtomicFile.Write(path, string.Create(CultureInfo.InvariantCulture, $"""
                # A snapshot of the AI Mass cluster at {server}, taken {now:yyyy-MM-dd HH:mm:ss}Z: its cluster file and the
                # {workload.Count} jobs submitted in the {Resources.Quantity.FormatDuration(window)} before, with the run times they had.
                # Try it: aimass sim compare --scenario {Path.GetFileName(path)} --what-if 'pool NAME +4 nodes'
                name: {stem}
                seed: 1
                cluster_file: {clusterFile}
                workload:
                  traces:
                    - file: {jobsFile}

                """));
            Console.Out.WriteLine($"wrote {path} with {clusterFile} and {jobsFile} ({workload.Count} jobs"
                + (skipped.Count > 0 ? "; left out: " + string.Join(", ", skipped.Select(p => $"{p.Value} {p.Key}")) : "") + ")");
        }));
        return command;
    }

    private static Task CompareSwf(SwfTrace swf, string path, IReadOnlyList<string> chosen, long? processors, string? output, bool json)
    {
        var rows = new List<object>();
        RequireSwfPolicies("--policies", chosen);
        var table = new Table().AddColumns("POLICY", "JOBS", "UTILISATION", "MEAN WAIT (S)", "P95 WAIT (S)", "P99 WAIT (S)", "MEAN BSLD", "MEAN JCT (S)", "MAKESPAN (S)", "SIMULATED IN");
        var runs = new List<PlotRun>();
        foreach (var name in chosen)
        {
            var result = Replay(swf, name, processors);
            if (output is not null)
            {
                SimulationReport.Write(Path.Combine(output, name), result, name, path, plots: false);
                runs.Add(PlotRun.Of(result, name));
            }
            var s = result.Summary;
            rows.Add(new { Policy = name, Summary = s, result.Skipped, ElapsedSeconds = result.Elapsed.TotalSeconds });
            table.AddRow(name, s.Jobs.ToString(CultureInfo.InvariantCulture), F(s.Utilization * 100, "0.0") + " %", F(s.MeanWait, "0.#"), F(s.P95Wait, "0"),
                F(s.P99Wait, "0"), F(s.MeanBoundedSlowdown), F(s.MeanJobCompletionTime, "0.#"), s.Makespan.ToString(CultureInfo.InvariantCulture),
                F(result.Elapsed.TotalSeconds, "0.00") + " s");
        }
        Show(table, rows, json);
        if (output is not null)
        {
            SimulationPlots.Write(output, runs);
            if (!json)
            {
                Console.Out.WriteLine($"wrote one directory per policy and the overlaid plots to {output}");
            }
        }
        return Task.CompletedTask;
    }

    private static Task CompareScenario(Scenario baseline, List<Simulation.WhatIf> changes, IReadOnlyList<string> chosen, string? output, bool json)
    {
        var rows = new List<object>();
        var parsed = chosen.Select(SimulationPolicy).ToList();
        // With what-if changes every policy runs on the scenario as it is and as changed, side by side.
        var variants = changes.Count == 0 ? [(Label: "", Scenario: baseline)] : new[] { (Label: "", Scenario: baseline), (Label: " + what-if", Scenario: Change(baseline, changes)) };
        var table = new Table().AddColumns("POLICY", "DONE", "GPU UTIL", "CPU UTIL", "MEAN WAIT", "P95 WAIT", "MEAN JCT", "P95 JCT", "MEAN BSLD", "MAKESPAN", "PREEMPTED", "KILLED", "LOST GPU-H", "SIMULATED IN");
        var runs = new List<PlotRun>();
        var csv = new StringBuilder("policy,jobs,unfinished,gpu_utilization,cpu_utilization,mean_wait,p50_wait,p95_wait,p99_wait,mean_jct,p95_jct,mean_bounded_slowdown,makespan,preemptions,jobs_killed_by_failures,lost_gpu_hours\n");
        foreach (var policy in parsed)
        {
            foreach (var (label, scenario) in variants)
            {
                var name = policy.Name + label;
                var result = Simulate(scenario, policy);
                var s = result.Summary;
                rows.Add(new { Policy = name, Scenario = scenario.Name, Summary = s, result.Skipped, ElapsedSeconds = result.Elapsed.TotalSeconds });
                if (output is not null)
                {
                    ScenarioReport.Write(Path.Combine(output, Safe(policy.Name) + (label.Length > 0 ? ".what-if" : "")), result, scenario, plots: false);
                    runs.Add(PlotRun.Of(result) with { Label = name });
                }
                csv.Append(CultureInfo.InvariantCulture,
                    $"{CsvText.Quote(name)},{s.Jobs},{s.Unfinished},{s.GpuUtilization:0.######},{s.CpuUtilization:0.######},{s.MeanWait:0.###},{s.P50Wait:0.###},{s.P95Wait:0.###},{s.P99Wait:0.###},{s.MeanJobCompletionTime:0.###},{s.P95JobCompletionTime:0.###},{s.MeanBoundedSlowdown:0.######},{s.Makespan:0.###},{s.Preemptions},{s.JobsKilledByFailures},{s.LostGpuHours:0.###}\n");
                table.AddRow(Cli.Esc(name), $"{s.Jobs}/{s.Jobs + s.Unfinished}", F(s.GpuUtilization * 100, "0.0") + " %", F(s.CpuUtilization * 100, "0.0") + " %",
                    D(s.MeanWait), D(s.P95Wait), D(s.MeanJobCompletionTime), D(s.P95JobCompletionTime), F(s.MeanBoundedSlowdown), D(s.Makespan),
                    s.Preemptions.ToString(CultureInfo.InvariantCulture), s.JobsKilledByFailures.ToString(CultureInfo.InvariantCulture), F(s.LostGpuHours, "0.#"),
                    F(result.Elapsed.TotalSeconds, "0.00") + " s");
            }
        }
        if (changes.Count > 0)
        {
            table.Caption(Cli.Esc("what-if: " + string.Join("; ", changes.Select(c => c.Text))));
        }
        Show(table, rows, json);
        if (output is not null)
        {
            Directory.CreateDirectory(output);
            AtomicFile.Write(Path.Combine(output, "compare.csv"), csv.ToString());
            SimulationPlots.Write(output, runs);
            if (!json)
            {
                Console.Out.WriteLine($"wrote compare.csv, one directory per policy and the overlaid plots to {output}");
            }
        }
        return Task.CompletedTask;
    }

    private static string Safe(string policy) => policy.Replace('+', '_');

    /// <summary>The table for people, or with --json one object per run.</summary>
    private static void Show(Table table, List<object> rows, bool json)
    {
        if (json)
        {
            Cli.PrintJson(rows);
        }
        else
        {
            AnsiConsole.Write(table);
        }
    }


    private static Scenario Change(Scenario scenario, List<Simulation.WhatIf> changes)
    {
        try
        {
            return changes.Aggregate(scenario, (s, c) => c.Apply(s));
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
    }

    private static Simulation.SimulationPolicy SimulationPolicy(string text)
    {
        try
        {
            return Simulation.SimulationPolicy.Parse(text);
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
    }

    private static ScenarioResult Simulate(Scenario scenario, Simulation.SimulationPolicy policy)
    {
        try
        {
            return ScenarioSimulator.Run(scenario, policy);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"scenario {scenario.Name}: {e.Message}");
        }
        catch (Scheduling.SchedulingException e)
        {
            throw new CliException($"scenario {scenario.Name}: {e.Message}");
        }
    }

    private static Table ScenarioTable(Scenario scenario, ScenarioResult result)
    {
        var s = result.Summary;
        var table = new Table().AddColumns("MEASURE", "VALUE");
        table.AddRow("scenario", Cli.Esc($"{scenario.Name} (seed {scenario.Seed})"));
        table.AddRow("policy", Cli.Esc(result.Policy));
        table.AddRow("jobs finished / unfinished", $"{s.Jobs} / {s.Unfinished}");
        table.AddRow("jobs skipped", result.Skipped.Count == 0 ? "0" : Cli.Esc(string.Join("; ", result.Skipped.Select(p => $"{p.Value} {p.Key}"))));
        table.AddRow("GPU / CPU utilisation", $"{F(s.GpuUtilization * 100, "0.0")} % / {F(s.CpuUtilization * 100, "0.0")} %");
        table.AddRow("wait mean / p50 / p95 / p99", $"{D(s.MeanWait)} / {D(s.P50Wait)} / {D(s.P95Wait)} / {D(s.P99Wait)}");
        table.AddRow("job completion time mean / p50 / p95", $"{D(s.MeanJobCompletionTime)} / {D(s.P50JobCompletionTime)} / {D(s.P95JobCompletionTime)}");
        table.AddRow("mean bounded slowdown (10 s)", F(s.MeanBoundedSlowdown));
        table.AddRow("makespan", D(s.Makespan));
        table.AddRow("node failures / jobs killed", $"{s.NodeFailures} / {s.JobsKilledByFailures}");
        table.AddRow("lost to failures", $"{F(s.LostGpuHours, "0.#")} GPU-h, {F(s.LostCpuHours, "0.#")} core-h");
        table.AddRow("preemptions (lost GPU-h)", $"{s.Preemptions} ({F(s.PreemptionLostGpuHours, "0.#")})");
        table.AddRow("nodes provisioned", s.NodesProvisioned.ToString(CultureInfo.InvariantCulture));
        if (!scenario.Network.IsEmpty)
        {
            table.AddRow("staging / network slowdown (job-h)", $"{F(s.StagingHours, "0.#")} / {F(s.NetworkSlowdownHours, "0.#")}");
            table.AddRow("storage: stalls (job-h) / peak", $"{F(s.StorageStallHours, "0.#")} / {Cli.Bytes(s.PeakStorageBytes)}");
        }
        table.AddRow("simulated in", $"{F(result.Elapsed.TotalSeconds, "0.00")} s ({result.Events.ToString(CultureInfo.InvariantCulture)} events)");
        return table;
    }

    private static Table SwfTable(string policy, ReplayResult result)
    {
        var s = result.Summary;
        var table = new Table().AddColumns("MEASURE", "VALUE");
        table.AddRow("policy", policy);
        table.AddRow("processors", s.Processors.ToString(CultureInfo.InvariantCulture));
        table.AddRow("jobs replayed", s.Jobs.ToString(CultureInfo.InvariantCulture));
        table.AddRow("jobs skipped", result.Skipped.Count == 0 ? "0" : Cli.Esc(string.Join(", ", result.Skipped.Select(p => $"{p.Value} {p.Key}"))));
        table.AddRow("utilisation", F(s.Utilization * 100, "0.0") + " %");
        table.AddRow("wait mean / p50 / p95 / p99 (s)", $"{F(s.MeanWait, "0.#")} / {F(s.P50Wait, "0")} / {F(s.P95Wait, "0")} / {F(s.P99Wait, "0")}");
        table.AddRow("mean bounded slowdown (10 s)", F(s.MeanBoundedSlowdown));
        table.AddRow("mean job completion time (s)", F(s.MeanJobCompletionTime, "0.#"));
        table.AddRow("makespan (s)", s.Makespan.ToString(CultureInfo.InvariantCulture));
        table.AddRow("simulated in", $"{F(result.Elapsed.TotalSeconds, "0.00")} s ({result.Events.ToString(CultureInfo.InvariantCulture)} events)");
        return table;
    }

    private static void RequireSwfPolicies(string option, IReadOnlyList<string> chosen)
    {
        var unknown = chosen.Where(p => !Enum.TryParse<ReplayPolicy>(p, ignoreCase: true, out _) || p.All(char.IsAsciiDigit)).ToList();
        if (unknown.Count > 0)
        {
            throw new CliException($"{option}: unknown {string.Join(", ", unknown.Select(u => $"'{u}'"))}; choose among {SwfPolicies} (a scenario takes more)");
        }
    }

    private static string F(double v, string format = "0.##") => v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>Seconds for people: 42 s, 12.5 min, 3.2 h, 2.1 d.</summary>
    private static string D(double seconds) => seconds switch
    {
        < 120 => F(seconds, "0.#") + " s",
        < 7200 => F(seconds / 60, "0.#") + " min",
        < 172_800 => F(seconds / 3600, "0.#") + " h",
        _ => F(seconds / 86_400, "0.#") + " d",
    };

    private static (string Path, SwfTrace Trace) LoadTrace(string path, long? processors)
    {
        if (!File.Exists(path))
        {
            throw new CliException($"trace '{path}' does not exist");
        }
        SwfTrace swf;
        try
        {
            swf = SwfReader.ReadFile(path);
        }
        catch (TraceFormatException e)
        {
            throw new CliException($"not a valid SWF trace: {e.Message}");
        }
        if (processors is < 1)
        {
            throw new CliException("--processors must be at least 1");
        }
        if (processors is null && swf.MaxProcessors is null)
        {
            throw new CliException($"{path} has no MaxProcs (or MaxNodes) in its header: give --processors");
        }
        return (Path.GetFullPath(path), swf);
    }

    private static ReplayResult Replay(SwfTrace swf, string policy, long? processors)
    {
        try
        {
            return SwfReplay.Run(swf, Enum.Parse<ReplayPolicy>(policy, ignoreCase: true), processors);
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
    }
}
