namespace AiMass.Tuning.Tests;

/// <summary>Every sampler respects the space; TPE beats random search; the grid covers its points.</summary>
public sealed class SamplerTests
{
    private static Condition When(string parent, params string[] choices) => new(parent, choices);

    /// <summary>A space with every kind of parameter and two levels of conditions.</summary>
    private static SearchSpace Mixed() => SearchSpace.Builder()
        .Float("lr", 1e-5, 1e-1, log: true)
        .Float("dropout", 0, 0.5, step: 0.05)
        .Int("width", 16, 1024, log: true)
        .Int("layers", 1, 8, step: 1)
        .Int("batch", 32, 256, step: 32)
        .Categorical("optimizer", ["adam", "sgd", "rmsprop"])
        .Float("momentum", 0.5, 0.99, when: When("optimizer", "sgd", "rmsprop"))
        .Categorical("nesterov", ["yes", "no"], when: When("optimizer", "sgd"))
        .Float("nesterov_gain", 0.1, 10, log: true, when: When("nesterov", "yes"))
        .Float("beta2", 0.9, 0.9999, when: When("optimizer", "adam"))
        .Build();

    public static TheoryData<string> Samplers => ["random", "grid", "tpe", "tpe-multivariate", "mcts", "hmcts"];

    private static ISampler Make(string name) => name switch
    {
        "random" => new RandomSampler(),
        "grid" => new GridSampler(3),
        "tpe" => new TpeSampler(new TpeOptions { StartupTrials = 5 }),
        "tpe-multivariate" => new TpeSampler(new TpeOptions { StartupTrials = 5, Multivariate = true }),
        "mcts" => new MctsSampler(),
        _ => new HierarchicalMctsSampler(),
    };

    [Theory]
    [MemberData(nameof(Samplers))]
    public void EverySampler_RespectsBoundsStepsLogScalesAndConditions(string sampler)
    {
        var space = Mixed();
        for (var seed = 0; seed < 3; seed++)
        {
            var study = new Study(space, Make(sampler), seed: seed);
            var random = new Random(seed);
            for (var i = 0; i < 80; i++)
            {
                var trial = study.Ask(); // Ask itself refuses a configuration that fails space.Check
                Assert.Null(space.Check(trial.Values));
                Assert.InRange(trial.Float("lr"), 1e-5, 1e-1);
                Assert.Equal(0, Math.Round(trial.Float("dropout") / 0.05, 9) % 1, 9);
                Assert.Equal(0, trial.Int("batch") % 32);
                Assert.InRange(trial.Int("width"), 16, 1024);
                var optimizer = trial.Choice("optimizer");
                Assert.Equal(optimizer is "sgd" or "rmsprop", trial.Has("momentum"));
                Assert.Equal(optimizer == "adam", trial.Has("beta2"));
                Assert.Equal(optimizer == "sgd", trial.Has("nesterov"));
                Assert.Equal(optimizer == "sgd" && trial.Choice("nesterov") == "yes", trial.Has("nesterov_gain"));
                study.Tell(trial, random.NextDouble() + (optimizer == "adam" ? 0 : 1));
            }
        }
    }

    /// <summary>A random space: 2-7 parameters of random kinds, ranges, scales and steps; some conditional on an earlier categorical.</summary>
    private static SearchSpace RandomSpace(Random random)
    {
        var builder = SearchSpace.Builder();
        var categoricals = new List<(string Name, string[] Choices)>();
        var count = random.Next(2, 8);
        for (var i = 0; i < count; i++)
        {
            var name = $"p{i}";
            Condition? when = null;
            if (categoricals.Count > 0 && random.NextDouble() < 0.4)
            {
                var (parent, choices) = categoricals[random.Next(categoricals.Count)];
                when = new Condition(parent, choices.Where(_ => random.NextDouble() < 0.5).DefaultIfEmpty(choices[0]).ToArray());
            }
            switch (random.Next(4))
            {
                case 0:
                    var low = Math.Round((random.NextDouble() * 200) - 100, 2);
                    builder.Float(name, low, low + Math.Round(random.NextDouble() * 50, 2), when: when);
                    break;
                case 1:
                    var positive = Math.Pow(10, random.Next(-6, 2));
                    builder.Float(name, positive, positive * Math.Pow(10, random.Next(1, 5)), log: true, when: when);
                    break;
                case 2:
                    var first = random.Next(-50, 50);
                    var step = random.Next(1, 5);
                    builder.Int(name, first, first + (step * random.Next(0, 40)), log: false, step: step, when: when);
                    break;
                default:
                    var choices = Enumerable.Range(0, random.Next(1, 5)).Select(c => $"c{c}").ToArray();
                    builder.Categorical(name, choices, when: when);
                    categoricals.Add((name, choices));
                    break;
            }
        }
        return builder.Build();
    }

