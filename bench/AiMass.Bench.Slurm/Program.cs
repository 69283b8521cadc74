// Benchmarks of the Slurm executor against a running Slurm cluster (SLURM_CONF; scripts/slurm-test-cluster.sh starts
// a one-node one):
//   dotnet AiMass.Bench.Slurm.dll submit [JOBS=20]   submission to the task's first instruction: through AI Mass vs plain sbatch
//   dotnet AiMass.Bench.Slurm.dll poll [JOBS=1000]   squeue calls while the executor follows JOBS Slurm jobs to their end
using System.Globalization;
using AiMass.Bench.Slurm;

if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("SLURM_CONF")))
{
    Console.Error.WriteLine("SLURM_CONF is not set: start a cluster with scripts/slurm-test-cluster.sh start DIR and export what it prints");
    return 2;
}
int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
return args.Length > 0 && args[0] == "poll"
    ? await PollBenchmark.RunAsync(Arg(1, 1000))
    : await SubmitBenchmark.RunAsync(Arg(1, 20));
