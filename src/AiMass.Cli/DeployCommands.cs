using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using AiMass.Client;
using AiMass.Deployments;
using AiMass.Registry;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary><c>aimass deploy</c>, <c>aimass deployments ...</c>, <c>aimass predict</c>: models served by autoscaled replicas behind the control plane.</summary>
internal static class DeployCommands
{
    public static Command Deploy()
    {
        var model = new Argument<string>("MODEL") { Description = "NAME@VERSION or NAME@ALIAS from the registry (an alias is followed: moving it rolls the replicas over)" };
        var name = new Option<string?>("--name") { Description = "The deployment's name, which clients use as the model name (default: the model's name)" };
        var replicas = ReplicasOption(required: false);
        var canary = new Option<string?>("--canary") { Description = "A canary version NAME@VERSION|ALIAS that gets --weight percent of the requests" };
        var weight = new Option<int?>("--weight") { Description = "Percent of the requests for the canary (default 10)" };
        var shadow = new Option<string?>("--shadow") { Description = "A shadow version that receives a copy of every request; its answers are compared and discarded" };
        var cpu = new Option<string>("--cpu") { Description = "CPU of each replica", DefaultValueFactory = _ => "1" };
        var memory = new Option<string>("--memory") { Description = "Memory of each replica", DefaultValueFactory = _ => "1Gi" };
        var gpus = new Option<int>("--gpus") { Description = "GPUs of each replica" };
        var queue = new Option<string?>("--queue") { Description = "Queue of the replica jobs" };
        var priority = new Option<int>("--priority") { Description = "Priority of the replica jobs" };
        var selector = new Option<string[]>("--node-selector") { Description = "Label KEY=VALUE a node must have to run a replica (repeatable)", AllowMultipleArgumentsPerToken = false };
        var target = new Option<double>("--target-in-flight") { Description = "Concurrent requests per replica the autoscaler aims at", DefaultValueFactory = _ => 4 };
        var scaleToZero = new Option<double>("--scale-to-zero-after") { Description = "Seconds without requests before the last replica stops (with a minimum of 0)", DefaultValueFactory = _ => 300 };
        var downscale = new Option<double>("--downscale-delay") { Description = "Seconds the load must stay low before replicas are removed", DefaultValueFactory = _ => 30 };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Largest dynamic batch in each replica (1: no batching)", DefaultValueFactory = _ => 8 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads per replica", DefaultValueFactory = _ => 1 };
        var wait = WaitOption();
        var command = new Command("deploy", "Deploy a model version: replicas run as jobs ('aimass serve'), requests go to this server's /v2/models/NAME/infer and /v1/models/NAME:predict")
        {
            model, name, replicas, canary, weight, shadow, cpu, memory, gpus, queue, priority, selector, target, scaleToZero, downscale, maxBatch, threads, wait,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var reference = Cli.ParseRef(parse.GetValue(model)!);
            var (min, max) = ParseReplicas(parse.GetValue(replicas) ?? "1");
            var spec = new DeploymentSpec
            {
                Name = parse.GetValue(name) ?? reference.Model,
                Model = reference.ToString(),
                MinReplicas = min,
                MaxReplicas = max,
                Canary = parse.GetValue(canary),
                CanaryWeight = parse.GetValue(canary) is null ? 0 : parse.GetValue(weight) ?? 10,
                Shadow = parse.GetValue(shadow),
                Cpu = parse.GetValue(cpu)!,
                Memory = parse.GetValue(memory)!,
                Gpus = parse.GetValue(gpus),
                Queue = parse.GetValue(queue),
                Priority = parse.GetValue(priority),
                NodeSelector = Cli.ParsePairs(parse.GetValue(selector), "--node-selector"),
                TargetInFlight = parse.GetValue(target),
                ScaleToZeroAfterSeconds = parse.GetValue(scaleToZero),
                DownscaleDelaySeconds = parse.GetValue(downscale),
                MaxBatchSize = parse.GetValue(maxBatch),
                Threads = parse.GetValue(threads),
            };
            if (parse.GetValue(weight) is not null && spec.Canary is null)
            {
                throw new CliException("--weight needs --canary");
            }
            using var client = Cli.CreateClient(parse);
            var created = await client.CreateDeploymentAsync(spec, ct);
            if (parse.GetValue(wait))
            {
                created = await WaitReadyAsync(parse, client, created.Name, ct);
            }
            Cli.Print(parse, created, $"deployment {created.Name} {Word(created.State)}: {created.Spec.Model}, replicas {min}..{max}"
                + $"\nrequests: {client.BaseAddress}v2/models/{created.Name}/infer (Open Inference Protocol), {client.BaseAddress}v1/models/{created.Name}:predict (TensorFlow Serving)");
        }));
        return command;
    }

    public static Command Deployments()
    {
        var command = new Command("deployments", "List, inspect, scale, roll out and delete deployments");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Show());
        command.Subcommands.Add(Scale());
        command.Subcommands.Add(Rollout());
        command.Subcommands.Add(Delete());
        command.Subcommands.Add(Events());
        return command;
    }

    public static Command Predict()
    {
        var deployment = new Argument<string>("DEPLOYMENT") { Description = "The deployment to ask" };
        var input = new Option<string>("--input", "-i") { Description = "A JSON request body (Open Inference Protocol {\"inputs\": [...]}, or TensorFlow Serving {\"instances\": ...} with --protocol v1); - reads standard input", Required = true };
        var protocol = new Option<string>("--protocol") { Description = "v2 (Open Inference Protocol) or v1 (TensorFlow Serving :predict)", DefaultValueFactory = _ => "v2" };
        protocol.AcceptOnlyFromAmong("v1", "v2");
        var command = new Command("predict", "Send one inference request to a deployment through the control plane and print the answer") { deployment, input, protocol };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var path = parse.GetValue(input)!;
            string body;
            try
            {
                body = path == "-" ? await Console.In.ReadToEndAsync(ct) : await File.ReadAllTextAsync(path, ct);
            }
            catch (FileNotFoundException)
            {
                throw new CliException($"input file '{path}' does not exist");
            }
            try
            {
                using var _ = JsonDocument.Parse(body);
            }
            catch (JsonException e)
            {
                throw new CliException($"{path} is not JSON: {e.Message}");
            }
            using var client = Cli.CreateClient(parse);
            var (status, answer) = await client.InferAsync(parse.GetValue(deployment)!, body, parse.GetValue(protocol)!, ct);
            if (status is < 200 or > 299)
            {
                var message = answer;
                try
                {
                    using var doc = JsonDocument.Parse(answer);
                    message = doc.RootElement.TryGetProperty("error", out var e) ? e.GetString() ?? answer : answer;
                }
                catch (JsonException)
                {
                }
                throw new CliException($"{parse.GetValue(deployment)} answered {status}: {message}");
            }
            using var parsed = JsonDocument.Parse(answer);
            Console.Out.WriteLine(JsonSerializer.Serialize(parsed.RootElement, Indented));
        }));
        return command;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static Command List()
    {
        var (pageSize, pageToken, all) = Cli.PagingOptions();
        var command = new Command("list", "List deployments") { pageSize, pageToken, all };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var (items, token) = await Cli.FetchAsync(parse.GetValue(pageToken), parse.GetValue(all), t => client.ListDeploymentsAsync(parse.GetValue(pageSize), t, ct));
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new Page<DeploymentInfo>(items, token));
                return;
            }
            var table = new Table().AddColumns("NAME", "MODEL", "STATE", "READY", "REPLICAS", "CANARY", "SHADOW", "MESSAGE");
            foreach (var d in items)
            {
                table.AddRow(Cli.Esc(d.Name), Cli.Esc(Model(d, "primary")), StateMarkup(d.State), $"{d.ReadyReplicas}/{d.DesiredReplicas}",
                    $"{d.Spec.MinReplicas}..{d.Spec.MaxReplicas}", Cli.Esc(d.Spec.Canary is null ? "" : $"{Model(d, "canary")} {d.Spec.CanaryWeight}%"),
                    Cli.Esc(d.Spec.Shadow is null ? "" : Model(d, "shadow")), Cli.Esc(d.Message));
            }
            AnsiConsole.Write(table);
            if (token is not null)
            {
                Console.Out.WriteLine($"more: --page-token {token}");
            }
        }));
        return command;
    }

    private static Command Show()
    {
        var name = NameArgument();
        var command = new Command("show", "A deployment's tracks, replicas and recent events") { name };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var d = await client.GetDeploymentAsync(parse.GetValue(name)!, ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(d);
                return;
            }
            AnsiConsole.MarkupLine($"[bold]{Cli.Esc(d.Name)}[/] {StateMarkup(d.State)}{(d.Message is null ? "" : " - " + Cli.Esc(d.Message))}");
            AnsiConsole.MarkupLine($"replicas {d.ReadyReplicas} ready of {d.DesiredReplicas} wanted ({d.Spec.MinReplicas}..{d.Spec.MaxReplicas}, target {d.Spec.TargetInFlight.ToString("0.##", CultureInfo.InvariantCulture)} in flight each); each {Cli.Esc(d.Spec.Cpu)} cpu, {Cli.Esc(d.Spec.Memory)}{(d.Spec.Gpus > 0 ? $", {d.Spec.Gpus} gpu" : "")}");
            AnsiConsole.MarkupLine($"created {Cli.Time(d.CreatedAt)}, changed {Cli.Time(d.UpdatedAt)}");
            var table = new Table().AddColumns("ROLE", "MODEL", "WEIGHT", "JOB", "VERSION", "STATE", "ADDRESS", "IN FLIGHT", "REQUESTS");
            foreach (var t in d.Tracks)
            {
                var model = $"{t.Model}{(t.Version is { } v ? $" (v{v})" : "")}";
                if (t.Replicas.Count == 0)
                {
                    table.AddRow(t.Role, Cli.Esc(model), $"{t.Weight}%", "-", "", "", "", "", "");
                }
                foreach (var r in t.Replicas)
                {
                    table.AddRow(t.Role, Cli.Esc(model), $"{t.Weight}%", r.JobId.ToString(CultureInfo.InvariantCulture), r.Version.ToString(CultureInfo.InvariantCulture),
                        StateMarkup(r.State), Cli.Esc(r.Address ?? ""), r.InFlight.ToString(CultureInfo.InvariantCulture), r.Requests.ToString(CultureInfo.InvariantCulture));
                }
            }
            AnsiConsole.Write(table);
            var events = await client.GetDeploymentEventsAsync(d.Name, cancellationToken: ct);
            foreach (var e in events.TakeLast(10))
            {
                AnsiConsole.MarkupLine($"{Cli.Time(e.Time)} [grey]{Cli.Esc(e.Kind)}[/] {Cli.Esc(e.Message)}");
            }
        }));
        return command;
    }

    private static Command Scale()
    {
        var name = NameArgument();
        var replicas = ReplicasOption(required: true);
        var target = new Option<double?>("--target-in-flight") { Description = "Concurrent requests per replica the autoscaler aims at" };
        var wait = WaitOption();
        var command = new Command("scale", "Change a deployment's replica range (the autoscaler stays within it)") { name, replicas, target, wait };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var (min, max) = ParseReplicas(parse.GetValue(replicas)!);
            await UpdateAsync(parse, parse.GetValue(name)!, new DeploymentPatch { MinReplicas = min, MaxReplicas = max, TargetInFlight = parse.GetValue(target) }, parse.GetValue(wait), ct);
        }));
        return command;
    }

    private static Command Rollout()
    {
        var name = NameArgument();
        var model = new Argument<string?>("MODEL") { Description = "A new primary NAME@VERSION|ALIAS: replicas are replaced one by one without failing a request", Arity = ArgumentArity.ZeroOrOne };
        var canary = new Option<string?>("--canary") { Description = "Set the canary version" };
        var weight = new Option<int?>("--weight") { Description = "Percent of the requests for the canary" };
        var noCanary = new Option<bool>("--no-canary") { Description = "Remove the canary" };
        var shadow = new Option<string?>("--shadow") { Description = "Set the shadow version" };
        var noShadow = new Option<bool>("--no-shadow") { Description = "Remove the shadow" };
        var promote = new Option<bool>("--promote") { Description = "Make the canary the primary (rolled over) and remove the canary" };
        var wait = WaitOption();
        var command = new Command("rollout", "Roll a deployment over to another version, or change its canary and shadow") { name, model, canary, weight, noCanary, shadow, noShadow, promote, wait };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            if (parse.GetValue(canary) is not null && parse.GetValue(noCanary))
            {
                throw new CliException("--canary and --no-canary contradict each other");
            }
            if (parse.GetValue(shadow) is not null && parse.GetValue(noShadow))
            {
                throw new CliException("--shadow and --no-shadow contradict each other");
            }
            var patch = new DeploymentPatch
            {
                Model = parse.GetValue(model) is { } m ? Cli.ParseRef(m).ToString() : null,
                Canary = parse.GetValue(noCanary) ? "" : parse.GetValue(canary) is { } c ? Cli.ParseRef(c).ToString() : null,
                CanaryWeight = parse.GetValue(weight),
                Shadow = parse.GetValue(noShadow) ? "" : parse.GetValue(shadow) is { } s ? Cli.ParseRef(s).ToString() : null,
                Promote = parse.GetValue(promote),
            };
            if (patch == new DeploymentPatch())
            {
                throw new CliException("nothing to roll out: give a MODEL, --canary/--no-canary, --weight, --shadow/--no-shadow or --promote");
            }
            await UpdateAsync(parse, parse.GetValue(name)!, patch, parse.GetValue(wait), ct);
        }));
        return command;
    }

    private static Command Delete()
    {
        var name = NameArgument();
        var wait = new Option<bool>("--wait") { Description = "Wait until every replica has drained and stopped" };
        var command = new Command("delete", "Delete a deployment: routing stops at once, replicas are drained and stopped") { name, wait };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var deleted = await client.DeleteDeploymentAsync(parse.GetValue(name)!, ct);
            if (parse.GetValue(wait))
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromMinutes(5));
                while (true)
                {
                    try
                    {
                        await client.GetDeploymentAsync(deleted.Name, timeout.Token);
                    }
                    catch (AiMassApiException e) when (e.Status == System.Net.HttpStatusCode.NotFound)
                    {
                        break;
                    }
                    await Task.Delay(TimeSpan.FromMilliseconds(250), timeout.Token);
                }
            }
            Cli.Print(parse, deleted, $"deployment {deleted.Name} {(parse.GetValue(wait) ? "deleted" : "deleting: its replicas drain and stop")}");
        }));
        return command;
    }

    private static Command Events()
    {
        var name = NameArgument();
        var command = new Command("events", "A deployment's events: scaling decisions, replicas started, ready, ejected, drained, stopped") { name };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var events = await client.GetDeploymentEventsAsync(parse.GetValue(name)!, cancellationToken: ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(events);
                return;
            }
            foreach (var e in events)
            {
                Console.Out.WriteLine($"{Cli.Time(e.Time)} {e.Kind,-18} {e.Message}");
            }
        }));
        return command;
    }

    private static async Task UpdateAsync(ParseResult parse, string name, DeploymentPatch patch, bool wait, CancellationToken ct)
    {
        using var client = Cli.CreateClient(parse);
        var updated = await client.UpdateDeploymentAsync(name, patch, ct);
        if (wait)
        {
            updated = await WaitReadyAsync(parse, client, name, ct);
        }
        Cli.Print(parse, updated, $"deployment {updated.Name} {Word(updated.State)}: {Describe(updated)}");
    }

    /// <summary>Polls until the deployment is ready (or scaled to zero), for at most 10 minutes.</summary>
    private static async Task<DeploymentInfo> WaitReadyAsync(ParseResult parse, AiMassClient client, string name, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(10));
        string? said = null;
        while (true)
        {
            var d = await client.GetDeploymentAsync(name, timeout.Token);
            if (d.State is "ready" or "scaled_to_zero")
            {
                return d;
            }
            var now = $"{d.State}: {d.ReadyReplicas}/{d.DesiredReplicas} ready{(d.Message is null ? "" : " - " + d.Message)}";
            if (now != said && !Cli.WantsJson(parse))
            {
                await Console.Error.WriteLineAsync(now);
                said = now;
            }
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), timeout.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new CliException($"deployment {name} is not ready after 10 minutes ({now}); see 'aimass deployments show {name}'");
            }
        }
    }

    private static Argument<string> NameArgument() => new("DEPLOYMENT") { Description = "The deployment's name" };

    private static Option<string?> ReplicasOption(bool required) => new("--replicas")
    {
        Description = "Replicas: N, or MIN..MAX for the autoscaler (MIN 0 scales to zero when idle)",
        Required = required,
    };

    private static Option<bool> WaitOption() => new("--wait") { Description = "Wait until the deployment is ready (every wanted replica answers)" };

    /// <summary>Parses <c>N</c> or <c>MIN..MAX</c>.</summary>
    internal static (int Min, int Max) ParseReplicas(string text)
    {
        var parts = text.Split("..");
        if (parts.Length is 1 or 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var min)
            && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var max)
            && min <= max && max >= 1)
        {
            return (min, max);
        }
        throw new CliException($"--replicas '{text}' must be N (1 or more) or MIN..MAX with 0 <= MIN <= MAX, e.g. 2 or 0..4");
    }

    private static string Model(DeploymentInfo d, string role) =>
        d.Tracks.FirstOrDefault(t => t.Role == role) is { } t ? $"{t.Model}{(t.Version is { } v && !t.Model.EndsWith("@" + v.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal) ? $" (v{v})" : "")}" : "";

    private static string Describe(DeploymentInfo d) =>
        $"{Model(d, "primary")}, replicas {d.Spec.MinReplicas}..{d.Spec.MaxReplicas}"
        + (d.Spec.Canary is null ? "" : $", canary {Model(d, "canary")} at {d.Spec.CanaryWeight}%")
        + (d.Spec.Shadow is null ? "" : $", shadow {Model(d, "shadow")}");

    private static string Word(string state) => state.Replace('_', ' ');

    private static string StateMarkup(string state) => state switch
    {
        "ready" => "[green]ready[/]",
        "degraded" or "unhealthy" => $"[red]{state}[/]",
        "progressing" or "starting" or "draining" => $"[yellow]{state}[/]",
        _ => Word(state),
    };
}
