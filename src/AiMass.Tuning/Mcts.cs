namespace AiMass.Tuning;

/// <summary>Settings of the Monte Carlo tree search samplers.</summary>
public sealed record MctsOptions
{
    /// <summary>
    /// The defaults of <see cref="MctsSampler"/>, tuned on Branin: little exploration, wide progressive widening, mostly
    /// local refinement.
    /// </summary>
    public static MctsOptions Flat { get; } = new() { Exploration = 0.5, WideningExponent = 0.8, LocalRefinement = 0.9 };

    /// <summary>
    /// The defaults of <see cref="HierarchicalMctsSampler"/>, tuned on the deceptive conditional benchmark: strong
    /// exploration between branches, so one that looks worse at first is still searched.
    /// </summary>
    public static MctsOptions Hierarchical { get; } = new() { Exploration = 2.0, LeafRefinement = 0.3 };

    /// <summary>UCT's exploration constant c in reward + c √(ln N / n), for rewards in [0, 1].</summary>
    public double Exploration { get; init; } = 1.4;

    /// <summary>Hierarchical MCTS: visits every branch gets before UCT judges it (enough for the inner sampler to start modelling it).</summary>
    public int BranchWarmup { get; init; } = 5;

    /// <summary>Progressive widening: a numeric node with N visits may have ⌈k N^α⌉ children; this is k.</summary>
    public double WideningConstant { get; init; } = 1.0;

    /// <summary>Progressive widening's α.</summary>
    public double WideningExponent { get; init; } = 0.5;

    /// <summary>Chance that a new numeric child refines the best value found under its node instead of a uniform draw.</summary>
    public double LocalRefinement { get; init; } = 0.6;

    /// <summary>Trials drawn at random before the tree is used.</summary>
    public int StartupTrials { get; init; } = 5;

    /// <summary>
    /// Hierarchical MCTS: chance that a branch's numeric parameters refine the branch's best trial (a Gaussian step
    /// around it in the parameters' unit space) instead of coming from the inner sampler — local refinement around the
    /// best leaf, once the branch has <see cref="LeafRefinementAfter"/> finished trials.
    /// </summary>
    public double LeafRefinement { get; init; }

    /// <summary>Hierarchical MCTS: the refinement step's spread, as a fraction of each parameter's range, at <see cref="LeafRefinementAfter"/> trials; it shrinks as 1/√n.</summary>
    public double LeafRefinementScale { get; init; } = 0.05;

    /// <summary>Hierarchical MCTS: finished trials a branch needs before its best trial is refined.</summary>
    public int LeafRefinementAfter { get; init; } = 20;
}

/// <summary>
/// Monte Carlo tree search over the decisions of the space: each active parameter is a level of the tree (in the
/// space's order, so a conditional parameter lies beneath the choice that activates it). A categorical node has one
/// child per choice; a numeric node grows children by progressive widening, new ones drawn uniformly or — local
/// refinement — near the best value found beneath it, with a spread that shrinks as the node is visited. Children are
/// chosen by UCT on rank-based rewards in [0, 1]; trials still running count as visits with no reward ("virtual loss"),
/// so parallel trials spread out. The tree is rebuilt from the study's trials at each call, so a resumed study continues
/// where it was.
/// </summary>
public sealed class MctsSampler(MctsOptions? options = null) : ISampler
{
    private readonly MctsOptions _options = options ?? MctsOptions.Flat;

