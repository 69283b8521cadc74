// Benchmarks of the simulator:
//   dotnet AiMass.Bench.Simulation.dll [JOBS=100000] [RUNS=3]
// 1. the future-event list alone: events added and taken per second (a hold model: each event taken adds one later);
// 2. SWF replays of a synthetic trace of JOBS jobs (seeded: Poisson arrivals at about 70 % load on 128 processors,
//    log-normal run times, estimates 1-5x the run time) under FCFS and EASY, with the managed memory they hold per job.
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
foreach (var policy in new[] { ReplayPolicy.Fcfs, ReplayPolicy.Easy })
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
        var result = SwfReplay.Run(trace, policy, 128);
        var after = GC.GetTotalMemory(true); // what the result keeps: one outcome per job
        seconds.Add(result.Elapsed.TotalSeconds);
        eventRates.Add(result.Events / result.Elapsed.TotalSeconds);
        bytes.Add((after - before) / (double)jobs);
        GC.KeepAlive(result);
        if (r == 0)
        {
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{policy}: utilisation {result.Summary.Utilization:P1}, mean wait {result.Summary.MeanWait:F0} s, mean bounded slowdown {result.Summary.MeanBoundedSlowdown:F2}"));
        }
    }
    Row($"{policy}: replay time (s)", seconds, "0.00");
    Row($"{policy}: simulation events per second (arrivals, completions, passes)", eventRates, "0");
    Row($"{policy}: memory the result keeps, bytes per job", bytes, "0");
}
return 0;

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
