using AiMass.Bench.Registry;

return args.FirstOrDefault() switch
{
    "make-model" => Tools.MakeModel(args.Skip(1).ToArray()),
    _ => Tools.Usage(),
};
