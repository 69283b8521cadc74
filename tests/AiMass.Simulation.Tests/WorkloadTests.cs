using System.Text;

namespace AiMass.Simulation.Tests;

/// <summary>DL traces, synthetic workloads, distributions, policy names and plots.</summary>
public sealed class WorkloadTests
{
    [Fact]
    public void ACsvTrace_IsReadByColumnName_WithThePublicTracesAliases_AndDefaultsForWhatItLacks()
    {
        var csv = """
            # comment lines and blank lines are skipped

            jobid,submitted_time,run_time,num_gpu,user_name,vc,gpu_type,num_workers,cpus
            7,2017-10-03 08:00:00,3600,8,alice,vc1,P100,2,
            8,2017-10-03 08:00:30,60,0,"bob, jr",vc2,,,3.5
            """;
        var jobs = DlTraceReader.ReadCsv(new StringReader(csv), new WorkloadDefaults { CpuMillisPerGpu = 6000, MemoryPerGpu = 32L << 30 });
        Assert.Equal(2, jobs.Count);
        var a = jobs[0];
        Assert.Equal((7L, TimeSpan.Zero, TimeSpan.FromHours(1), 2), (a.Id, a.Submit, a.Duration, a.Tasks));
        Assert.Equal((4L, 24_000L, 128L << 30), (a.PerTask.Gpus, a.PerTask.CpuMillis, a.PerTask.MemoryBytes));
        Assert.Equal(("alice", "vc1", "P100"), (a.User, a.Queue, a.NodeSelector["gpu_model"]));
        Assert.Null(a.Estimate);
        var b = jobs[1];
        Assert.Equal(TimeSpan.FromSeconds(30), b.Submit); // timestamps are relative to the earliest submission
        Assert.Equal(("bob, jr", 3500L, 0L), (b.User, b.PerTask.CpuMillis, b.PerTask.Gpus));
        Assert.Empty(b.NodeSelector);
    }

    [Fact]
    public void StartAndEndTimes_GiveTheRunTime_AndNonNumericIdsGetNumbers()
    {
        var csv = "name,creation_time,scheduled_time,deletion_time,num_gpu,cpu_milli,memory_mib\npod-a,10,20,80,1,8000,1024\npod-b,15,15,25,0,500,512\n";
        var jobs = DlTraceReader.ReadCsv(new StringReader(csv));
        Assert.Equal([(1L, "pod-a", 60.0), (2L, "pod-b", 10.0)], jobs.Select(j => (j.Id, j.Name!, j.Duration.TotalSeconds)));
        Assert.Equal((8000L, 1L << 30), (jobs[0].PerTask.CpuMillis, jobs[0].PerTask.MemoryBytes));
    }

