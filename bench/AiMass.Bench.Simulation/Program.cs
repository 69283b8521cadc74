// Benchmarks of the simulator:
//   dotnet AiMass.Bench.Simulation.dll [JOBS=100000] [RUNS=3]
// 1. the future-event list alone: events added and taken per second (a hold model: each event taken adds one later);
// 2. SWF replays of a synthetic trace of JOBS jobs (seeded: Poisson arrivals at about 70 % load on 128 processors,
//    log-normal run times, estimates 1-5x the run time) under FCFS, EASY and conservative backfilling, with the managed
//    memory they hold per job;
// 3. scenario runs: JOBS/5 synthetic DL jobs on 64 nodes of 8 GPUs with node failures, checkpoints, a dynamic pool and
//    the network and storage model, under EASY and Tiresias-style LAS.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using AiMass.Simulation;

var jobs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100_000;
var runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;

Console.WriteLine($"## Simulator, {jobs} jobs, median of {runs} runs");
Console.WriteLine();
Console.WriteLine("| measure | median | runs |");
Console.WriteLine("|---|---:|---|");

// 1. Event list: a hold model with 10,000 pending events, 5,000,000 events taken.
var rates = new List<double>();
for (var r = 0; r < runs; r++)
{
    var calendar = new EventCalendar<int>();
    var random = new Random(1);
    for (var i = 0; i < 10_000; i++)
    {
        calendar.Add(random.Next(0, 1_000_000), random.Next(0, 2), i);
    }
    var watch = Stopwatch.StartNew();
    const int Events = 5_000_000;
    for (var i = 0; i < Events; i++)
    {
        calendar.TryTake(out var time, out _, out var item);
        calendar.Add(time + random.Next(1, 1_000_000), random.Next(0, 2), item);
    }
    rates.Add(Events / watch.Elapsed.TotalSeconds);
}
Row("future-event list: events per second (10,000 pending)", rates, "0");

// 2. Replays.
var empty = GC.GetTotalMemory(true);
var trace = Synthetic(jobs);
var traceBytes = (GC.GetTotalMemory(true) - empty) / (double)jobs;
Row("SWF trace in memory, bytes per job", [traceBytes], "0");
foreach (var policy in new[] { ReplayPolicy.Fcfs, ReplayPolicy.Easy, ReplayPolicy.Conservative })
{
    Measure($"{policy}", "replay time (s)", "simulation events per second (arrivals, completions, passes)", "memory the result keeps, bytes per job", jobs, runs, () =>
    {
        var result = SwfReplay.Run(trace, policy, 128);
        return (result, result.Elapsed, result.Events, string.Create(CultureInfo.InvariantCulture,
            $"{policy}: utilisation {result.Summary.Utilization:P1}, mean wait {result.Summary.MeanWait:F0} s, mean bounded slowdown {result.Summary.MeanBoundedSlowdown:F2}"));
    });
}
// 3. Scenarios.
var scenarioJobs = Math.Max(1000, jobs / 5);
var gpuNode = new AiMass.Scheduling.NodeSpec("gpu", "gpu", new AiMass.Resources.ResourceVector(64_000, 1L << 40, 8)) { GpuModel = "A100" };
var scenario = new Scenario
{
    Name = "bench",
    Seed = 3,
    Cluster = new AiMass.Scheduling.ClusterSpec
    {
        Policy = new AiMass.Scheduling.SchedulerPolicy { Ordering = AiMass.Scheduling.OrderingPolicy.Fifo, Backfill = AiMass.Scheduling.BackfillPolicy.Easy },
        Nodes = Enumerable.Range(1, 64).Select(i => gpuNode with { Name = $"gpu-{i}" }).ToList(),
        Pools = [new AiMass.Scheduling.PoolSpec("burst", AiMass.Scheduling.PoolKind.Dynamic) { MaxNodes = 8, Template = gpuNode with { Pool = "burst" } }],
        ProvisioningDelays = new Dictionary<string, TimeSpan> { ["burst"] = TimeSpan.FromMinutes(10) },
    },
    Jobs = new SyntheticWorkload
    {
        Jobs = scenarioJobs,
        MeanInterarrival = TimeSpan.FromSeconds(60),
        Duration = new Distribution(DistributionKind.LogNormal, TimeSpan.FromMinutes(40), 1.6),
        GpuMix = [new(1, 0.55), new(2, 0.15), new(4, 0.15), new(8, 0.1), new(16, 0.05)],
        Users = 50,
        EstimateFactor = 3,
    }.Generate(new Random(11), new WorkloadDefaults { StageInBytes = 20L << 30, StageOutBytes = 2L << 30, CommBandwidth = 5e9 }),
    Failures = new FailureModel { Pools = [new PoolFailures("gpu", new Distribution(DistributionKind.Weibull, TimeSpan.FromDays(20), 0.8), Distribution.Exponential(TimeSpan.FromHours(6)))] },
    Checkpoints = new CheckpointModel { Interval = TimeSpan.FromMinutes(30), RestoreTime = TimeSpan.FromMinutes(2) },
    Network = new NetworkModel { NodeBandwidth = 12.5e9, SpineBandwidth = 100e9, StorageBandwidth = 10e9, StorageCapacity = 200L << 40, OutputRetention = TimeSpan.FromDays(14) },
    Las = new LasOptions { Thresholds = [7200, 72_000], StarvationFactor = 4 },
};
foreach (var name in new[] { "easy", "las" })
{
    var policy = SimulationPolicy.Parse(name);
    Measure($"scenario, {scenarioJobs} DL jobs on 64x8 GPUs, {name}", "run time (s)", "events per second (all kinds, passes included)", "memory the result keeps, bytes per job (runs, nodes, series)", scenarioJobs, runs, () =>
    {
        var result = ScenarioSimulator.Run(scenario, policy);
        var s = result.Summary;
        return (result, result.Elapsed, result.Events, string.Create(CultureInfo.InvariantCulture,
            $"scenario {name}: GPU utilisation {s.GpuUtilization:P1}, mean JCT {s.MeanJobCompletionTime / 3600:F2} h, {s.NodeFailures} node failures, {s.Preemptions} preemptions"));
    });
}
return 0;

