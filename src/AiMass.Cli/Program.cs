using System.CommandLine;
using AiMass.Cli;

var root = new RootCommand("AI Mass: train, tune, register, deploy and schedule machine learning on your own cluster.")
{
    Cli.Server,
    Cli.Json,
};
root.Subcommands.Add(UpCommand.Create());
root.Subcommands.Add(AdminCommands.Status());
root.Subcommands.Add(ModelsCommands.Create());
root.Subcommands.Add(AdminCommands.Create());
return await root.Parse(args).InvokeAsync();