    [Theory]
    [InlineData("job_id,submit_time\n1,0\n", "no column gives the run time")]
    [InlineData("job_id,duration\n1,5\n", "no column gives the submission time")]
    [InlineData("job_id,submit_time,duration\n1,0,10\n2,x,10\n", "trace:3: submission time 'x' is neither seconds nor a timestamp")]
    [InlineData("job_id,submit_time,duration\n1,0,10\n1,5,10\n", "trace:3: job id 1 appears more than once")]
    [InlineData("job_id,submit_time,duration,num_gpus\n1,0,10,-2\n", "trace:2: GPUs: '-2' is not a number of at least 0")]
    [InlineData("job_id,submit_time,duration\n1,0\n", "trace:2: 2 columns where the header has 3")]
    [InlineData("job_id,submit_time,duration,num_gpus,tasks\n1,0,10,3,2\n", "trace:2: 3 GPUs and 12 CPUs cannot be split into 2 equal tasks")]
    [InlineData("", "the trace is empty")]
    public void ABadCsvTrace_IsRejected_NamingTheLine(string csv, string expected)
    {
        var e = Assert.Throws<TraceFormatException>(() => DlTraceReader.ReadCsv(new StringReader(csv)));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PhillyJobLogs_AreRead_RunTimeFromFirstStartToLastEnd_GpusOfTheFirstAttempt()
    {
        var json = """
            [
              {"status": "Pass", "vc": "6214e9", "jobid": "application_1506638472019_10238", "user": "a7ff9c",
               "submitted_time": "2017-10-03 08:00:00",
               "attempts": [
                 {"start_time": "2017-10-03 08:01:00", "end_time": "2017-10-03 08:11:00",
                  "detail": [{"ip": "m1", "gpus": ["gpu0", "gpu1"]}, {"ip": "m2", "gpus": ["gpu0", "gpu1"]}]},
                 {"start_time": "2017-10-03 08:20:00", "end_time": "2017-10-03 09:01:00", "detail": []}
               ]},
              {"status": "Killed", "vc": "6214e9", "jobid": "application_1506638472019_10239", "user": "b1",
               "submitted_time": "2017-10-03 08:05:00", "attempts": []}
            ]
            """;
        var jobs = DlTraceReader.ReadJson(json);
        var job = Assert.Single(jobs); // the job that never ran is left out
        Assert.Equal(("application_1506638472019_10238", TimeSpan.FromMinutes(60), 4L, "6214e9", "a7ff9c"), (job.Name, job.Duration, job.Gpus, job.Queue, job.User));
    }

    [Fact]
    public void AJsonTrace_OfFlatJobs_RoundTripsThroughTheCsvWriter()
    {
        var jobs = DlTraceReader.ReadJson("""{"jobs": [{"job_id": 1, "submit_time": 0, "duration": 100, "num_gpus": 2, "user": "u", "estimate": 200, "priority": 3}]}""");
        var text = new StringWriter();
        DlTraceReader.WriteCsv(text, jobs);
        var back = DlTraceReader.ReadCsv(new StringReader(text.ToString()));
        Assert.Equal(jobs[0] with { NodeSelector = back[0].NodeSelector }, back[0]);
        Assert.Equal((TimeSpan.FromSeconds(200), 3), (back[0].Estimate!.Value, back[0].Priority));
        var bad = Assert.Throws<TraceFormatException>(() => DlTraceReader.ReadJson("[1]"));
        Assert.Contains("job 1 is not a JSON object", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheSyntheticGenerator_FollowsItsParameters_AndItsSeed()
    {
        var workload = new SyntheticWorkload
        {
            Jobs = 20_000,
            MeanInterarrival = TimeSpan.FromSeconds(60),
            Duration = new Distribution(DistributionKind.LogNormal, TimeSpan.FromMinutes(30), 1),
            MaxDuration = null,
            GpuMix = [new(1, 3), new(4, 1)],
            Users = 5,
            EstimateFactor = 2,
        };
        var jobs = workload.Generate(new Random(5));
        Assert.Equal(jobs.Select(j => (j.Submit, j.Duration, j.Gpus)), workload.Generate(new Random(5)).Select(j => (j.Submit, j.Duration, j.Gpus)));
        var gaps = jobs.Zip(jobs.Skip(1), (a, b) => (b.Submit - a.Submit).TotalSeconds).Average();
        Assert.InRange(gaps, 57, 63);
        var median = jobs.Select(j => j.Duration.TotalSeconds).Order().ElementAt(jobs.Count / 2);
        Assert.InRange(median, 1700, 1900);
        Assert.InRange(jobs.Count(j => j.Gpus == 1) / (double)jobs.Count, 0.73, 0.77);
        Assert.All(jobs, j => Assert.InRange(j.Estimate!.Value.TotalSeconds, j.Duration.TotalSeconds, (2 * j.Duration.TotalSeconds) + 1));
        Assert.Equal(5, jobs.Select(j => j.User).Distinct().Count());
    }

    [Theory]
    [InlineData(DistributionKind.Exponential, 1.0)]
    [InlineData(DistributionKind.Weibull, 0.7)]
    [InlineData(DistributionKind.Weibull, 2.5)]
    public void Distributions_HaveTheMeanTheyAreGiven(DistributionKind kind, double shape)
    {
        var d = new Distribution(kind, TimeSpan.FromHours(10), shape);
        var random = new Random(1);
        var mean = Enumerable.Range(0, 200_000).Average(_ => d.Sample(random).TotalHours);
        Assert.InRange(mean, 9.8, 10.2);
        Assert.Equal(24, Distribution.Gamma(5), 9);
        Assert.Equal(Math.Sqrt(Math.PI), Distribution.Gamma(0.5), 9);
    }

    [Theory]
    [InlineData("fcfs", "Fifo", "None", null, false)]
    [InlineData("drf+easy+spread", "FairShare", "Easy", "Spread", false)]
    [InlineData("sjf+conservative", "ShortestFirst", "Conservative", null, false)]
    [InlineData("las", "Priority", null, null, true)]
    [InlineData("scenario", null, null, null, false)]
    public void PolicyNames_AreTermsJoinedByPlus(string text, string? ordering, string? backfill, string? placement, bool las)
    {
        var p = SimulationPolicy.Parse(text);
        Assert.Equal((ordering, backfill, placement, las), (p.Ordering?.ToString(), p.Backfill?.ToString(), p.Placement?.ToString(), p.LeastAttainedService));
    }

    [Theory]
    [InlineData("fifo+sjf", "'sjf' sets the ordering a second time")]
    [InlineData("fcfs+easy", "'easy' sets the backfill a second time")]
    [InlineData("easy+rr", "unknown term 'rr'")]
    [InlineData("las+nopreempt", "las needs preemption")]
    public void BadPolicyNames_SayWhatIsWrong(string text, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => SimulationPolicy.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plots_AreWrittenAsPngAndSvg()
    {
        using var dir = new TempDir();
        var series = new List<ClusterSample> { new(0, 0, 0, 8, 8, 1, 0), new(10, 4, 4, 8, 8, 0, 1), new(100, 0, 0, 8, 8, 0, 0) };
        var files = SimulationPlots.Write(dir.Path, [new PlotRun("easy", series, [0, 5, 50], [1, 1.5, 3]), new PlotRun("fcfs", series, [0, 10, 90], [1, 2, 8])]);
        Assert.Equal(8, files.Count);
        foreach (var png in files.Where(f => f.EndsWith(".png", StringComparison.Ordinal)))
        {
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(png)[..4]);
        }
        foreach (var svg in files.Where(f => f.EndsWith(".svg", StringComparison.Ordinal)))
        {
            Assert.Contains("<svg", File.ReadAllText(svg, Encoding.UTF8), StringComparison.Ordinal);
        }
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("aimass-plots-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
