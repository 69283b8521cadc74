using System.Globalization;

namespace AiMass.Tuning;

/// <summary>Whether a study looks for the smallest or the largest value.</summary>
public enum Direction
{
    /// <summary>Smaller is better (a loss, an error).</summary>
    Minimize,

    /// <summary>Larger is better (an accuracy).</summary>
    Maximize,
}

/// <summary>Where a trial stands.</summary>
public enum TrialState
{
    /// <summary>Asked, not told yet.</summary>
    Running,

    /// <summary>Told its value.</summary>
    Complete,

    /// <summary>Stopped early by the pruner; its value is its last intermediate value.</summary>
    Pruned,

    /// <summary>Its objective failed; it has no value.</summary>
    Failed,
}

/// <summary>
/// One evaluation of the objective: the parameters the sampler chose (only those whose conditions hold), and what the
/// objective reported.
/// </summary>
public sealed class Trial
{
    private readonly SortedDictionary<long, double> _intermediate = [];

    internal Trial(int number, SearchSpace space, IReadOnlyDictionary<string, double> values)
    {
        Number = number;
        Space = space;
        Values = values;
    }

    /// <summary>Its number in the study, from 0.</summary>
    public int Number { get; }

    /// <summary>The space it was drawn from.</summary>
    public SearchSpace Space { get; }

    /// <summary>Its parameters as numbers (a categorical's is the index of its choice).</summary>
    public IReadOnlyDictionary<string, double> Values { get; }

    /// <summary>Its parameters as people and commands see them.</summary>
    public IReadOnlyDictionary<string, string> Params => Space.Format(Values);

    /// <summary>Where it stands.</summary>
    public TrialState State { get; internal set; }

    /// <summary>Its value (complete, or pruned with an intermediate value).</summary>
    public double? Value { get; internal set; }

    /// <summary>Values reported along the way, by step.</summary>
    public IReadOnlyDictionary<long, double> Intermediate => _intermediate;

    internal void SetIntermediate(long step, double value) => _intermediate[step] = value;

    /// <summary>Whether the parameter exists in this trial (its condition holds).</summary>
    public bool Has(string name) => Values.ContainsKey(name);

    /// <summary>A float parameter.</summary>
    public double Float(string name) => Get(name, ParameterKind.Float);

    /// <summary>An int parameter.</summary>
    public long Int(string name) => (long)Get(name, ParameterKind.Int);

    /// <summary>A categorical parameter's choice.</summary>
    public string Choice(string name) => Space[name].Choices[(int)Get(name, ParameterKind.Categorical)];

    private double Get(string name, ParameterKind kind)
    {
        var p = Space[name];
        if (p.Kind != kind)
        {
            throw new InvalidOperationException($"parameter '{name}' is {p.Kind.ToString().ToLowerInvariant()}, not {kind.ToString().ToLowerInvariant()}");
        }
        return Values.TryGetValue(name, out var v) ? v : throw new InvalidOperationException($"parameter '{name}' does not exist in trial {Number}: its condition does not hold");
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"trial {Number} ({State.ToString().ToLowerInvariant()}{(Value is { } v ? ", " + v.ToString("G6", CultureInfo.InvariantCulture) : "")}): "
        + string.Join(", ", Params.Select(p => $"{p.Key}={p.Value}"));
}

/// <summary>What samplers and pruners see of a study: its trials, with losses oriented so that smaller is better.</summary>
public interface IStudyView
{
    /// <summary>The space.</summary>
    SearchSpace Space { get; }

    /// <summary>The direction.</summary>
    Direction Direction { get; }

    /// <summary>Every trial so far, by number.</summary>
    IReadOnlyList<Trial> Trials { get; }

    /// <summary>A value as a loss (smaller is better): the value when minimising, its negation when maximising.</summary>
    double Loss(double value);
}

/// <summary>Chooses the parameters of the next trial.</summary>
public interface ISampler
{
    /// <summary>The next configuration (active parameters only), given the study so far.</summary>
    IReadOnlyDictionary<string, double> Sample(IStudyView study, Random random);
}

/// <summary>Decides whether a running trial should stop early.</summary>
public interface IPruner
{
    /// <summary>Whether <paramref name="trial"/>, having reported at <paramref name="reportedStep"/>, should stop.</summary>
    bool ShouldPrune(IStudyView study, Trial trial, long reportedStep);
}

/// <summary>
/// An optimisation: ask for a trial, evaluate the objective with its parameters, tell the value (or report
/// intermediate values and stop when told to). Thread-safe: parallel workers may ask and tell at once; the sampler
/// sees the trials still running, so parallel trials spread out.
/// </summary>
public sealed class Study : IStudyView
{
    private readonly object _gate = new();
    private readonly List<Trial> _trials = [];
    private readonly Queue<IReadOnlyDictionary<string, double>> _enqueued = new();
    private readonly Random _random;

    /// <summary>Creates a study.</summary>
    public Study(SearchSpace space, ISampler sampler, Direction direction = Direction.Minimize, IPruner? pruner = null, int seed = 0)
    {
        Space = space ?? throw new ArgumentNullException(nameof(space));
        Sampler = sampler ?? throw new ArgumentNullException(nameof(sampler));
        Direction = direction;
        Pruner = pruner;
        _random = new Random(seed);
    }

    /// <inheritdoc />
    public SearchSpace Space { get; }

    /// <summary>The sampler.</summary>
    public ISampler Sampler { get; }

    /// <summary>The pruner, if any.</summary>
    public IPruner? Pruner { get; }

    /// <inheritdoc />
    public Direction Direction { get; }

    /// <inheritdoc />
    public IReadOnlyList<Trial> Trials
    {
        get
        {
            lock (_gate)
            {
                return _trials.ToArray();
            }
        }
    }

