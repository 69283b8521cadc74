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
var train = TrainCommand.Create();
root.Subcommands.Add(train);
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
var parsed = root.Parse(args);
// On SIGINT or SIGTERM a command's cancellation token fires and it gets 2 s to stop before the process ends; a
// training run gets as long as its step and checkpoint take (a job's executor sends SIGKILL after its grace period).
var invocation = new InvocationConfiguration
{
    ProcessTerminationTimeout = parsed.CommandResult.Command == train ? TimeSpan.FromMinutes(10) : TimeSpan.FromSeconds(2),
};
return await parsed.InvokeAsync(invocation);