    /// <summary>The settings.</summary>
    public MctsOptions Options => _options;

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> Sample(IStudyView study, Random random)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(random);
        var finished = Rewards.Of(study);
        if (finished.Count < _options.StartupTrials)
        {
            return RandomSampler.Draw(study.Space, random, new Dictionary<string, double>(StringComparer.Ordinal));
        }
        var levels = study.Space.Ordered;
        var root = Node.Build(study, finished, levels.Select(p => p.Name).ToList());
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        var node = root;
        for (var depth = 0; depth < levels.Count; depth++)
        {
            var p = levels[depth];
            if (!study.Space.Active(p, values))
            {
                node = node.Child(double.NaN); // an inactive level: one pass-through child
                continue;
            }
            var value = Choose(node, p, random);
            values[p.Name] = value;
            node = node.Child(value);
        }
        return values;
    }

    private double Choose(Node node, Parameter p, Random random)
    {
        if (p.Kind == ParameterKind.Categorical)
        {
            // Every choice is a child; an untried one first (in random order), then UCT.
            var untried = Enumerable.Range(0, p.Choices.Count).Where(c => !node.Children.ContainsKey(c)).ToList();
            return untried.Count > 0 ? untried[random.Next(untried.Count)] : node.Uct(_options.Exploration, random);
        }
        var allowed = Math.Max(1, (int)Math.Ceiling(_options.WideningConstant * Math.Pow(Math.Max(1, node.Visits), _options.WideningExponent)));
        if (node.Children.Count >= allowed || (p.Cardinality is { } n && node.Children.Count >= n))
        {
            return node.Uct(_options.Exploration, random);
        }
        // Widen: near the best value beneath this node, or anywhere.
        if (node.Children.Count > 0 && random.NextDouble() < _options.LocalRefinement)
        {
            var best = node.Children.MaxBy(c => c.Value.Best).Key;
            var spread = 0.25 / Math.Sqrt(Math.Max(1, node.Visits));
            var u = p.ToUnit(best) + (spread * TpeSampler.Normal(random));
            return p.FromUnit(Math.Clamp(u, 0, 1));
        }
        return p.FromUnit(random.NextDouble());
    }

    /// <summary>A node of the search tree: visits, summed reward and the best reward beneath it, children by value.</summary>
    internal sealed class Node
    {
        public Dictionary<double, Node> Children { get; } = [];

        public int Visits { get; private set; }

        public double Reward { get; private set; }

        public double Best { get; private set; } = double.NegativeInfinity;

        public Node Child(double value)
        {
            if (!Children.TryGetValue(value, out var child))
            {
                child = new Node();
                Children[value] = child;
            }
            return child;
        }

        public void Visit(double? reward)
        {
            Visits++;
            if (reward is { } r)
            {
                Reward += r;
                Best = Math.Max(Best, r);
            }
        }

        /// <summary>The child with the best UCT score (ties broken at random).</summary>
        public double Uct(double c, Random random)
        {
            var logN = Math.Log(Math.Max(1, Visits));
            var best = double.NegativeInfinity;
            var choice = double.NaN;
            var ties = 0;
            foreach (var (value, child) in Children)
            {
                // Tuning wants the best configuration, not a good average: a child is judged by a mix of the best and the
                // mean reward found beneath it (an extreme-value bandit), plus UCT's exploration bonus.
                var exploit = child.Visits == 0 || double.IsNegativeInfinity(child.Best) ? 0 : (0.5 * child.Best) + (0.5 * child.Reward / child.Visits);
                var score = child.Visits == 0 ? double.PositiveInfinity : exploit + (c * Math.Sqrt(logN / child.Visits));
                if (score > best)
                {
                    (best, choice, ties) = (score, value, 1);
                }
                else if (score == best && random.Next(++ties) == 0)
                {
                    choice = value;
                }
            }
            return choice;
        }

        /// <summary>
        /// Builds the tree of the study's trials: each trial is a path through the <paramref name="levels"/> (an inactive
        /// parameter is the NaN child); finished trials bring their reward, running ones a visit without (virtual loss).
        /// </summary>
        public static Node Build(IStudyView study, IReadOnlyDictionary<int, double> rewards, IReadOnlyList<string> levels)
        {
            var root = new Node();
            foreach (var trial in study.Trials)
            {
                double? reward;
                if (rewards.TryGetValue(trial.Number, out var r))
                {
                    reward = r;
                }
                else if (trial.State == TrialState.Running)
                {
                    reward = null;
                }
                else
                {
                    continue; // failed
                }
                var node = root;
                node.Visit(reward);
                foreach (var level in levels)
                {
                    node = node.Child(trial.Values.TryGetValue(level, out var v) ? v : double.NaN);
                    node.Visit(reward);
                }
            }
            return root;
        }
    }
}

/// <summary>
/// Hierarchical MCTS for conditional spaces: the tree's levels are the categorical decisions (which optimizer, which
/// architecture family, and the choices beneath them), chosen by UCT on rank-based rewards — so a branch whose first
/// trials look worse is still explored in proportion to its promise; beneath a decided branch, its numeric parameters
/// are drawn by an inner sampler (TPE by default) from the trials that took the same branch only.
/// </summary>
public sealed class HierarchicalMctsSampler : ISampler
{
    private readonly MctsOptions _options;
    private readonly ISampler _inner;

