using System.Globalization;
using AiMass.Bench.Registry;

// Registry benchmarks (docs/benchmarks.md). Each prints a Markdown table.
//   transfer [SIZE_MIB=1024] [RUNS=3] [DIR=/var/tmp/aimass-bench]   upload/download through the CLI vs cp
//   list [VERSIONS=100000] [PAGES=1000]                             pages of 100 out of VERSIONS versions, newest to oldest
//   register [COUNT=50] [BYTES=1000000]                             registration of a 1 MB ONNX model
//   make-model PATH [BYTES]                                         write a linear ONNX model
var dir = Environment.GetEnvironmentVariable("AIMASS_BENCH_DIR") ?? "/var/tmp/aimass-bench";
int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
return args.FirstOrDefault() switch
{
    "transfer" => await Benchmarks.TransferAsync(dir, Arg(1, 1024), Arg(2, 3)),
    "list" => await Benchmarks.ListAsync(dir, Arg(1, 100_000), Arg(2, 1000)),
    "register" => await Benchmarks.RegisterAsync(dir, Arg(1, 50), Arg(2, 1_000_000)),
    "all" => await Benchmarks.TransferAsync(dir, 1024, 3) + await Benchmarks.ListAsync(dir, 100_000, 1000) + await Benchmarks.RegisterAsync(dir, 50, 1_000_000),
    "make-model" => Tools.MakeModel(args.Skip(1).ToArray()),
    _ => Tools.Usage(),
};
