using System.CommandLine;
using AiMass.Registry;
using AiMass.Server.Hosting;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary><c>aimass admin ...</c> and <c>aimass status</c>: operating the control plane.</summary>
internal static class AdminCommands
{
    public static Command Create()
    {
        var admin = new Command("admin", "Backup, restore, integrity checks and garbage collection");
        admin.Subcommands.Add(Backup());
        admin.Subcommands.Add(Restore());
        admin.Subcommands.Add(Verify());
        admin.Subcommands.Add(Gc());
        return admin;
    }

    public static Command Status()
    {
        var command = new Command("status", "Show whether the control plane answers, its version, data directory and registry size");
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var status = await client.GetStatusAsync(ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(status);
                return;
            }
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("[bold]server[/]", Cli.Esc(client.BaseAddress?.ToString()));
            grid.AddRow("status", Cli.Esc(status.Status));
            grid.AddRow("version", Cli.Esc(status.Version));
            grid.AddRow("data directory", Cli.Esc(status.DataDirectory));
            grid.AddRow("started", Cli.Time(status.StartedAt));
            grid.AddRow("models", status.Models.ToString(System.Globalization.CultureInfo.InvariantCulture));
            grid.AddRow("versions", status.Versions.ToString(System.Globalization.CultureInfo.InvariantCulture));
            grid.AddRow("artifacts", $"{status.Blobs} blob(s), {Cli.Bytes(status.ArtifactBytes)}");
            AnsiConsole.Write(grid);
        }));
        return command;
    }

    private static Command Backup()
    {
        var dir = new Argument<string>("DIR") { Description = "Directory on the server's machine (new, empty, or an earlier backup to update)" };
        var command = new Command("backup", "Write a consistent snapshot of database and artifacts while the server runs") { dir };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var report = await client.BackupAsync(Path.GetFullPath(parse.GetValue(dir)!), ct);
            Cli.Print(parse, report, $"backup written to {report.Path}: {report.Models} model(s), {report.Versions} version(s), {report.Blobs} blob(s), {Cli.Bytes(report.Bytes)}");
        }));
        return command;
    }

    private static Command Restore()
    {
        var dir = new Argument<string>("DIR") { Description = "A directory written by 'aimass admin backup'" };
        var dataDir = new Option<string>("--data-dir")
        {
            Description = "New or empty data directory to restore into (env AIMASS_DATA_DIR; default ~/.aimass)",
            DefaultValueFactory = _ => StorageOptions.DefaultDataDirectory(),
        };
        var command = new Command("restore", "Restore a backup into a new data directory (offline; then start it with 'aimass up --data-dir')") { dir, dataDir };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            var target = Path.GetFullPath(parse.GetValue(dataDir)!);
            var manifest = await RegistryBackup.RestoreAsync(parse.GetValue(dir)!, target, ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(new { data_directory = target, manifest });
                return;
            }
            Console.Out.WriteLine($"restored backup of {Cli.Time(manifest.CreatedAt)} into {target}: {manifest.Models} model(s), {manifest.Versions} version(s), {manifest.Blobs} blob(s) verified");
            Console.Out.WriteLine($"start it with: aimass up --data-dir {target}");
        }));
        return command;
    }

    private static Command Verify()
    {
        var command = new Command("verify", "Re-hash every artifact the registry references; exit 1 when any is missing or corrupt");
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var report = await Cli.WithProgressAsync(parse, "verifying artifacts", null, _ => client.VerifyAsync(ct));
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(report);
            }
            else
            {
                Console.Out.WriteLine($"checked {report.BlobsChecked} blob(s), {Cli.Bytes(report.BytesChecked)}: {(report.Problems.Count == 0 ? "all intact" : $"{report.Problems.Count} problem(s)")}");
                foreach (var p in report.Problems)
                {
                    Console.Out.WriteLine($"  {p.Digest}: {p.Problem}; used by {string.Join(", ", p.Versions)}");
                }
            }
            if (report.Problems.Count > 0)
            {
                throw new CliException($"{report.Problems.Count} artifact(s) are missing or corrupt; restore them from a backup ('aimass admin restore')");
            }
        }));
        return command;
    }

    private static Command Gc()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Only count what would be removed" };
        var command = new Command("gc", "Remove artifacts no version references and stale temporary upload files; mark expired reservations failed") { dryRun };
        command.SetAction((parse, ct) => Cli.RunAsync(parse, async () =>
        {
            using var client = Cli.CreateClient(parse);
            var report = await client.CollectGarbageAsync(parse.GetValue(dryRun), ct);
            if (Cli.WantsJson(parse))
            {
                Cli.PrintJson(report);
                return;
            }
            var verb = report.DryRun ? "would remove" : "removed";
            Console.Out.WriteLine($"{verb} {report.BlobsRemoved} unreferenced blob(s) ({Cli.Bytes(report.BytesFreed)}) and {report.TempFilesRemoved} temporary file(s) ({Cli.Bytes(report.TempBytesFreed)})");
            if (report.ReservationsExpired > 0)
            {
                Console.Out.WriteLine($"{(report.DryRun ? "would mark" : "marked")} {report.ReservationsExpired} expired reservation(s) failed");
            }
        }));
        return command;
    }
}