// Runs a simulation RUNS times from a clean heap: its time, events per second, and the managed memory its result keeps per job.
static void Measure(string label, string time, string rate, string memory, int count, int runs, Func<(object Result, TimeSpan Elapsed, long Events, string Note)> run)
{
    var seconds = new List<double>();
    var eventRates = new List<double>();
    var bytes = new List<double>();
    for (var r = 0; r < runs; r++)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var before = GC.GetTotalMemory(true);
        var (result, elapsed, events, note) = run();
        var after = GC.GetTotalMemory(true);
        seconds.Add(elapsed.TotalSeconds);
        eventRates.Add(events / elapsed.TotalSeconds);
        bytes.Add((after - before) / (double)count);
        GC.KeepAlive(result);
        if (r == 0)
        {
            Console.Error.WriteLine(note);
        }
    }
    Row($"{label}: {time}", seconds, "0.00");
    Row($"{label}: {rate}", eventRates, "0");
    Row($"{label}: {memory}", bytes, "0");
}

static void Row(string name, List<double> values, string format)
{
    var sorted = values.Order().ToList();
    Console.WriteLine($"| {name} | {sorted[sorted.Count / 2].ToString(format, CultureInfo.InvariantCulture)} | {string.Join(" ", values.Select(v => v.ToString(format, CultureInfo.InvariantCulture)))} |");
}

static SwfTrace Synthetic(int count)
{
    var random = new Random(7);
    var sizes = new[] { 1, 1, 1, 2, 4, 8, 8, 16, 32, 64 };
    var text = new StringBuilder("; MaxProcs: 128\n");
    long t = 0;
    for (var i = 1; i <= count; i++)
    {
        t += (long)(-Math.Log(1 - random.NextDouble()) * 530);
        var procs = sizes[random.Next(sizes.Length)];
        var normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var run = Math.Max(1, (long)Math.Exp(7.0 + (1.5 * normal)));
        var estimate = (long)(run * (1 + (4 * random.NextDouble())));
        text.Append(CultureInfo.InvariantCulture, $"{i} {t} -1 {run} {procs} -1 -1 {procs} {estimate} -1 1 {random.Next(1, 51)} 1 -1 1 -1 -1 -1\n");
    }
    return SwfReader.Read(new StringReader(text.ToString()), "synthetic");
}
