using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using AiMass.Registry;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary><c>aimass models ...</c>: the model registry.</summary>
internal static class ModelsCommands
{
    public static Command Create()
    {
        var models = new Command("models", "Registered models, their versions and aliases");
        models.Subcommands.Add(List());
        models.Subcommands.Add(Show());
        models.Subcommands.Add(Versions());
        models.Subcommands.Add(CreateModel());
        models.Subcommands.Add(Update());
        models.Subcommands.Add(Register());
        models.Subcommands.Add(Reserve());
        models.Subcommands.Add(Upload());
        models.Subcommands.Add(Fail());
        models.Subcommands.Add(Alias());
        models.Subcommands.Add(Rollback());
        models.Subcommands.Add(Archive("archive", VersionStatus.Archived, "Archive a version: kept for history, hidden from listings, not servable"));
        models.Subcommands.Add(Archive("unarchive", VersionStatus.Ready, "Return an archived version to ready"));
        models.Subcommands.Add(Delete());
        models.Subcommands.Add(Download());
        return models;
    }

    private static Command List()
    {
        var prefix = new Option<string?>("--name-prefix") { Description = "Only models whose name starts with this" };
        var tag = new Option<string?>("--tag") { Description = "Only models with this tag: KEY or KEY=VALUE" };
        var alias = new Option<string?>("--alias") { Description = "Only models that have this alias" };
        var order = new Option<string>("--order-by") { Description = "name, created or updated", DefaultValueFactory = _ => "name" };
        order.AcceptOnlyFromAmong("name", "created", "updated");
        var desc = new Option<bool>("--desc") { Description = "Reverse the order" };
        var (pageSize, pageToken, all) = Cli.PagingOptions();
        var command = new Command("list", "List registered models") { prefix, tag, alias, order, desc, pageSize, pageToken, all };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var (items, token) = await Cli.FetchAsync(parse.GetValue(pageToken), parse.GetValue(all), t =>
                client.ListModelsAsync(parse.GetValue(prefix), parse.GetValue(tag), parse.GetValue(alias), parse.GetValue(order),
                    parse.GetValue(desc), parse.GetValue(pageSize), t, ct));
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new Page<ModelInfo>(items, token));
                return;
            }
            var table = new Table().AddColumns("NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED", "DESCRIPTION");
            foreach (var m in items)
            {
                table.AddRow(Cli.Esc(m.Name), m.LatestVersion == 0 ? "-" : m.LatestVersion.ToString(CultureInfo.InvariantCulture),
                    m.VersionCount.ToString(CultureInfo.InvariantCulture), Cli.Esc(string.Join(", ", m.Aliases.Select(a => $"{a.Key}={a.Value}"))),
                    Cli.Time(m.UpdatedAt), Cli.Esc(m.Description));
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
        var reference = new Argument<string>("REF") { Description = "NAME (the model), NAME@VERSION or NAME@ALIAS (a version)" };
        var command = new Command("show", "Show a model with its recent versions, or one version in full") { reference };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(reference)!);
            using var client = Cli.CreateClient(parse);
            if (r.Selector is null)
            {
                var model = await client.GetModelAsync(r.Model, ct);
                var versions = await client.ListVersionsAsync(r.Model, status: "all", pageSize: 20, cancellationToken: ct);
                if (Cli.WantsJson(parse))
                {
                    Cli.PrintJson(new { model, versions = versions.Items });
                    return;
                }
                var grid = new Grid().AddColumn().AddColumn();
                grid.AddRow("[bold]name[/]", Cli.Esc(model.Name));
                grid.AddRow("description", Cli.Esc(model.Description));
                grid.AddRow("tags", Cli.Esc(string.Join(", ", model.Tags.Select(t => $"{t.Key}={t.Value}"))));
                grid.AddRow("aliases", Cli.Esc(string.Join(", ", model.Aliases.Select(a => $"{a.Key} -> {a.Value}"))));
                grid.AddRow("versions", $"{model.VersionCount} (latest {model.LatestVersion})");
                grid.AddRow("created", Cli.Time(model.CreatedAt));
                grid.AddRow("updated", Cli.Time(model.UpdatedAt));
                AnsiConsole.Write(grid);
                AnsiConsole.Write(VersionTable(versions.Items));
                return;
            }
            var v = await client.GetVersionAsync(r, ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(v);
                return;
            }
            PrintVersion(v);
        }));
        return command;
    }

    private static Command Versions()
    {
        var name = new Argument<string>("NAME") { Description = "Model name" };
        var status = new Option<string?>("--status") { Description = "registering, ready, failed, archived or all (default: all but archived)" };
        var tag = new Option<string?>("--tag") { Description = "Only versions with this tag: KEY or KEY=VALUE" };
        var alias = new Option<string?>("--alias") { Description = "Only the version that has this alias" };
        var asc = new Option<bool>("--asc") { Description = "Oldest first" };
        var (pageSize, pageToken, all) = Cli.PagingOptions();
        var command = new Command("versions", "List the versions of a model, newest first") { name, status, tag, alias, asc, pageSize, pageToken, all };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var (items, token) = await Cli.FetchAsync(parse.GetValue(pageToken), parse.GetValue(all), t =>
                client.ListVersionsAsync(parse.GetValue(name)!, parse.GetValue(status), parse.GetValue(tag), parse.GetValue(alias),
                    parse.GetValue(asc), parse.GetValue(pageSize), t, ct));
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new Page<ModelVersionInfo>(items, token));
                return;
            }
            AnsiConsole.Write(VersionTable(items));
            if (token is not null)
            {
                Console.Out.WriteLine($"more: --page-token {token}  (or --all)");
            }
        }));
        return command;
    }

    private static Table VersionTable(IEnumerable<ModelVersionInfo> versions)
    {
        var table = new Table().AddColumns("VERSION", "STATUS", "ALIASES", "FORMAT", "SIZE", "DIGEST", "CREATED");
        foreach (var v in versions)
        {
            table.AddRow(v.Version.ToString(CultureInfo.InvariantCulture), Lower(v.Status), Cli.Esc(string.Join(", ", v.Aliases)), Cli.Esc(v.Format),
                v.Digest is null ? "-" : Cli.Bytes(v.Size), Cli.Esc(v.Digest?[..19] ?? "-"), Cli.Time(v.CreatedAt));
        }
        return table;
    }

    private static void PrintVersion(ModelVersionInfo v)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("[bold]version[/]", Cli.Esc($"{v.Name}@{v.Version}"));
        grid.AddRow("status", Cli.Esc(Lower(v.Status) + (v.StatusMessage is null ? "" : $" ({v.StatusMessage})")));
        grid.AddRow("aliases", Cli.Esc(string.Join(", ", v.Aliases)));
        grid.AddRow("format", Cli.Esc(v.Format));
        grid.AddRow("size", v.Digest is null ? "-" : $"{Cli.Bytes(v.Size)} ({v.Size} bytes)");
        grid.AddRow("digest", Cli.Esc(v.Digest ?? "- (artifact not uploaded yet)"));
        grid.AddRow("description", Cli.Esc(v.Description));
        grid.AddRow("tags", Cli.Esc(string.Join(", ", v.Tags.Select(t => $"{t.Key}={t.Value}"))));
        grid.AddRow("params", Cli.Esc(string.Join(", ", v.Params.Select(p => $"{p.Key}={p.Value.GetRawText()}"))));
        grid.AddRow("metrics", Cli.Esc(string.Join(", ", v.Metrics.Select(m => $"{m.Key}={m.Value.ToString("G6", CultureInfo.InvariantCulture)}"))));
        grid.AddRow("source", Cli.Esc(v.Lineage.Source));
        grid.AddRow("dataset", Cli.Esc(v.Lineage.DatasetDigest));
        grid.AddRow("parent", Cli.Esc(v.Lineage.Parent));
        grid.AddRow("created", Cli.Time(v.CreatedAt));
        AnsiConsole.Write(grid);
        if (v.Signature is { } sig)
        {
            var table = new Table().AddColumns("", "NAME", "TYPE", "SHAPE");
            foreach (var t in sig.Inputs)
            {
                table.AddRow("input", Cli.Esc(t.Name), Cli.Esc(t.ElementType), Cli.Esc(Shape(t)));
            }
            foreach (var t in sig.Outputs)
            {
                table.AddRow("output", Cli.Esc(t.Name), Cli.Esc(t.ElementType), Cli.Esc(Shape(t)));
            }
            AnsiConsole.Write(table);
        }
    }

    private static string Shape(TensorSpec t) =>
        "[" + string.Join(", ", t.Shape.Select((d, i) => d >= 0 ? d.ToString(CultureInfo.InvariantCulture) : t.DimNames?[i] ?? "-1")) + "]";

    private static string Lower(VersionStatus s) => s.ToString().ToLowerInvariant();

    private static Command CreateModel()
    {
        var name = new Argument<string>("NAME") { Description = "Model name: letters, digits, '.', '_', '-'; at most 128" };
        var description = new Option<string?>("--description") { Description = "What the model is for" };
        var tags = new Option<string[]>("--tag") { Description = "Tag KEY=VALUE (repeatable)", AllowMultipleArgumentsPerToken = false };
        var command = new Command("create", "Create a registered model (register creates one too when missing)") { name, description, tags };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var model = await client.CreateModelAsync(new CreateModelRequest(parse.GetValue(name)!, parse.GetValue(description),
                Cli.ParsePairs(parse.GetValue(tags), "--tag")), ct);
            Cli.Print(parse, model, $"created model {model.Name}");
        }));
        return command;
    }

    private static Command Update()
    {
        var reference = new Argument<string>("REF") { Description = "NAME (the model) or NAME@VERSION / NAME@ALIAS (a version)" };
        var description = new Option<string?>("--description") { Description = "New description ('' clears it)" };
        var tags = new Option<string[]>("--tag") { Description = "Set tag KEY=VALUE (repeatable)" };
        var untags = new Option<string[]>("--untag") { Description = "Remove tag KEY (repeatable)" };
        var parameters = new Option<string[]>("--param") { Description = "Versions: set parameter KEY=VALUE (repeatable)" };
        var metrics = new Option<string[]>("--metric") { Description = "Versions: set metric KEY=NUMBER (repeatable), e.g. after an evaluation" };
        var command = new Command("update", "Change the description or tags of a model, or the description, tags, params or metrics of a version")
        {
            reference, description, tags, untags, parameters, metrics,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(reference)!);
            var tagChanges = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var (key, value) in Cli.ParsePairs(parse.GetValue(tags), "--tag"))
            {
                tagChanges[key] = value;
            }
            foreach (var k in parse.GetValue(untags) ?? [])
            {
                tagChanges[k] = null;
            }
            using var client = Cli.CreateClient(parse);
            if (r.Selector is null)
            {
                if (parse.GetValue(parameters) is { Length: > 0 } || parse.GetValue(metrics) is { Length: > 0 })
                {
                    throw new CliException($"--param and --metric belong to a version: {r.Model}@VERSION");
                }
                var model = await client.UpdateModelAsync(r.Model, new UpdateModelRequest(parse.GetValue(description), tagChanges.Count == 0 ? null : tagChanges), ct);
                if (Cli.WantsJson(parse))
                {
                    Cli.PrintJson(model);
                    return;
                }
                Console.Out.WriteLine($"updated model {model.Name}");
                return;
            }
            var metricValues = ParseMetrics(parse.GetValue(metrics));
            var paramValues = ParseParams(parse.GetValue(parameters));
            var v = await client.UpdateVersionAsync(r, new UpdateVersionRequest(
                parse.GetValue(description), tagChanges.Count == 0 ? null : tagChanges,
                paramValues.Count == 0 ? null : paramValues, metricValues.Count == 0 ? null : metricValues), ct);
            Cli.Print(parse, v, $"updated {v.Name}@{v.Version}");
        }));
        return command;
    }

    private static Dictionary<string, double> ParseMetrics(string[]? items)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (k, v) in Cli.ParsePairs(items, "--metric"))
        {
            result[k] = double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)
                ? d : throw new CliException($"--metric {k}={v}: '{v}' is not a number");
        }
        return result;
    }

    private static Dictionary<string, JsonElement> ParseParams(string[]? items) =>
        Cli.ParsePairs(items, "--param").ToDictionary(p => p.Key, p => ParamValues.Parse(p.Value), StringComparer.Ordinal);

    /// <summary>The metadata options that <c>register</c> and <c>reserve</c> share.</summary>
    private sealed class VersionMetadataOptions
    {
        public Option<string> Format { get; } = new("--format") { Description = "Artifact format (onnx is loaded and its signature read)", DefaultValueFactory = _ => "onnx" };
        public Option<string?> Description { get; } = new("--description") { Description = "Version description" };
        public Option<string[]> Tags { get; } = new("--tag") { Description = "Tag KEY=VALUE (repeatable)" };
        public Option<string[]> Params { get; } = new("--param") { Description = "Parameter KEY=VALUE (repeatable; numbers and JSON kept as such)" };
        public Option<string[]> Metrics { get; } = new("--metric") { Description = "Metric KEY=NUMBER (repeatable)" };
        public Option<string?> Source { get; } = new("--source") { Description = "Lineage: the job or run that produced it (e.g. job:42)" };
        public Option<string?> Dataset { get; } = new("--dataset-digest") { Description = "Lineage: digest of the training data set" };
        public Option<string?> Parent { get; } = new("--parent") { Description = "Lineage: the version it derives from, NAME@VERSION" };

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { Format, Description, Tags, Params, Metrics, Source, Dataset, Parent })
            {
                command.Options.Add(option);
            }
        }

        public RegisterVersionRequest Read(ParseResult parse)
        {
            var lineage = new Lineage(parse.GetValue(Source), parse.GetValue(Dataset), parse.GetValue(Parent));
            return new RegisterVersionRequest
            {
                Format = parse.GetValue(Format)!,
                Description = parse.GetValue(Description),
                Tags = Cli.ParsePairs(parse.GetValue(Tags), "--tag"),
                Params = ParseParams(parse.GetValue(Params)),
                Metrics = ParseMetrics(parse.GetValue(Metrics)),
                Lineage = lineage is { Source: null, DatasetDigest: null, Parent: null } ? null : lineage,
            };
        }
    }

    private static FileStream OpenArtifact(FileInfo path) =>
        path.Exists
            ? new FileStream(path.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan | FileOptions.Asynchronous)
            : throw new CliException($"file '{path.FullName}' does not exist");

    private static Command Register()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "The artifact (an .onnx file for format onnx)" };
        var name = new Option<string>("--name", "-n") { Description = "Model name (created when missing)", Required = true };
        var alias = new Option<string?>("--alias", "-a") { Description = "Point this alias at the new version" };
        var digest = new Option<string?>("--digest") { Description = "Expected sha256:HEX; the server refuses different content" };
        var metadata = new VersionMetadataOptions();
        var command = new Command("register", "Upload a file as a new version of a model") { file, name, alias, digest };
        metadata.AddTo(command);
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var path = parse.GetValue(file)!;
            var modelName = parse.GetValue(name)!;
            if (!Names.IsValidModelName(modelName))
            {
                throw new CliException($"--name '{modelName}' is not a valid model name (letters, digits, '.', '_', '-', starting with a letter or digit; at most 128)");
            }
            var request = metadata.Read(parse) with { ExpectedDigest = parse.GetValue(digest), Alias = parse.GetValue(alias) };
            await using var stream = OpenArtifact(path);
            using var client = Cli.CreateClient(parse);
            var version = await Cli.WithProgressAsync(parse, $"upload {path.Name}", stream.Length,
                progress => client.RegisterVersionAsync(modelName, stream, request, progress, ct));
            Cli.Print(parse, version, $"registered {version.Name}@{version.Version} ({Cli.Bytes(version.Size)}, {version.Digest})"
                + (request.Alias is null ? "" : $"; {request.Alias} -> {version.Version}"));
        }));
        return command;
    }

    private static Command Reserve()
    {
        var name = new Argument<string>("NAME") { Description = "Model name (created when missing)" };
        var metadata = new VersionMetadataOptions();
        var command = new Command("reserve", "Take the next version number now, with its lineage, for an artifact that a job uploads later ('upload' or 'fail')") { name };
        metadata.AddTo(command);
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var version = await client.ReserveVersionAsync(parse.GetValue(name)!, metadata.Read(parse), ct);
            Cli.Print(parse, version, $"reserved {version.Name}@{version.Version} (registering)");
        }));
        return command;
    }

    private static Command Upload()
    {
        var reference = new Argument<string>("REF") { Description = "NAME@VERSION of a reserved (registering) version" };
        var file = new Argument<FileInfo>("FILE") { Description = "The artifact" };
        var digest = new Option<string?>("--digest") { Description = "Expected sha256:HEX; the server refuses different content" };
        var command = new Command("upload", "Upload the artifact of a reserved version, which becomes ready (or failed when the artifact is invalid)") { reference, file, digest };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(reference)!);
            var number = r.Number ?? throw new CliException($"name the reserved version by number: {r.Model}@VERSION");
            var path = parse.GetValue(file)!;
            await using var stream = OpenArtifact(path);
            using var client = Cli.CreateClient(parse);
            var version = await Cli.WithProgressAsync(parse, $"upload {path.Name}", stream.Length,
                progress => client.UploadArtifactAsync(r.Model, number, stream, parse.GetValue(digest), progress, ct));
            Cli.Print(parse, version, $"uploaded {version.Name}@{version.Version} ({Cli.Bytes(version.Size)}, {version.Digest}); it is {Lower(version.Status)}");
        }));
        return command;
    }

    private static Command Fail()
    {
        var reference = new Argument<string>("REF") { Description = "NAME@VERSION of a reserved (registering) version" };
        var message = new Option<string>("--message", "-m") { Description = "Why the artifact will not come", Required = true };
        var command = new Command("fail", "Mark a reserved version failed (its producer gave up); the number stays taken") { reference, message };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(reference)!);
            using var client = Cli.CreateClient(parse);
            var version = await client.UpdateVersionAsync(r, new UpdateVersionRequest(Status: VersionStatus.Failed, StatusMessage: parse.GetValue(message)), ct);
            Cli.Print(parse, version, $"{version.Name}@{version.Version} is failed: {version.StatusMessage}");
        }));
        return command;
    }

    private static Command Alias()
    {
        var alias = new Command("alias", "Move or remove aliases (production, staging, ...); every move is kept in the alias history");

        var target = new Argument<string>("REF") { Description = "The version to point at: NAME@VERSION, or NAME@OTHER_ALIAS to copy another alias" };
        var aliasName = new Argument<string>("ALIAS") { Description = "Alias name (starts with a letter)" };
        var reason = new Option<string?>("--reason") { Description = "Why (kept in the history)" };
        var set = new Command("set", "Point ALIAS at a version: aimass models alias set NAME@VERSION ALIAS") { target, aliasName, reason };
        set.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(target)!);
            using var client = Cli.CreateClient(parse);
            var version = r.Number ?? (await client.GetVersionAsync(r, ct)).Version;
            var info = await client.SetAliasAsync(r.Model, parse.GetValue(aliasName)!, version, parse.GetValue(reason), ct);
            Cli.Print(parse, info, $"{info.Model}@{info.Alias} -> {info.Version}");
        }));
        alias.Subcommands.Add(set);

        var model = new Argument<string>("NAME") { Description = "Model name" };
        var rmAlias = new Argument<string>("ALIAS") { Description = "Alias name" };
        var rm = new Command("rm", "Remove an alias (recorded; 'rollback' restores it)") { model, rmAlias };
        rm.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            await client.DeleteAliasAsync(parse.GetValue(model)!, parse.GetValue(rmAlias)!, ct);
            if (!Cli.WantsJson(parse))
            {
                Console.Out.WriteLine($"removed {parse.GetValue(model)}@{parse.GetValue(rmAlias)}");
            }
        }));
        alias.Subcommands.Add(rm);

        var hModel = new Argument<string>("NAME") { Description = "Model name" };
        var hAlias = new Argument<string>("ALIAS") { Description = "Alias name" };
        var history = new Command("history", "Every move of an alias, newest first") { hModel, hAlias };
        history.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var events = await client.GetAliasHistoryAsync(parse.GetValue(hModel)!, parse.GetValue(hAlias)!, ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(events);
                return;
            }
            var table = new Table().AddColumns("WHEN", "ACTION", "FROM", "TO", "BY", "REASON");
            foreach (var e in events)
            {
                table.AddRow(Cli.Time(e.At), e.Action.ToString().ToLowerInvariant() + (e.UndoneBy is null ? "" : " (rolled back)"),
                    e.PreviousVersion?.ToString(CultureInfo.InvariantCulture) ?? "-", e.Version?.ToString(CultureInfo.InvariantCulture) ?? "-",
                    Cli.Esc(e.Actor), Cli.Esc(e.Reason));
            }
            AnsiConsole.Write(table);
        }));
        alias.Subcommands.Add(history);
        return alias;
    }

    private static Command Rollback()
    {
        var model = new Argument<string>("NAME") { Description = "Model name" };
        var alias = new Argument<string>("ALIAS") { Description = "Alias to return to its previous version" };
        var command = new Command("rollback", "Return an alias to the version it had before its latest move (repeat to go further back)") { model, alias };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var info = await client.RollbackAliasAsync(parse.GetValue(model)!, parse.GetValue(alias)!, ct);
            Cli.Print(parse, info, info is null
                ? $"{parse.GetValue(model)}@{parse.GetValue(alias)} removed (it did not exist before its latest move)"
                : $"{info.Model}@{info.Alias} -> {info.Version}");
        }));
        return command;
    }

    private static Command Archive(string verb, VersionStatus status, string description)
    {
        var reference = new Argument<string>("REF") { Description = "NAME@VERSION" };
        var command = new Command(verb, description) { reference };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(reference)!);
            if (r.Selector is null)
            {
                throw new CliException($"name a version: {r.Model}@VERSION");
            }
            using var client = Cli.CreateClient(parse);
            var v = await client.UpdateVersionAsync(r, new UpdateVersionRequest(Status: status), ct);
            Cli.Print(parse, v, $"{v.Name}@{v.Version} is {Lower(v.Status)}");
        }));
        return command;
    }

    private static Command Delete()
    {
        var reference = new Argument<string>("REF") { Description = "NAME (the model and, with --force, all its versions) or NAME@VERSION" };
        var force = new Option<bool>("--force") { Description = "Also delete a model's versions, or remove aliases pointing at the version" };
        var command = new Command("delete", "Delete a version (its blob goes once no version shares it) or a model") { reference, force };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(reference)!);
            using var client = Cli.CreateClient(parse);
            if (r.Selector is null)
            {
                await client.DeleteModelAsync(r.Model, parse.GetValue(force), ct);
            }
            else
            {
                await client.DeleteVersionAsync(r, parse.GetValue(force), ct);
            }
            if (!Cli.WantsJson(parse))
            {
                Console.Out.WriteLine($"deleted {r}");
            }
        }));
        return command;
    }

    private static Command Download()
    {
        var reference = new Argument<string>("REF") { Description = "NAME@VERSION, NAME@ALIAS or NAME (latest)" };
        var output = new Option<string?>("--output", "-o") { Description = "File to write (default NAME-VERSION.FORMAT here); '-' for stdout" };
        var command = new Command("download", "Download a version's artifact, verifying its digest") { reference, output };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var r = Cli.ParseRef(parse.GetValue(reference)!);
            using var client = Cli.CreateClient(parse);
            var target = parse.GetValue(output);
            if (target == "-")
            {
                await using var stdout = Console.OpenStandardOutput();
                await client.DownloadArtifactAsync(r, stdout, null, ct);
                return;
            }
            var info = await client.GetVersionAsync(r, ct);
            var path = Path.GetFullPath(target ?? $"{info.Name}-{info.Version}.{info.Format}");
            if (Directory.Exists(path))
            {
                path = Path.Combine(path, $"{info.Name}-{info.Version}.{info.Format}");
            }
            await Cli.WithProgressAsync(parse, $"download {info.Name}@{info.Version}", info.Size,
                progress => client.DownloadArtifactToFileAsync(new VersionRef(info.Name, info.Version.ToString(CultureInfo.InvariantCulture)), path, progress, ct));
            Cli.Print(parse, new { path, version = info }, $"downloaded {info.Name}@{info.Version} to {path} ({Cli.Bytes(info.Size)}, {info.Digest} verified)");
        }));
        return command;
    }
}
