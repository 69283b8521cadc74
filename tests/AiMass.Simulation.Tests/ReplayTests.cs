using System.Globalization;
using System.Text;

namespace AiMass.Simulation.Tests;

/// <summary>SWF replays with the live scheduler: hand-checked schedules, and invariants on random workloads.</summary>
public sealed class ReplayTests
{
    private static SwfTrace Trace(long processors, params (long Id, long Submit, long Run, long Procs, long Estimate)[] jobs)
    {
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"; MaxProcs: {processors}\n");
        foreach (var (id, submit, run, procs, estimate) in jobs)
        {
            text.Append(CultureInfo.InvariantCulture, $"{id} {submit} -1 {run} {procs} -1 -1 {procs} {estimate} -1 1 1 1 -1 1 -1 -1 -1\n");
        }
        return SwfReader.Read(new StringReader(text.ToString()));
    }

    private static string Schedule(ReplayResult result) => string.Join(" ", result.Jobs.Select(j => $"{j.Id}:{j.Start}-{j.End}"));

    [Fact]
    public void Fcfs_StartsFromTheHead_EasyBackfillsAJobThatEndsBeforeTheHeadsReservation()
    {
        // 4 processors. Job 2 needs the whole machine: it waits for job 1 (until 10). Job 3 (2 processors, 5 s) fits
        // in the hole and ends at 7, before job 2's reservation; job 4 (1 processor, 20 s) would delay job 2.
        var trace = Trace(4, (1, 0, 10, 2, 10), (2, 1, 10, 4, 10), (3, 2, 5, 2, 5), (4, 3, 20, 1, 20));
        Assert.Equal("1:0-10 2:10-20 3:20-25 4:20-40", Schedule(SwfReplay.Run(trace, ReplayPolicy.Fcfs)));
        Assert.Equal("1:0-10 2:10-20 3:2-7 4:20-40", Schedule(SwfReplay.Run(trace, ReplayPolicy.Easy)));
        Assert.Equal("1:0-10 2:10-20 3:2-7 4:20-40", Schedule(SwfReplay.Run(trace, ReplayPolicy.Conservative)));
    }

    [Fact]
    public void Easy_MayDelayTheSecondJob_ConservativeDelaysNone()
    {
        // 6 processors. Job 2 (head, 4 processors) is reserved at 10 with 2 processors to spare; job 4 (2 processors,
        // 30 s) uses only those: EASY starts it at once, which pushes job 3 (5 processors) to 32. Conservative
        // backfilling has reserved job 3 at 20, so job 4 waits until 30.
        var trace = Trace(6, (1, 0, 10, 4, 10), (2, 1, 10, 4, 10), (3, 1, 10, 5, 10), (4, 2, 30, 2, 30));
        Assert.Equal("1:0-10 2:10-20 3:32-42 4:2-32", Schedule(SwfReplay.Run(trace, ReplayPolicy.Easy)));
        Assert.Equal("1:0-10 2:10-20 3:20-30 4:30-60", Schedule(SwfReplay.Run(trace, ReplayPolicy.Conservative)));
    }

    [Fact]
    public void JobsRunTheirRecordedTime_EvenPastTheirEstimate_AndImpossibleOnesAreSkippedAndCounted()
    {
        var trace = Trace(4, (1, 0, 30, 4, 10), (2, 5, 10, 1, 10), (3, 6, 0, 1, 10), (4, 7, 10, 9, 10), (5, 8, 10, -1, 10));
        var result = SwfReplay.Run(trace, ReplayPolicy.Easy);
        Assert.Equal("1:0-30 2:30-40", Schedule(result));
        Assert.Equal(new Dictionary<string, int>
        {
            ["needs more processors than the machine"] = 1,
            ["processors unknown"] = 1,
            ["run time not positive"] = 1,
        }, result.Skipped);
    }

    [Fact]
    public void CompletionsAreProcessedBeforeArrivals_AtTheSameTime()
    {
        // Job 2 arrives exactly when job 1 ends: it starts then, on the processors job 1 gave back.
        var result = SwfReplay.Run(Trace(2, (1, 0, 10, 2, 10), (2, 10, 5, 2, 5)), ReplayPolicy.Fcfs);
        Assert.Equal("1:0-10 2:10-15", Schedule(result));
    }

    [Fact]
    public void Summary_IsComputedFromTheJobs()
    {
        var result = SwfReplay.Run(Trace(4, (1, 0, 10, 2, 10), (2, 1, 10, 4, 10), (3, 2, 5, 2, 5), (4, 3, 20, 1, 20)), ReplayPolicy.Easy);
        var s = result.Summary;
        Assert.Equal((4, 40L, 90.0), (s.Jobs, s.Makespan, s.BusyProcessorSeconds));
        Assert.Equal(90.0 / (4 * 40), s.Utilization, 9);
        Assert.Equal((0 + 9 + 0 + 17) / 4.0, s.MeanWait, 9);
        Assert.Equal(17, s.P99Wait);
        // bounded slowdown: job 2 (9 + 10) / 10, job 4 (17 + 20) / 20, others 1
        Assert.Equal((1 + 1.9 + 1 + 1.85) / 4, s.MeanBoundedSlowdown, 9);
    }

    [Theory]
    [InlineData(ReplayPolicy.Fcfs, 1)]
    [InlineData(ReplayPolicy.Easy, 2)]
    [InlineData(ReplayPolicy.Conservative, 3)]
    public void RandomWorkloads_KeepTheInvariants(ReplayPolicy policy, int seed)
    {
        const long Processors = 32;
        var random = new Random(seed);
        var jobs = new List<(long, long, long, long, long)>();
        long t = 0;
        for (var i = 1; i <= 300; i++)
        {
            t += random.Next(0, 200); // about 80 % of what the machine can do: queues build up in bursts and drain
            var run = random.Next(1, 300);
            jobs.Add((i, t, run, random.Next(1, 33), run * random.Next(1, 4)));
        }
        var trace = Trace(Processors, [.. jobs]);
        var result = SwfReplay.Run(trace, policy);
        Assert.Equal(300, result.Jobs.Count);
        // No instant over-allocates the machine.
        var changes = result.Jobs.SelectMany(j => new[] { (Time: j.Start, Delta: j.Processors), (Time: j.End, Delta: -j.Processors) })
            .OrderBy(c => c.Time).ThenBy(c => c.Delta).ToList();
        long used = 0;
        foreach (var (_, delta) in changes)
        {
            used += delta;
            Assert.InRange(used, 0, Processors);
        }
        // Every job ran its recorded time, never before it arrived; busy processor-seconds equal the work.
        Assert.All(result.Jobs, j => Assert.True(j.Start >= j.Submit && j.End - j.Start == trace.Jobs[(int)j.Id - 1].Runtime));
        Assert.Equal(trace.Jobs.Sum(j => (double)j.Runtime * j.Processors), result.Summary.BusyProcessorSeconds);
        if (policy == ReplayPolicy.Fcfs)
        {
            // FCFS: jobs start in the order they arrived (submit time, then job number).
            var starts = result.Jobs.OrderBy(j => j.Submit).ThenBy(j => j.Id).Select(j => j.Start).ToList();
            Assert.Equal(starts.Order(), starts);
        }
        // The same workload gives the same schedule.
        Assert.Equal(Schedule(result), Schedule(SwfReplay.Run(trace, policy)));
    }

    [Theory]
    [InlineData(21)]
    [InlineData(22)]
    [InlineData(23)]
    public void Easy_NeverDelaysTheHeadsReservation_OnRandomWorkloads(int seed)
    {
        // Estimates at least the run times, so the queue head's reservation is a promise: it starts no later than
        // its first reservation, whatever is backfilled afterwards. (Conservative backfilling recomputes every
        // reservation each pass, as Slurm's backfill does, so when jobs end early a later job's can also move later.)
        const ReplayPolicy policy = ReplayPolicy.Easy;
        var random = new Random(seed);
        var jobs = new List<(long, long, long, long, long)>();
        long t = 0;
        for (var i = 1; i <= 300; i++)
        {
            t += random.Next(0, 150);
            var run = random.Next(1, 300);
            jobs.Add((i, t, run, random.Next(1, 33), run + random.Next(0, 2 * run)));
        }
        var reserved = new Dictionary<long, long>();
        var result = SwfReplay.Run(Trace(32, [.. jobs]), policy, null, (scheduler, now) =>
        {
            foreach (var job in scheduler.Jobs)
            {
                if (job.Phase == AiMass.Scheduling.JobPhase.Pending && job.ExpectedStart is { } at && !reserved.ContainsKey(job.Request.Id))
                {
                    reserved[job.Request.Id] = at.ToUnixTimeSeconds();
                }
            }
        });
        Assert.True(reserved.Count > 20, $"only {reserved.Count} jobs were ever reserved: the workload is too light to test this");
        foreach (var (id, at) in reserved)
        {
            var start = result.Jobs.Single(j => j.Id == id).Start;
            Assert.True(start <= at, $"{policy}: job {id} was reserved to start by {at} but started at {start}");
        }
    }

    [Fact]
    public void Easy_NeverDelaysTheHeadJobBeyondWhatFcfsWouldGiveIt_OnAQueueOfTwo()
    {
        // The head's reservation: under EASY, job 2 starts no later than under FCFS, whatever the backfilled jobs.
        var random = new Random(11);
        for (var round = 0; round < 50; round++)
        {
            var first = random.Next(1, 100);
            var jobs = new List<(long, long, long, long, long)> { (1, 0, first, 6, first), (2, 1, 50, 8, 50) };
            for (var i = 3; i <= 8; i++)
            {
                var run = random.Next(1, 200);
                jobs.Add((i, 2, run, random.Next(1, 3), run));
            }
            var trace = Trace(8, [.. jobs]);
            var fcfs = SwfReplay.Run(trace, ReplayPolicy.Fcfs).Jobs.Single(j => j.Id == 2).Start;
            var easy = SwfReplay.Run(trace, ReplayPolicy.Easy).Jobs.Single(j => j.Id == 2).Start;
            Assert.True(easy <= fcfs, $"round {round}: job 2 started at {easy} under EASY, {fcfs} under FCFS");
        }
    }

    [Fact]
    public void Report_WritesJobsCsvAndSummaryJson()
    {
        var dir = Directory.CreateTempSubdirectory("aimass-sim-").FullName;
        try
        {
            var result = SwfReplay.Run(Trace(4, (1, 0, 10, 2, 10), (2, 1, 10, 4, 10)), ReplayPolicy.Easy);
            SimulationReport.Write(dir, result, "easy", "t.swf");
            Assert.Equal(
                [SimulationReport.JobsHeader, "1,0,0,10,0,10,2,1", "2,1,10,20,9,10,4,1.9"],
                File.ReadAllLines(Path.Combine(dir, "jobs.csv")));
            using var summary = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")));
            Assert.Equal("easy", summary.RootElement.GetProperty("policy").GetString());
            Assert.Equal(20, summary.RootElement.GetProperty("summary").GetProperty("makespan").GetInt64());
            Assert.False(File.Exists(Path.Combine(dir, "jobs.csv.tmp")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
