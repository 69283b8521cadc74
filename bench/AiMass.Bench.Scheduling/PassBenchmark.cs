using System.Diagnostics;
using System.Globalization;
using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Bench.Scheduling;

/// <summary>One scheduling pass with many pending jobs over many nodes (EASY + DRF by default).</summary>
internal static class PassBenchmark
{
    public static int Run(string[] args)
    {
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
        var nodes = Arg(0, 1000);
        var pending = Arg(1, 10_000);
        var passes = Arg(2, 50);
        var ordering = Enum.Parse<OrderingPolicy>(args.Length > 3 ? args[3] : "FairShare", ignoreCase: true);
        var backfill = Enum.Parse<BackfillPolicy>(args.Length > 4 ? args[4] : "Easy", ignoreCase: true);

        var clock = new ManualClock(new DateTimeOffset(2026, 1, 5, 8, 0, 0, TimeSpan.Zero));
        var scheduler = new ClusterScheduler(new SchedulerPolicy { Ordering = ordering, Backfill = backfill }, clock);
        var random = new Random(42);
        const long Gi = 1L << 30;
        for (var i = 0; i < nodes; i++)
        {
            var gpuNode = i % 5 == 0;
            scheduler.AddNode(new NodeSpec($"node{i:D4}", gpuNode ? "gpu" : "cpu",
                gpuNode ? new ResourceVector(64_000, 512 * Gi, 8) : new ResourceVector(64_000, 256 * Gi))
            {
                GpuModel = gpuNode ? "A100" : null,
                Labels = new Dictionary<string, string> { ["rack"] = $"r{i / 40}" },
            });
        }

        var nextId = 1L;
        int[] gpuCounts = [1, 1, 2, 4, 8], cpuCounts = [1, 2, 4, 8, 16, 32], gangSizes = [2, 4, 8, 16], memPerCpu = [2, 4, 8];
        JobRequest NewJob()
        {
            var gpu = random.Next(0, 4) == 0 ? gpuCounts[random.Next(0, 5)] : 0;
            var cpu = cpuCounts[random.Next(0, 6)];
            var tasks = random.Next(0, 5) == 0 ? gangSizes[random.Next(0, 4)] : 1;
            return new JobRequest(nextId++, tasks, new ResourceVector(cpu * 1000L, cpu * memPerCpu[random.Next(0, 3)] * Gi, gpu))
            {
                Owner = $"user{random.Next(0, 50)}",
                Priority = random.Next(0, 3),
                Walltime = TimeSpan.FromMinutes(random.Next(10, 24 * 60)),
                SubmitTime = clock.GetUtcNow(),
                Preemptible = random.Next(0, 4) == 0,
            };
        }

        for (var i = 0; i < pending; i++)
        {
            scheduler.Submit(NewJob());
        }

        var sw = Stopwatch.StartNew();
        var first = scheduler.Schedule();
        var firstMs = sw.Elapsed.TotalMilliseconds;
        var running = first.Started.Select(s => s.JobId).ToList();
        for (var i = 0; i < first.Started.Count; i++)
        {
            scheduler.Submit(NewJob());
        }

        var times = new List<double>();
        var startedPerPass = new List<int>();
        for (var p = 0; p < passes + 5; p++)
        {
            // Between passes: a minute passes, about 1 % of the running jobs end, and as many new jobs arrive.
            clock.Advance(TimeSpan.FromMinutes(1));
            var ending = Math.Max(1, running.Count / 100);
            for (var k = 0; k < ending && running.Count > 0; k++)
            {
                var index = random.Next(running.Count);
                scheduler.Release(running[index]);
                running[index] = running[^1];
                running.RemoveAt(running.Count - 1);
            }
            while (scheduler.PendingCount < pending)
            {
                scheduler.Submit(NewJob());
            }
            sw.Restart();
            var pass = scheduler.Schedule();
            var ms = sw.Elapsed.TotalMilliseconds;
            foreach (var victim in pass.Preemptions)
            {
                scheduler.Requeue(victim.VictimId, "preempted");
                running.Remove(victim.VictimId);
            }
            running.AddRange(pass.Started.Select(s => s.JobId));
            if (p >= 5)
            {
                times.Add(ms); // the first passes warm up the JIT
                startedPerPass.Add(pass.Started.Count);
            }
        }

        var used = scheduler.Nodes.Aggregate(ResourceVector.Zero, (a, n) => a + n.Allocated);
        var capacity = scheduler.UpCapacity;
        times.Sort();
        Console.WriteLine($"## One scheduling pass: {pending:N0} pending jobs, {nodes:N0} nodes, ordering {ordering}, backfill {backfill}");
        Console.WriteLine();
        Console.WriteLine("| pass | p50 ms | p90 ms | max ms | jobs started per pass (median) |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        Console.WriteLine($"| first (empty cluster, {first.Started.Count:N0} jobs started) | {F(firstMs)} | - | - | {first.Started.Count} |");
        Console.WriteLine($"| steady state, full cluster ({times.Count} passes) | {F(P(0.5))} | {F(P(0.9))} | {F(times[^1])} | {startedPerPass.Order().ElementAt(startedPerPass.Count / 2)} |");
        Console.WriteLine();
        Console.WriteLine($"Cluster use at the end: CPU {100.0 * used.CpuMillis / capacity.CpuMillis:F1} %, memory {100.0 * used.MemoryBytes / capacity.MemoryBytes:F1} %, GPU {100.0 * used.Gpus / capacity.Gpus:F1} %; {running.Count:N0} jobs running, {scheduler.PendingCount:N0} pending.");
        return 0;

        double P(double q) => times[(int)Math.Min(times.Count - 1, Math.Floor(q * times.Count))];

        static string F(double ms) => ms.ToString("F1", CultureInfo.InvariantCulture);
    }
}

/// <summary>A clock moved by hand.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