    [Theory]
    [MemberData(nameof(Samplers))]
    public void EverySampler_RespectsRandomSpaces(string sampler)
    {
        var random = new Random(17);
        for (var round = 0; round < 25; round++)
        {
            var space = RandomSpace(random);
            var study = new Study(space, Make(sampler), seed: round);
            for (var i = 0; i < 30; i++)
            {
                var trial = study.Ask();
                Assert.Null(space.Check(trial.Values));
                foreach (var p in space.Parameters)
                {
                    Assert.Equal(space.Active(p, trial.Values), trial.Has(p.Name));
                }
                study.Tell(trial, random.NextDouble());
            }
        }
    }

    [Fact]
    public void LogScales_AreSampledLogUniformly()
    {
        var space = SearchSpace.Builder().Float("lr", 1e-6, 1, log: true).Build();
        var study = new Study(space, new RandomSampler(), seed: 3);
        var decades = new int[6];
        for (var i = 0; i < 6000; i++)
        {
            var t = study.Ask();
            decades[Math.Min(5, (int)Math.Floor(-Math.Log10(t.Float("lr"))))]++;
            study.Tell(t, 0);
        }
        Assert.All(decades, d => Assert.InRange(d, 850, 1150)); // about 1000 per decade
    }

    [Fact]
    public void TheGrid_VisitsEveryPointOnce_BeforeRepeating_AndCombinesConditionalsOnlyUnderTheirChoice()
    {
        var space = SearchSpace.Builder()
            .Categorical("kind", ["a", "b"])
            .Int("n", 1, 3, when: When("kind", "a"))
            .Float("x", 0, 1, when: When("kind", "b"))
            .Build();
        var sampler = new GridSampler(pointsPerContinuous: 4);
        Assert.Equal(3 + 4, sampler.Size(space));
        var study = new Study(space, sampler, seed: 1);
        var seen = new HashSet<string>();
        for (var i = 0; i < 7; i++)
        {
            var t = study.Ask();
            Assert.True(seen.Add(string.Join(",", t.Params.Select(p => $"{p.Key}={p.Value}"))), "a grid point came twice");
            study.Tell(t, i);
        }
        Assert.Contains("kind=b,x=0.3333333333333333", seen);
        Assert.Contains("kind=a,n=2", seen);
    }

    private static double Branin(Trial t)
    {
        var x = t.Float("x");
        var y = t.Float("y");
        const double a = 1, b = 5.1 / (4 * Math.PI * Math.PI), c = 5 / Math.PI, r = 6, s = 10, tt = 1 / (8 * Math.PI);
        return (a * Math.Pow(y - (b * x * x) + (c * x) - r, 2)) + (s * (1 - tt) * Math.Cos(x)) + s;
    }

    private const double BraninMinimum = 0.397887;

    private static double MedianBest(Func<int, ISampler> sampler, SearchSpace space, Func<Trial, double> objective, int trials, int seeds)
    {
        var best = new List<double>();
        for (var seed = 0; seed < seeds; seed++)
        {
            var study = new Study(space, sampler(seed), seed: seed);
            best.Add(study.Optimize(objective, trials)!.Value!.Value);
        }
        best.Sort();
        return best[best.Count / 2];
    }

    [Fact]
    public void Tpe_BeatsRandomSearch_OnBranin()
    {
        var space = SearchSpace.Builder().Float("x", -5, 10).Float("y", 0, 15).Build();
        var random = MedianBest(_ => new RandomSampler(), space, Branin, 60, 15) - BraninMinimum;
        var tpe = MedianBest(_ => new TpeSampler(), space, Branin, 60, 15) - BraninMinimum;
        var density = MedianBest(_ => new TpeSampler(new TpeOptions { UnitPeakKernels = false }), space, Branin, 60, 15) - BraninMinimum;
        var multivariate = MedianBest(_ => new TpeSampler(new TpeOptions { Multivariate = true }), space, Branin, 60, 15) - BraninMinimum;
        var mcts = MedianBest(_ => new MctsSampler(), space, Branin, 60, 15) - BraninMinimum;
        Assert.True(tpe < random / 2, $"median regret after 60 trials: TPE {tpe:G3}, random {random:G3}");
        Assert.True(density < random / 2, $"median regret after 60 trials: TPE with true densities {density:G3}, random {random:G3}");
        Assert.True(multivariate < random / 2, $"median regret after 60 trials: multivariate TPE {multivariate:G3}, random {random:G3}");
        Assert.True(mcts < random * 0.75, $"median regret after 60 trials: MCTS {mcts:G3}, random {random:G3}");
    }

    /// <summary>A switch selecting one of three sub-functions, each with its own parameters.</summary>
    private static SearchSpace ConditionalSpace() => SearchSpace.Builder()
        .Categorical("f", ["a", "b", "c"])
        .Float("a1", -5, 5, when: When("f", "a"))
        .Float("b1", -5, 5, when: When("f", "b"))
        .Float("b2", -5, 5, when: When("f", "b"))
        .Int("c1", 0, 100, when: When("f", "c"))
        .Build();

