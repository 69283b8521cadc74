namespace AiMass.Execution.Slurm;

/// <summary>How the Slurm executor reaches Slurm and what it asks of it (configuration section <c>Slurm</c>).</summary>
public sealed class SlurmOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Slurm";

    /// <summary>Where <c>sbatch</c>, <c>squeue</c>, <c>scancel</c>, <c>sinfo</c>, <c>scontrol</c> and <c>sacct</c> are; empty: found on PATH.</summary>
    public string BinDirectory { get; set; } = "";

    /// <summary>A <c>slurm.conf</c> to use (passed as <c>SLURM_CONF</c>); empty: Slurm's own default or the environment's.</summary>
    public string Conf { get; set; } = "";

    /// <summary>How often one <c>squeue</c> call refreshes the state of every job AI Mass follows.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A Slurm command that has not answered by then is killed and counts as Slurm being unreachable.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Marks this control plane's jobs in Slurm (their comment), so that after a restart it finds its own jobs and only
    /// them; empty: <c>aimass-</c> followed by a digest of the data directory.
    /// </summary>
    public string Tag { get; set; } = "";

    /// <summary>Where batch and task scripts are written; must be visible to the compute nodes. Empty: <c>DATA_DIR/slurm</c>.</summary>
    public string ScriptDirectory { get; set; } = "";

    /// <summary>The account jobs are charged to (<c>--account</c>), unless their queue maps to another; empty: the user's default.</summary>
    public string Account { get; set; } = "";

    /// <summary>The QOS jobs run under (<c>--qos</c>), unless their queue maps to another; empty: the association's default.</summary>
    public string Qos { get; set; } = "";

    /// <summary>
    /// Per AI Mass queue: the Slurm partition, account and QOS its jobs go to. A queue not listed here goes to the
    /// partition of the same name when there is one, else to the default partition.
    /// </summary>
    public Dictionary<string, SlurmQueueOptions> Queues { get; } = new(StringComparer.Ordinal);

    /// <summary>Further <c>sbatch</c> arguments for every job (a site's <c>--constraint</c>, <c>--reservation</c>, ...).</summary>
    public List<string> ExtraArguments { get; } = [];

    /// <summary>
    /// <c>aimass</c>: AI Mass's scheduler orders the jobs and places them on the discovered nodes, and submits each one
    /// pinned to its nodes (<c>--nodelist</c>) when it fits. <c>slurm</c>: every job is submitted at once to its
    /// partition, and Slurm's own priorities, fair share and backfilling decide when and where it runs.
    /// </summary>
    public string Scheduling { get; set; } = "aimass";

    /// <summary>Whether Slurm does the queueing and placement (<see cref="Scheduling"/> is <c>slurm</c>).</summary>
    public bool DelegatesScheduling => Scheduling == "slurm";
}

/// <summary>Where the jobs of one AI Mass queue go in Slurm.</summary>
public sealed class SlurmQueueOptions
{
    /// <summary>The partition (<c>--partition</c>).</summary>
    public string Partition { get; set; } = "";

    /// <summary>The account (<c>--account</c>); empty: <see cref="SlurmOptions.Account"/>.</summary>
    public string Account { get; set; } = "";

    /// <summary>The QOS (<c>--qos</c>); empty: <see cref="SlurmOptions.Qos"/>.</summary>
    public string Qos { get; set; } = "";
}
