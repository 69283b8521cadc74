using System.CommandLine;
using AiMass.Cli;
using Spectre.Console;

if (Console.IsOutputRedirected)
{
    // Piped output is read by grep and scripts: do not wrap table rows at 80 columns.
    AnsiConsole.Profile.Width = 240;
}

var root = new RootCommand("AI Mass: train, tune, register, deploy and schedule machine learning on your own cluster.")
{
    Cli.Server,
    Cli.Json,
};
root.Subcommands.Add(UpCommand.Create());
root.Subcommands.Add(AdminCommands.Status());
root.Subcommands.Add(ModelsCommands.Create());
root.Subcommands.Add(JobsCommands.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(TuneCommands.Tune());
root.Subcommands.Add(TuneCommands.Studies());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(SimCommands.Create());
root.Subcommands.Add(DeployCommands.Deploy());
root.Subcommands.Add(DeployCommands.Deployments());
root.Subcommands.Add(DeployCommands.Predict());
root.Subcommands.Add(JobsCommands.Nodes());
root.Subcommands.Add(JobsCommands.Queues());
root.Subcommands.Add(AdminCommands.Create());
return await root.Parse(args).InvokeAsync();
