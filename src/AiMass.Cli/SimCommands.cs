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
        return command;
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
            var path = parse.GetValue(trace)!;
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
            var chosen = parse.GetValue(policy)!;
            if (parse.GetValue(processors) is < 1)
            {
                throw new CliException("--processors must be at least 1");
            }
            if (parse.GetValue(processors) is null && swf.MaxProcessors is null)
            {
                throw new CliException($"{path} has no MaxProcs (or MaxNodes) in its header: give --processors");
            }
            ReplayResult result;
            try
            {
                result = SwfReplay.Run(swf, Enum.Parse<ReplayPolicy>(chosen, ignoreCase: true), parse.GetValue(processors));
            }
            catch (ArgumentException e)
            {
                throw new CliException(e.Message);
            }
            if (parse.GetValue(output) is { } dir)
            {
                SimulationReport.Write(dir, result, chosen, Path.GetFullPath(path));
            }
            var s = result.Summary;
            var table = new Table().AddColumns("MEASURE", "VALUE");
            string F(double v, string format = "0.##") => v.ToString(format, CultureInfo.InvariantCulture);
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