    /// <summary>The best complete trial, or null before the first.</summary>
    public Trial? Best
    {
        get
        {
            lock (_gate)
            {
                return _trials.Where(t => t.State == TrialState.Complete).OrderBy(t => Loss(t.Value!.Value)).ThenBy(t => t.Number).FirstOrDefault();
            }
        }
    }

    /// <inheritdoc />
    public double Loss(double value) => Direction == Direction.Minimize ? value : -value;

    /// <summary>Queues a configuration to be asked before the sampler is (a known good one, a default).</summary>
    public void Enqueue(IReadOnlyDictionary<string, double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (Space.Check(values) is { } problem)
        {
            throw new ArgumentException($"the configuration does not fit the space: {problem}");
        }
        lock (_gate)
        {
            _enqueued.Enqueue(values);
        }
    }

    /// <summary>
    /// Adds a trial from a stored study (numbered next, as it was), in the state it had: a study restored this way
    /// continues where it stopped — its samplers rebuild from these trials, and a running one may still be told.
    /// </summary>
    public Trial Restore(IReadOnlyDictionary<string, double> values, TrialState state, double? value = null, IEnumerable<KeyValuePair<long, double>>? intermediate = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (Space.Check(values) is { } problem)
        {
            throw new ArgumentException($"the stored configuration does not fit the space: {problem}", nameof(values));
        }
        if ((state == TrialState.Complete && value is null) || (value is { } v && !double.IsFinite(v)))
        {
            throw new ArgumentException("a complete trial needs a finite value", nameof(value));
        }
        lock (_gate)
        {
            var trial = new Trial(_trials.Count, Space, new Dictionary<string, double>(values, StringComparer.Ordinal)) { State = state, Value = value };
            foreach (var (step, x) in intermediate ?? [])
            {
                trial.SetIntermediate(step, x);
            }
            _trials.Add(trial);
            return trial;
        }
    }

    /// <summary>
    /// Ends a running trial as pruned from outside (its runner stopped it), with its last intermediate value as its
    /// value, like a trial the pruner stopped.
    /// </summary>
    public void Prune(Trial trial)
    {
        ArgumentNullException.ThrowIfNull(trial);
        lock (_gate)
        {
            RequireRunning(trial);
            trial.State = TrialState.Pruned;
            trial.Value = trial.Intermediate.Count > 0 ? trial.Intermediate.Last().Value : null;
        }
    }

    /// <summary>Starts a trial with the sampler's (or an enqueued) configuration.</summary>
    public Trial Ask()
    {
        lock (_gate)
        {
            var values = _enqueued.Count > 0 ? _enqueued.Dequeue() : Sampler.Sample(this, _random);
            if (Space.Check(values) is { } problem)
            {
                throw new InvalidOperationException($"the sampler {Sampler.GetType().Name} returned a configuration outside the space: {problem}");
            }
            var trial = new Trial(_trials.Count, Space, new Dictionary<string, double>(values, StringComparer.Ordinal));
            _trials.Add(trial);
            return trial;
        }
    }

    /// <summary>Ends a trial with its value.</summary>
    public void Tell(Trial trial, double value)
    {
        ArgumentNullException.ThrowIfNull(trial);
        if (!double.IsFinite(value))
        {
            Fail(trial);
            return;
        }
        lock (_gate)
        {
            RequireRunning(trial);
            trial.Value = value;
            trial.State = TrialState.Complete;
        }
    }

    /// <summary>Ends a trial whose objective failed.</summary>
    public void Fail(Trial trial)
    {
        ArgumentNullException.ThrowIfNull(trial);
        lock (_gate)
        {
            RequireRunning(trial);
            trial.State = TrialState.Failed;
        }
    }

    /// <summary>
    /// Records an intermediate value at a step; true means the pruner wants the trial to stop — the trial is then
    /// ended as pruned, with this value.
    /// </summary>
    public bool Report(Trial trial, long step, double value)
    {
        ArgumentNullException.ThrowIfNull(trial);
        lock (_gate)
        {
            RequireRunning(trial);
            if (!double.IsFinite(value))
            {
                trial.State = TrialState.Pruned;
                return true;
            }
            trial.SetIntermediate(step, value);
            if (Pruner is null || !Pruner.ShouldPrune(this, trial, step))
            {
                return false;
            }
            trial.State = TrialState.Pruned;
            trial.Value = value;
            return true;
        }
    }

    private void RequireRunning(Trial trial)
    {
        if (trial.Number >= _trials.Count || !ReferenceEquals(_trials[trial.Number], trial))
        {
            throw new ArgumentException($"trial {trial.Number} is not a trial of this study");
        }
        if (trial.State != TrialState.Running)
        {
            throw new InvalidOperationException($"trial {trial.Number} has already ended ({trial.State.ToString().ToLowerInvariant()})");
        }
    }

    /// <summary>Runs <paramref name="trials"/> trials of an objective here, one after the other (the objective may report and check pruning through the study).</summary>
    public Trial? Optimize(Func<Trial, double> objective, int trials)
    {
        ArgumentNullException.ThrowIfNull(objective);
        for (var i = 0; i < trials; i++)
        {
            var trial = Ask();
            double value;
            try
            {
                value = objective(trial);
            }
            catch (TrialPrunedException)
            {
                continue;
            }
            Tell(trial, value);
        }
        return Best;
    }
}

/// <summary>Thrown by an objective run through <see cref="Study.Optimize"/> when <see cref="Study.Report"/> said to stop.</summary>
public sealed class TrialPrunedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TrialPrunedException() : base("the trial was pruned")
    {
    }

    /// <summary>Creates the exception.</summary>
    public TrialPrunedException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TrialPrunedException(string message, Exception inner) : base(message, inner)
    {
    }
}
