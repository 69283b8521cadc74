// Scheduling benchmarks (issue 3):
//   dotnet AiMass.Bench.Scheduling.dll pass [NODES=1000] [PENDING=10000] [PASSES=50] [ORDERING=fairshare] [BACKFILL=easy]
//       one scheduling pass with PENDING pending jobs over NODES nodes: the first pass (an empty cluster filled from
//       the queue) and steady-state passes (a full cluster where a few jobs end between passes and new ones arrive)
//   dotnet AiMass.Bench.Scheduling.dll submit [JOBS=50]
//       job submission (REST) to the first instruction of the task's process, on an idle local node
using System.Globalization;
using AiMass.Bench.Scheduling;

return args.Length > 0 && args[0] == "submit"
    ? await SubmitBenchmark.RunAsync(Arg(1, 50))
    : PassBenchmark.Run(args.Length > 0 && args[0] == "pass" ? args[1..] : args);

int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
