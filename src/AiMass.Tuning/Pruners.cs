namespace AiMass.Tuning;

/// <summary>
/// Median stopping: a trial stops when its best intermediate value so far is worse than the median of what the
/// finished trials reported at the same step (after <see cref="StartupTrials"/> finished trials and
/// <see cref="WarmupSteps"/> steps).
/// </summary>
public sealed class MedianPruner(int startupTrials = 5, long warmupSteps = 0) : IPruner
{
    /// <summary>Finished trials needed before anything is pruned.</summary>
    public int StartupTrials { get; } = startupTrials;

    /// <summary>Steps a trial runs before it can be pruned.</summary>
    public long WarmupSteps { get; } = warmupSteps;

    /// <inheritdoc />
    public bool ShouldPrune(IStudyView study, Trial trial, long reportedStep)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(trial);
        var step = reportedStep;
        if (step < WarmupSteps)
        {
            return false;
        }
        var others = study.Trials
            .Where(t => t.Number != trial.Number && t.State is TrialState.Complete or TrialState.Pruned && t.Intermediate.ContainsKey(step))
            .Select(t => study.Loss(t.Intermediate[step]))
            .Order().ToList();
        if (study.Trials.Count(t => t.State is TrialState.Complete or TrialState.Pruned) < StartupTrials || others.Count == 0)
        {
            return false;
        }
        var median = others.Count % 2 == 1 ? others[others.Count / 2] : (others[(others.Count / 2) - 1] + others[others.Count / 2]) / 2;
        var best = trial.Intermediate.Where(p => p.Key <= step).Min(p => study.Loss(p.Value));
        return best > median;
    }
}

/// <summary>
/// Asynchronous successive halving (ASHA, Li et al. 2020): rung k is at step <c>min_resource × η^(k + s)</c>; a trial
/// reaching a rung continues only if its value there is in the top 1/η of the values every trial has reported at that
/// rung so far (with fewer than η of them, only the best continues). Nothing waits for a rung to fill, so workers never
/// idle. With a maximum resource (Ray Tune's <c>max_t</c>), rungs stop below it: a trial that got that far runs to its end.
/// </summary>
public sealed class SuccessiveHalvingPruner : IPruner
{
    private readonly Func<Trial, bool> _member;

    /// <summary>Creates the pruner.</summary>
    public SuccessiveHalvingPruner(long minResource = 1, int reductionFactor = 3, int minEarlyStoppingRate = 0, long? maxResource = null)
        : this(minResource, reductionFactor, minEarlyStoppingRate, _ => true)
    {
        if (maxResource is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(maxResource), maxResource, "must be at least 1");
        }
        MaxResource = maxResource;
    }

    internal SuccessiveHalvingPruner(long minResource, int reductionFactor, int minEarlyStoppingRate, Func<Trial, bool> member)
    {
        if (minResource < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(minResource), minResource, "must be at least 1");
        }
        if (reductionFactor < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(reductionFactor), reductionFactor, "must be at least 2");
        }
        MinResource = minResource;
        ReductionFactor = reductionFactor;
        MinEarlyStoppingRate = minEarlyStoppingRate;
        _member = member;
    }

    /// <summary>Steps before the first rung.</summary>
    public long MinResource { get; }

    /// <summary>η: one in η trials goes on at each rung.</summary>
    public int ReductionFactor { get; }

    /// <summary>s: rungs begin at <c>min_resource × η^s</c>.</summary>
    public int MinEarlyStoppingRate { get; }

    /// <summary>Steps from which no rung judges a trial any more (none: rungs go on forever, as Optuna's).</summary>
    public long? MaxResource { get; }

    /// <summary>The step of rung <paramref name="rung"/>.</summary>
    public long RungStep(int rung) => MinResource * (long)Math.Pow(ReductionFactor, rung + MinEarlyStoppingRate);

    /// <inheritdoc />
    public bool ShouldPrune(IStudyView study, Trial trial, long reportedStep)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(trial);
        var step = reportedStep;
        // Only a step that is exactly a rung decides; a trial whose steps skip a rung is judged at the rung by its latest
        // value at or before it (or, when it reported nothing that early, by its first value after it).
        for (var rung = 0; RungStep(rung) <= step && (MaxResource is not { } max || RungStep(rung) < max); rung++)
        {
            var at = RungStep(rung);
            if (at != step && !(at < step && !trial.Intermediate.Keys.Any(k => k >= at && k < step)))
            {
                continue;
            }
            var mine = study.Loss(ValueAt(trial, at)!.Value);
            var competing = study.Trials
                .Where(t => _member(t) && (t.Number == trial.Number || t.Intermediate.Count > 0 && t.Intermediate.Keys.Max() >= at))
                .Select(t => t.Number == trial.Number ? mine : study.Loss(ValueAt(t, at)!.Value))
                .Order().ToList();
            var promotable = Math.Max(0, (competing.Count / ReductionFactor) - 1);
            if (mine > competing[promotable])
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A trial's value at a rung's step: its latest at or before it, else its first after it (null: none).</summary>
    private static double? ValueAt(Trial trial, long step)
    {
        double? value = null;
        foreach (var (s, v) in trial.Intermediate)
        {
            if (s > step)
            {
                return value ?? v;
            }
            value = v;
        }
        return value;
    }
}

/// <summary>
/// Hyperband (Li et al. 2018) over ASHA: trials are spread by number over brackets that start halving at different
/// rungs (s = 0 .. n-1), so some trials get little budget before the first cut and others much; each bracket compares
/// its own trials only.
/// </summary>
public sealed class HyperbandPruner : IPruner
{
    private readonly SuccessiveHalvingPruner[] _brackets;

    /// <summary>Creates the pruner for trials that run up to <paramref name="maxResource"/> steps.</summary>
    public HyperbandPruner(long minResource = 1, long maxResource = 81, int reductionFactor = 3)
    {
        if (maxResource < minResource)
        {
            throw new ArgumentOutOfRangeException(nameof(maxResource), maxResource, "must be at least min_resource");
        }
        var count = (int)Math.Floor(Math.Log(maxResource / (double)minResource, reductionFactor) + 1e-9) + 1;
        _brackets = new SuccessiveHalvingPruner[count];
        for (var s = 0; s < count; s++)
        {
            var bracket = s;
            _brackets[s] = new SuccessiveHalvingPruner(minResource, reductionFactor, s, t => Bracket(t.Number) == bracket);
        }
    }

    /// <summary>Number of brackets.</summary>
    public int Brackets => _brackets.Length;

    /// <summary>The bracket of a trial.</summary>
    public int Bracket(int trialNumber) => trialNumber % _brackets.Length;

    /// <inheritdoc />
    public bool ShouldPrune(IStudyView study, Trial trial, long reportedStep)
    {
        ArgumentNullException.ThrowIfNull(trial);
        return _brackets[Bracket(trial.Number)].ShouldPrune(study, trial, reportedStep);
    }
}
