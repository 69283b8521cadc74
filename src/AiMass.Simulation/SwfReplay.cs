using System.Diagnostics;
using AiMass.Resources;
using AiMass.Scheduling;

namespace AiMass.Simulation;

/// <summary>The scheduling policies of an SWF replay.</summary>
public enum ReplayPolicy
{
    /// <summary>First come, first served: jobs start from the head of the queue while they fit.</summary>
    Fcfs,

    /// <summary>EASY backfilling: the head gets a reservation; later jobs start if they do not delay it.</summary>
    Easy,

    /// <summary>Conservative backfilling: every queued job gets a reservation; later jobs delay none of them.</summary>
    Conservative,
}

/// <summary>How a job of a replay ran.</summary>
/// <param name="Id">Its SWF job number.</param>
/// <param name="Submit">Submission, seconds of the trace.</param>
/// <param name="Start">Start, seconds of the trace.</param>
/// <param name="End">End, seconds of the trace.</param>
/// <param name="Processors">Processors it held.</param>
/// <param name="Estimate">The user's estimate it was planned with, in seconds.</param>
public sealed record JobOutcome(long Id, long Submit, long Start, long End, long Processors, long Estimate)
{
    /// <summary>Time waited in the queue.</summary>
    public long Wait => Start - Submit;

    /// <summary>Time run.</summary>
    public long Run => End - Start;

    /// <summary>Bounded slowdown: (wait + run) / max(run, 10 s), at least 1 (the usual 10 s threshold).</summary>
    public double BoundedSlowdown => Math.Max(1.0, (double)(Wait + Run) / Math.Max(Run, SimulationSummary.SlowdownThreshold));
}

/// <summary>What a replay produced.</summary>
/// <param name="Jobs">Every job that ran, in the order of their job numbers.</param>
/// <param name="Skipped">Jobs of the trace not replayed, counted by reason.</param>
/// <param name="Summary">The aggregate figures.</param>
/// <param name="Events">Events the simulation processed (arrivals, completions, scheduling passes).</param>
/// <param name="Elapsed">Wall-clock time of the replay.</param>
public sealed record ReplayResult(IReadOnlyList<JobOutcome> Jobs, IReadOnlyDictionary<string, int> Skipped, SimulationSummary Summary, long Events, TimeSpan Elapsed);

/// <summary>
/// Replays a Standard Workload Format trace with the live scheduler (<see cref="ClusterScheduler"/>) on a virtual
/// clock, with the semantics that make results comparable with the literature: the machine is N identical processors;
/// a job needs field 8 processors (field 5 when 8 is unknown) for its recorded run time (field 4), even past its
/// estimate (field 9, or field 4 when unknown), which is what the scheduler plans with; jobs whose run time is not
/// positive or that need more than the machine are skipped and counted. At equal times completions are processed
/// before arrivals, then one scheduling pass runs.
/// </summary>
public static class SwfReplay
{
    private const int Completion = 0;
    private const int Arrival = 1;
    private const int Pass = 2;
    private const string Machine = "machine";

    /// <summary>Replays <paramref name="trace"/> on <paramref name="processors"/> processors (null: the header's MaxProcs).</summary>
    public static ReplayResult Run(SwfTrace trace, ReplayPolicy policy, long? processors = null) => Run(trace, policy, processors, null);

    /// <summary>The replay, with a look at the scheduler after every pass (for the tests of its invariants).</summary>
    internal static ReplayResult Run(SwfTrace trace, ReplayPolicy policy, long? processors, Action<ClusterScheduler, long>? afterPass)
    {
        ArgumentNullException.ThrowIfNull(trace);
        var machine = processors ?? trace.MaxProcessors
            ?? throw new ArgumentException("the trace's header gives no MaxProcs (or MaxNodes): say how many processors the machine has", nameof(processors));
        if (machine < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(processors), machine, "the machine needs at least one processor");
        }
        var watch = Stopwatch.StartNew();
        var skipped = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Skip(string why) => skipped[why] = skipped.GetValueOrDefault(why) + 1;
        var jobs = new List<SwfJob>(trace.Jobs.Count);
        var numbers = new HashSet<long>();
        foreach (var job in trace.Jobs)
        {
            if (!numbers.Add(job.Number))
            {
                throw new ArgumentException($"job number {job.Number} appears more than once in the trace", nameof(trace));
            }
            if (job.Runtime <= 0)
            {
                Skip("run time not positive");
            }
            else if (job.Processors <= 0)
            {
                Skip("processors unknown");
            }
            else if (job.Processors > machine)
            {
                Skip("needs more processors than the machine");
            }
            else
            {
                jobs.Add(job);
            }
        }
        var epoch = DateTimeOffset.UnixEpoch;
        var clock = new VirtualClock(epoch.AddSeconds(jobs.Count > 0 ? Math.Min(0, jobs.Min(j => j.Submit)) : 0));
        var scheduler = new ClusterScheduler(new SchedulerPolicy
        {
            Ordering = OrderingPolicy.Fifo,
            Backfill = policy switch
            {
                ReplayPolicy.Fcfs => BackfillPolicy.None,
                ReplayPolicy.Easy => BackfillPolicy.Easy,
                _ => BackfillPolicy.Conservative,
            },
            Preemption = false,
            MaxReservations = int.MaxValue,
        }, clock);
        scheduler.AddNode(new NodeSpec(Machine, Machine, new ResourceVector(machine * 1000, 0)));
        var events = new EventCalendar<int>();
        var byNumber = new Dictionary<long, int>(jobs.Count);
        for (var i = 0; i < jobs.Count; i++)
        {
            events.Add(TimeSpan.TicksPerSecond * jobs[i].Submit, Arrival, i);
            byNumber[jobs[i].Number] = i;
        }
        var starts = new long[jobs.Count];
        var ends = new long[jobs.Count];
        long passes = 0;
        while (events.TryTake(out var time, out var phase, out var index))
        {
            clock.AdvanceTo(epoch.AddTicks(time));
            var job = jobs[index];
            if (phase == Completion)
            {
                scheduler.Release(job.Number);
                ends[index] = time / TimeSpan.TicksPerSecond;
            }
            else
            {
                scheduler.Submit(new JobRequest(job.Number, 1, new ResourceVector(job.Processors * 1000, 0))
                {
                    Walltime = TimeSpan.FromSeconds(job.Estimate),
                    SubmitTime = epoch.AddSeconds(job.Submit),
                });
            }
            if (events.NextTime == time)
            {
                continue; // every event of this instant first, then one pass
            }
            passes++;
            foreach (var started in scheduler.Schedule().Started)
            {
                var i = byNumber[started.JobId];
                starts[i] = time / TimeSpan.TicksPerSecond;
                events.Add(time + (TimeSpan.TicksPerSecond * jobs[i].Runtime), Completion, i);
            }
            afterPass?.Invoke(scheduler, time / TimeSpan.TicksPerSecond);
        }
        var outcomes = jobs.Select((j, i) => new JobOutcome(j.Number, j.Submit, starts[i], ends[i], j.Processors, j.Estimate))
            .OrderBy(o => o.Id).ToList();
        watch.Stop();
        return new ReplayResult(outcomes, skipped, SimulationSummary.Of(outcomes, machine), events.Processed + passes, watch.Elapsed);
    }
}
