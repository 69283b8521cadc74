using System.CommandLine;
using System.Globalization;
using AiMass.Client;
using AiMass.Jobs;
using AiMass.Registry;
using AiMass.Resources;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary><c>aimass jobs ...</c>, <c>aimass nodes</c>, <c>aimass queues</c>: work on the cluster.</summary>
internal static class JobsCommands
{
    public static Command Create()
    {
        var jobs = new Command("jobs", "Submit jobs and follow them: state, logs, events; cancel them");
        jobs.Subcommands.Add(Submit());
        jobs.Subcommands.Add(List());
        jobs.Subcommands.Add(Show());
        jobs.Subcommands.Add(Logs());
        jobs.Subcommands.Add(Cancel());
        jobs.Subcommands.Add(Events());
        return jobs;
    }

    private static Command Submit()
    {
        var file = new Argument<string>("FILE") { Description = "The job spec in YAML or JSON (- reads standard input); see docs/scheduling.md" };
        var wait = new Option<bool>("--wait") { Description = "Wait until the job ends; exit 0 only if it succeeded" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Print the job's logs as they are written until it ends (implies --wait)" };
        var command = new Command("submit", "Submit a job spec") { file, wait, follow };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var path = parse.GetValue(file)!;
            string text;
            try
            {
                text = path == "-" ? await Console.In.ReadToEndAsync(ct) : await File.ReadAllTextAsync(path, ct);
            }
            catch (FileNotFoundException)
            {
                throw new CliException($"job spec '{path}' does not exist");
            }
            using var client = Cli.CreateClient(parse);
            var job = await client.SubmitJobAsync(text, path == "-" ? "stdin" : path, ct);
            if (!parse.GetValue(wait) && !parse.GetValue(follow))
            {
                Cli.Print(parse, job, $"job {job.Id} submitted ({Word(job.State)}): {job.Name}, {job.Replicas} task(s) of {job.Resources}");
                return;
            }
            await FollowAsync(parse, client, job, parse.GetValue(follow), ct);
        }));
        return command;
    }

    /// <summary>After a submission: prints the logs when <paramref name="follow"/>, waits for the end, and fails unless the job succeeded.</summary>
    public static async Task FollowAsync(ParseResult parse, AiMassClient client, JobInfo job, bool follow, CancellationToken ct)
    {
        if (!Cli.WantsJson(parse))
        {
            Console.Error.WriteLine($"job {job.Id} submitted: {job.Name}");
        }
        if (follow)
        {
            var stdout = Console.OpenStandardOutput();
            await using (stdout)
            {
                await client.CopyJobLogsAsync(job.Id, stdout, follow: true, cancellationToken: ct);
            }
        }
        var final = await WaitAsync(client, job.Id, ct);
        Cli.Print(parse, final, $"job {final.Id} {Word(final.State)}: {final.Reason}");
        if (final.State != JobState.Succeeded)
        {
            throw new SilentFailure();
        }
    }

    /// <summary>Polls until the job is in a final state.</summary>
    private static async Task<JobInfo> WaitAsync(AiMassClient client, long id, CancellationToken ct)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            var job = await client.GetJobAsync(id, ct);
            if (job.State is JobState.Succeeded or JobState.Failed or JobState.Cancelled)
            {
                return job;
            }
            await Task.Delay(delay, ct);
            delay = TimeSpan.FromMilliseconds(Math.Min(1000, delay.TotalMilliseconds * 1.5));
        }
    }

    private static Command List()
    {
        var state = new Option<string?>("--state") { Description = "Only jobs in this state: queued, running, stopping, succeeded, failed, cancelled" };
        var queue = new Option<string?>("--queue") { Description = "Only jobs of this queue" };
        var owner = new Option<string?>("--owner") { Description = "Only jobs of this owner" };
        var (pageSize, pageToken, all) = Cli.PagingOptions();
        var command = new Command("list", "List jobs, newest first") { state, queue, owner, pageSize, pageToken, all };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var (items, token) = await Cli.FetchAsync(parse.GetValue(pageToken), parse.GetValue(all), t =>
                client.ListJobsAsync(parse.GetValue(state), parse.GetValue(queue), parse.GetValue(owner), parse.GetValue(pageSize), t, ct));
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new Page<JobInfo>(items, token));
                return;
            }
            var table = new Table().AddColumns("ID", "NAME", "STATE", "QUEUE", "OWNER", "PRIO", "TASKS", "EACH TASK", "SUBMITTED", "REASON");
            foreach (var j in items)
            {
                table.AddRow(Num(j.Id), Cli.Esc(j.Name), StateMarkup(j.State), Cli.Esc(j.Queue), Cli.Esc(j.Owner), Num(j.Priority), Num(j.Replicas),
                    Cli.Esc(j.Resources.ToString()), Cli.Time(j.SubmittedAt), Cli.Esc(Short(j.Reason)));
            }
            AnsiConsole.Write(table);
            if (token is not null)
            {
                Console.Out.WriteLine($"more: --page-token {token}  (or --all)");
            }
        }));
        return command;
    }

    private static Command Show()
    {
        var id = new Argument<long>("ID") { Description = "Job id" };
        var command = new Command("show", "Show a job: spec, state and why, tasks of its current attempt, recent events") { id };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var job = await client.GetJobAsync(parse.GetValue(id), ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(job);
                return;
            }
            var grid = new Grid().AddColumn().AddColumn();
            void Row(string key, string? value) => grid.AddRow($"[grey]{key}[/]", Cli.Esc(value ?? "-"));
            Row("job", $"{job.Id} {job.Name}");
            grid.AddRow("[grey]state[/]", StateMarkup(job.State));
            Row("reason", job.Reason);
            Row("queue / owner", $"{job.Queue} / {job.Owner}, priority {job.Priority}" + (job.Preemptible ? ", preemptible" : ""));
            Row("tasks", $"{job.Replicas} x {job.Resources}");
            Row("walltime", job.WalltimeSeconds is { } w ? Quantity.FormatDuration(TimeSpan.FromSeconds(w)) : "none");
            Row("attempt", $"{job.Attempt} (restarts {job.Restarts} of {job.MaxRestarts})");
            Row("command", string.Join(' ', job.Command));
            Row("submitted", Cli.Time(job.SubmittedAt));
            Row("started", job.StartedAt is { } s ? Cli.Time(s) : null);
            Row("ended", job.EndedAt is { } ended ? Cli.Time(ended) : null);
            if (job.ExpectedStart is { } expected)
            {
                Row("expected start", Cli.Time(expected));
            }
            if (job.ResumeFrom is not null)
            {
                Row("resumes from", job.ResumeFrom);
            }
            AnsiConsole.Write(grid);
            if (job.Tasks.Count > 0)
            {
                var external = job.Tasks.Any(t => t.ExternalId is not null);
                var tasks = new Table().AddColumns("TASK", "NODE", "STATE", external ? "SLURM JOB" : "PID", "EXIT", "STARTED", "ENDED");
                foreach (var t in job.Tasks)
                {
                    tasks.AddRow(Num(t.Index), Cli.Esc(t.Node), t.State.ToString().ToLowerInvariant(),
                        Cli.Esc(t.ExternalId is { } x ? (t.ExternalState is { } xs ? $"{x} {xs}" : x) : t.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-"),
                        Cli.Esc(t.Exit ?? "-"), Cli.Time(t.StartedAt), t.EndedAt is { } te ? Cli.Time(te) : "-");
                }
                AnsiConsole.Write(tasks);
            }
            var events = await client.GetJobEventsAsync(job.Id, cancellationToken: ct);
            foreach (var e in events.TakeLast(10))
            {
                Console.Out.WriteLine($"{Cli.Time(e.Time)}  {e.Kind,-10} {e.Message}");
            }
        }));
        return command;
    }

    private static Command Logs()
    {
        var id = new Argument<long>("ID") { Description = "Job id" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing as the job writes, until it ends" };
        var attempt = new Option<int?>("--attempt") { Description = "Only this attempt (1 is the first run; restarts are 2, 3, ...)" };
        var task = new Option<int?>("--task") { Description = "Only this task of the gang (0-based)" };
        var command = new Command("logs", "Print a job's stdout and stderr: every attempt and task in order, each after a marker line") { id, follow, attempt, task };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var stdout = Console.OpenStandardOutput();
            await using (stdout)
            {
                await client.CopyJobLogsAsync(parse.GetValue(id), stdout, parse.GetValue(attempt), parse.GetValue(task), parse.GetValue(follow), ct);
            }
        }));
        return command;
    }

    private static Command Cancel()
    {
        var id = new Argument<long>("ID") { Description = "Job id" };
        var command = new Command("cancel", "Cancel a job (running tasks get SIGTERM, then SIGKILL after the grace period)") { id };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var job = await client.CancelJobAsync(parse.GetValue(id), ct);
            Cli.Print(parse, job, $"job {job.Id} {Word(job.State)}: {job.Reason}");
        }));
        return command;
    }

    private static Command Events()
    {
        var id = new Argument<long>("ID") { Description = "Job id" };
        var command = new Command("events", "What happened to a job: submitted, reserved, started, preempted, task exits, restarts") { id };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var events = await client.GetJobEventsAsync(parse.GetValue(id), cancellationToken: ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(events);
                return;
            }
            foreach (var e in events)
            {
                Console.Out.WriteLine($"{Cli.Time(e.Time)}  {e.Kind,-10} {e.Message}");
            }
        }));
        return command;
    }

    public static Command Nodes()
    {
        var command = new Command("nodes", "Nodes: capacity, allocation and live use; drain, down, up");
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var nodes = await client.ListNodesAsync(ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(nodes);
                return;
            }
            var table = new Table().AddColumns("NODE", "POOL", "STATE", "TASKS", "CPU ALLOC", "MEMORY ALLOC", "GPU ALLOC", "CPU USED", "MEMORY USED", "LABELS");
            foreach (var n in nodes)
            {
                table.AddRow(Cli.Esc(n.Name), Cli.Esc(n.Pool), Cli.Esc(n.State + (n.Reason is null ? "" : $" ({n.Reason})")), Num(n.Tasks),
                    $"{Quantity.FormatCpu(n.Allocated.CpuMillis)} / {Quantity.FormatCpu(n.Capacity.CpuMillis)}",
                    $"{Quantity.FormatBytes(n.Allocated.MemoryBytes)} / {Quantity.FormatBytes(n.Capacity.MemoryBytes)}",
                    n.Capacity.Gpus == 0 ? "-" : $"{n.Allocated.Gpus} / {n.Capacity.Gpus}" + (n.GpuModel is null ? "" : $" {Cli.Esc(n.GpuModel)}"),
                    n.CpuUsedCores is { } cpu ? cpu.ToString("0.00", CultureInfo.InvariantCulture) : "-",
                    n.MemoryUsedBytes is { } mem ? Quantity.FormatBytes(mem) : "-",
                    Cli.Esc(string.Join(",", n.Labels.Select(l => $"{l.Key}={l.Value}"))));
            }
            AnsiConsole.Write(table);
        }));
        foreach (var (verb, state, what) in new[]
        {
            ("drain", "draining", "Let a node finish its tasks and take nothing new"),
            ("down", "down", "Take a node down: its tasks are killed and their jobs requeued"),
            ("up", "up", "Bring a node back"),
        })
        {
            var name = new Argument<string>("NODE") { Description = "Node name" };
            var reason = new Option<string?>("--reason") { Description = "Why, for the event log" };
            var sub = new Command(verb, what) { name, reason };
            sub.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
            {
                using var client = Cli.CreateClient(parse);
                var node = await client.SetNodeStateAsync(parse.GetValue(name)!, state, parse.GetValue(reason), ct);
                Cli.Print(parse, node, $"node {node.Name}: {node.State}");
            }));
            command.Subcommands.Add(sub);
        }
        return command;
    }

    public static Command Queues()
    {
        var command = new Command("queues", "Queues: ordering, weight, pending and running jobs, allocation, dominant share");
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var queues = await client.ListQueuesAsync(ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(queues);
                return;
            }
            var table = new Table().AddColumns("QUEUE", "ORDERING", "WEIGHT", "PENDING", "RUNNING", "ALLOCATED", "DOMINANT SHARE");
            foreach (var q in queues)
            {
                table.AddRow(Cli.Esc(q.Name), q.Ordering, q.Weight.ToString("0.##", CultureInfo.InvariantCulture), Num(q.Pending), Num(q.Running),
                    Cli.Esc(q.Allocated.ToString()), q.DominantShare.ToString("P1", CultureInfo.InvariantCulture));
            }
            AnsiConsole.Write(table);
        }));
        return command;
    }

    private static string Num(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Word(JobState state) => state.ToString().ToLowerInvariant();

    private static string StateMarkup(JobState state) => state switch
    {
        JobState.Succeeded => "[green]succeeded[/]",
        JobState.Failed => "[red]failed[/]",
        JobState.Running => "[blue]running[/]",
        JobState.Cancelled => "[grey]cancelled[/]",
        _ => Word(state),
    };

    private static string Short(string? text) => text is null ? "" : text.Length <= 70 ? text : text[..67] + "...";
}

/// <summary>A failure already reported on stdout (a job that did not succeed): exit 1 without a second message.</summary>
internal sealed class SilentFailure : Exception
{
    public SilentFailure() : base("the job did not succeed")
    {
    }

    public SilentFailure(string message) : base(message)
    {
    }

    public SilentFailure(string message, Exception inner) : base(message, inner)
    {
    }
}