    /// <summary>Creates the sampler; <paramref name="inner"/> searches the numeric parameters of a branch.</summary>
    public HierarchicalMctsSampler(MctsOptions? options = null, ISampler? inner = null)
    {
        _options = options ?? MctsOptions.Hierarchical;
        _inner = inner ?? new TpeSampler(new TpeOptions { StartupTrials = 5 });
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> Sample(IStudyView study, Random random)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(random);
        var space = study.Space;
        var finished = Rewards.Of(study);
        var structure = space.Ordered.Where(p => p.Kind == ParameterKind.Categorical).ToList();
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        if (structure.Count == 0)
        {
            return Refine(study, random, values) ?? _inner.Sample(study, random);
        }
        if (finished.Count < _options.StartupTrials)
        {
            return RandomSampler.Draw(space, random, values);
        }
        // 1. The branch: UCT down the categorical levels.
        var root = MctsSampler.Node.Build(study, finished, structure.Select(p => p.Name).ToList());
        var node = root;
        foreach (var p in structure)
        {
            if (!space.Active(p, values))
            {
                node = node.Child(double.NaN);
                continue;
            }
            var cold = Enumerable.Range(0, p.Choices.Count).Where(c => !node.Children.TryGetValue(c, out var child) || child.Visits < _options.BranchWarmup).ToList();
            var choice = cold.Count > 0 ? cold[random.Next(cold.Count)] : node.Uct(_options.Exploration, random);
            values[p.Name] = choice;
            node = node.Child(choice);
        }
        // 2. The branch's own parameters: the inner sampler on the trials that took this branch.
        var branch = new BranchView(study, structure.Where(p => values.ContainsKey(p.Name)).ToDictionary(p => p.Name, p => values[p.Name]));
        if (Refine(branch, random, values) is { } refined)
        {
            return refined;
        }
        if (_inner is IConditionalSampler conditional)
        {
            return conditional.SampleGiven(branch, random, values);
        }
        var inner = _inner.Sample(branch, random);
        foreach (var p in space.Ordered)
        {
            if (p.Kind != ParameterKind.Categorical && space.Active(p, values) && inner.TryGetValue(p.Name, out var v))
            {
                values[p.Name] = v;
            }
        }
        // Anything the inner sampler did not give (it drew another branch): fill it at random.
        return RandomSampler.Draw(space, random, values);
    }

    /// <summary>
    /// Local refinement around the best leaf: with probability <see cref="MctsOptions.LeafRefinement"/>, the branch's
    /// best complete trial with every active numeric parameter moved by a Gaussian step (in its unit space; spread
    /// <see cref="MctsOptions.LeafRefinementScale"/> × √(after / n)); null when not this time.
    /// </summary>
    private Dictionary<string, double>? Refine(IStudyView branch, Random random, Dictionary<string, double> decided)
    {
        if (_options.LeafRefinement <= 0 || random.NextDouble() >= _options.LeafRefinement)
        {
            return null;
        }
        var complete = branch.Trials.Where(t => t.State == TrialState.Complete).ToList();
        if (complete.Count < Math.Max(1, _options.LeafRefinementAfter))
        {
            return null;
        }
        var best = complete.MinBy(t => branch.Loss(t.Value!.Value))!;
        var spread = _options.LeafRefinementScale * Math.Sqrt(_options.LeafRefinementAfter / (double)complete.Count);
        var values = new Dictionary<string, double>(decided, StringComparer.Ordinal);
        // The categorical decisions are the branch's (decided); what is left active is numeric.
        foreach (var p in branch.Space.Ordered.Where(p => !values.ContainsKey(p.Name) && branch.Space.Active(p, values)))
        {
            if (!best.Values.TryGetValue(p.Name, out var at))
            {
                return null; // the best trial lacks a parameter this branch has: leave it to the inner sampler
            }
            values[p.Name] = p.Snap(p.FromUnit(Math.Clamp(p.ToUnit(at) + (spread * TpeSampler.Normal(random)), 0, 1)));
        }
        return values;
    }

    /// <summary>The study as seen from one branch: only the trials whose categorical decisions match it.</summary>
    private sealed class BranchView(IStudyView study, IReadOnlyDictionary<string, double> decisions) : IStudyView
    {
        public SearchSpace Space => study.Space;

        public Direction Direction => study.Direction;

        public IReadOnlyList<Trial> Trials { get; } = study.Trials
            .Where(t => decisions.All(d => t.Values.TryGetValue(d.Key, out var v) && v == d.Value)).ToList();

        public double Loss(double value) => study.Loss(value);
    }
}

/// <summary>Rank-based rewards: a finished trial's reward is the fraction of finished trials it beats (1: the best).</summary>
internal static class Rewards
{
    public static Dictionary<int, double> Of(IStudyView study)
    {
        var finished = study.Trials.Where(t => t.State is TrialState.Complete or TrialState.Pruned && t.Value is not null)
            .Select(t => (t.Number, Loss: study.Loss(t.Value!.Value)))
            .OrderBy(t => t.Loss).ThenBy(t => t.Number).ToList();
        var rewards = new Dictionary<int, double>(finished.Count);
        for (var i = 0; i < finished.Count; i++)
        {
            rewards[finished[i].Number] = finished.Count == 1 ? 1 : 1 - (i / (double)(finished.Count - 1));
        }
        return rewards;
    }
}

/// <summary>A sampler that can complete a configuration some of whose parameters are already decided.</summary>
internal interface IConditionalSampler
{
    /// <summary>The configuration with <paramref name="given"/> kept and every other active parameter drawn.</summary>
    IReadOnlyDictionary<string, double> SampleGiven(IStudyView study, Random random, IReadOnlyDictionary<string, double> given);
}