    [Fact]
    public void Tpe_BeatsRandomSearch_OnAConditionalSpace()
    {
        // A switch selects one of three sub-functions, each with its own parameters; only "b" reaches 0, and it is
        // also the best branch on average. (When a branch with a worse optimum looks better at first — "a" = 1 + |a1|
        // against "b" unscaled — TPE, ours and Optuna 3.1's alike, settles on it: median best about 1.0 against random
        // search's 0.77 over 15 seeds. That deceptive case is what the MCTS samplers are for.)
        var space = ConditionalSpace();
        double Objective(Trial t) => t.Choice("f") switch
        {
            "a" => 3 + Math.Abs(t.Float("a1")),
            "b" => (Math.Pow(t.Float("b1") - 1.5, 2) + Math.Pow(t.Float("b2") + 2, 2)) / 10,
            _ => 2 + (Math.Abs(t.Int("c1") - 37) / 10.0),
        };
        var random = MedianBest(_ => new RandomSampler(), space, Objective, 80, 15);
        var tpe = MedianBest(_ => new TpeSampler(), space, Objective, 80, 15);
        Assert.True(tpe < random / 2, $"median best after 80 trials: TPE {tpe:G3}, random {random:G3}");
    }

    [Fact]
    public void HierarchicalMcts_RefinesTheBestLeaf_WithStepsThatShrink()
    {
        // Once a branch has 20 complete trials, refinement moves its best trial by small Gaussian steps: late trials stay
        // within a few spreads of the best so far, much closer than the inner TPE alone puts them.
        var space = SearchSpace.Builder().Categorical("f", ["a", "b"]).Float("x", 0, 10, when: When("f", "a")).Float("y", 0, 10, when: When("f", "b")).Build();
        static double Objective(Trial t) => t.Choice("f") == "a" ? Math.Abs(t.Float("x") - 7) : 5 + t.Float("y");
        List<double> Distances(double refinement, out Study study)
        {
            var options = MctsOptions.Hierarchical with { LeafRefinement = refinement, LeafRefinementAfter = 20, LeafRefinementScale = 0.05 };
            study = new Study(space, new HierarchicalMctsSampler(options), seed: 3);
            study.Optimize(Objective, 80);
            var trials = study.Trials;
            var distances = new List<double>();
            foreach (var t in trials.Where(t => t.Values["f"] == 0))
            {
                var before = trials.Take(t.Number).Where(x => x.Values["f"] == 0).ToList();
                if (before.Count < 25)
                {
                    continue;
                }
                var best = before.MinBy(x => x.Value!.Value)!;
                var spread = 0.05 * Math.Sqrt(20.0 / before.Count) * 10;
                distances.Add(Math.Abs(t.Float("x") - best.Float("x")) / spread);
            }
            return distances;
        }
        var refined = Distances(1, out var refinedStudy);
        var plain = Distances(0, out _);
        Assert.True(refined.Count >= 10, $"only {refined.Count} late trials in branch a");
        Assert.True(refined.All(d => d < 5), $"a refined trial is {refined.Max():F1} spreads from the best");
        Assert.True(Median(refined) < Median(plain) / 2, $"median distance in spreads: refined {Median(refined):F2}, TPE alone {Median(plain):F2}");
        Assert.True(refinedStudy.Best!.Value < 0.05, $"best {refinedStudy.Best.Value}");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    [Fact]
    public void HierarchicalMcts_KeepsExploringABranchThatLooksWorseAtFirst()
    {
        // The deceptive conditional function: "a" (1 + |a1|) looks best at first, "b" reaches 0. TPE settles on "a";
        // hierarchical MCTS keeps visiting "b" by UCT and searches its two parameters with TPE on b's trials only.
        var space = ConditionalSpace();
        double Objective(Trial t) => t.Choice("f") switch
        {
            "a" => 1 + Math.Abs(t.Float("a1")),
            "b" => Math.Pow(t.Float("b1") - 1.5, 2) + Math.Pow(t.Float("b2") + 2, 2),
            _ => 2 + (Math.Abs(t.Int("c1") - 37) / 10.0),
        };
        var tpe = MedianBest(_ => new TpeSampler(), space, Objective, 100, 15);
        var hmcts = MedianBest(_ => new HierarchicalMctsSampler(), space, Objective, 100, 15);
        Assert.True(hmcts < tpe / 2, $"median best after 100 trials: hierarchical MCTS {hmcts:G3}, TPE {tpe:G3}");
    }

    [Fact]
    public void ConstantLiar_SpreadsParallelTrials()
    {
        // Eight trials asked at once after the start-up: with the running ones counted as bad, they differ.
        var space = SearchSpace.Builder().Float("x", 0, 1).Build();
        var study = new Study(space, new TpeSampler(new TpeOptions { StartupTrials = 10 }), seed: 2);
        for (var i = 0; i < 10; i++)
        {
            var t = study.Ask();
            study.Tell(t, Math.Abs(t.Float("x") - 0.3));
        }
        var parallel = Enumerable.Range(0, 8).Select(_ => study.Ask().Float("x")).ToList();
        Assert.Equal(8, parallel.Distinct().Count());
    }
}
