using System.CommandLine;
using System.Globalization;
using AiMass.Simulation;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary><c>aimass sim ...</c>: the cluster simulator (the platform's meta-model), in this process.</summary>
internal static class SimCommands
{
    public static Command Create()
    {
        var command = new Command("sim", "Simulate the cluster: replay workloads with the live scheduler on a virtual clock (docs/simulator.md)");
        command.Subcommands.Add(Run());
        command.Subcommands.Add(Compare());
        return command;
    }

    private static Command Compare()
    {
        var trace = new Option<string>("--trace") { Description = "A Standard Workload Format trace (.swf)", Required = true };
        var policies = new Option<string>("--policies") { Description = "Comma-separated policies to compare: fcfs, easy, conservative", DefaultValueFactory = _ => "fcfs,easy,conservative" };
        var processors = new Option<long?>("--processors") { Description = "Processors of the machine (default: the trace header's MaxProcs)" };
        var output = new Option<string?>("--output") { Description = "Directory for one sub-directory per policy with its jobs.csv and summary.json" };
        var command = new Command("compare", "Replay one SWF trace under several policies and print their figures side by side")
        {
            trace, policies, processors, output,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, () =>
        {
            var (path, swf) = Load(parse.GetValue(trace)!, parse.GetValue(processors));
            var chosen = parse.GetValue(policies)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var unknown = chosen.Where(p => !Enum.TryParse<ReplayPolicy>(p, ignoreCase: true, out _) || p.All(char.IsAsciiDigit)).ToList();
            if (chosen.Length == 0 || unknown.Count > 0)
            {
                throw new CliException($"--policies: unknown {string.Join(", ", unknown.Select(u => $"'{u}'"))}; choose among fcfs, easy, conservative");
            }
            var table = new Table().AddColumns("POLICY", "JOBS", "UTILISATION", "MEAN WAIT (S)", "P95 WAIT (S)", "P99 WAIT (S)", "MEAN BSLD", "MEAN JCT (S)", "MAKESPAN (S)", "SIMULATED IN");
            foreach (var name in chosen.Select(c => c.ToLowerInvariant()).Distinct(StringComparer.Ordinal))
            {
                var result = Replay(swf, name, parse.GetValue(processors));
                if (parse.GetValue(output) is { } dir)
                {
                    SimulationReport.Write(Path.Combine(dir, name), result, name, path);
                }
                var s = result.Summary;
                table.AddRow(name, s.Jobs.ToString(CultureInfo.InvariantCulture), F(s.Utilization * 100, "0.0") + " %", F(s.MeanWait, "0.#"), F(s.P95Wait, "0"),
                    F(s.P99Wait, "0"), F(s.MeanBoundedSlowdown), F(s.MeanJobCompletionTime, "0.#"), s.Makespan.ToString(CultureInfo.InvariantCulture),
                    F(result.Elapsed.TotalSeconds, "0.00") + " s");
            }
            AnsiConsole.Write(table);
            return Task.CompletedTask;
        }));
        return command;
    }

    private static string F(double v, string format = "0.##") => v.ToString(format, CultureInfo.InvariantCulture);

    private static (string Path, SwfTrace Trace) Load(string path, long? processors)
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
        catch (SwfFormatException e)
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

    private static Command Run()
    {
        var trace = new Option<string>("--trace") { Description = "A Standard Workload Format trace (.swf)", Required = true };
        var policy = new Option<string>("--policy") { Description = "fcfs, easy (EASY backfilling) or conservative (conservative backfilling)", DefaultValueFactory = _ => "easy" };
        policy.AcceptOnlyFromAmong("fcfs", "easy", "conservative");
        var processors = new Option<long?>("--processors") { Description = "Processors of the machine (default: the trace header's MaxProcs)" };
        var output = new Option<string?>("--output") { Description = "Directory for jobs.csv and summary.json (default: print the summary only)" };
        var command = new Command("run", "Replay an SWF trace on N identical processors with the live scheduler; print the summary, write per-job results")
        {
            trace, policy, processors, output,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, () =>
        {
            var (path, swf) = Load(parse.GetValue(trace)!, parse.GetValue(processors));
            var chosen = parse.GetValue(policy)!;
            var result = Replay(swf, chosen, parse.GetValue(processors));
            if (parse.GetValue(output) is { } dir)
            {
                SimulationReport.Write(dir, result, chosen, path);
            }
            var s = result.Summary;
            var table = new Table().AddColumns("MEASURE", "VALUE");
            table.AddRow("policy", chosen);
            table.AddRow("processors", s.Processors.ToString(CultureInfo.InvariantCulture));
            table.AddRow("jobs replayed", s.Jobs.ToString(CultureInfo.InvariantCulture));
            table.AddRow("jobs skipped", result.Skipped.Count == 0 ? "0" : Cli.Esc(string.Join(", ", result.Skipped.Select(p => $"{p.Value} {p.Key}"))));
            table.AddRow("utilisation", F(s.Utilization * 100, "0.0") + " %");
            table.AddRow("wait mean / p50 / p95 / p99 (s)", $"{F(s.MeanWait, "0.#")} / {F(s.P50Wait, "0")} / {F(s.P95Wait, "0")} / {F(s.P99Wait, "0")}");
            table.AddRow("mean bounded slowdown (10 s)", F(s.MeanBoundedSlowdown));
            table.AddRow("mean job completion time (s)", F(s.MeanJobCompletionTime, "0.#"));
            table.AddRow("makespan (s)", s.Makespan.ToString(CultureInfo.InvariantCulture));
            table.AddRow("simulated in", $"{F(result.Elapsed.TotalSeconds, "0.00")} s ({result.Events.ToString(CultureInfo.InvariantCulture)} events)");
            AnsiConsole.Write(table);
            if (parse.GetValue(output) is { } written)
            {
                Console.Out.WriteLine($"wrote {Path.Combine(written, "jobs.csv")} and {Path.Combine(written, "summary.json")}");
            }
            return Task.CompletedTask;
        }));
        return command;
    }
}
