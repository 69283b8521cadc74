namespace AiMass.Tuning.Tests;

/// <summary>Studies (ask/tell, directions, errors, parallel workers) and pruners (median, ASHA, Hyperband).</summary>
public sealed class StudyTests
{
    private static SearchSpace OneFloat() => SearchSpace.Builder().Float("x", 0, 1).Build();

    [Fact]
    public void AskTell_FindsTheBest_InEitherDirection()
    {
        var min = new Study(OneFloat(), new RandomSampler(), Direction.Minimize, seed: 1);
        var max = new Study(OneFloat(), new RandomSampler(), Direction.Maximize, seed: 1);
        min.Optimize(t => t.Float("x"), 50);
        max.Optimize(t => t.Float("x"), 50);
        Assert.Equal(min.Trials.Min(t => t.Value), min.Best!.Value);
        Assert.Equal(max.Trials.Max(t => t.Value), max.Best!.Value);
        Assert.All(min.Trials, t => Assert.Equal(TrialState.Complete, t.State));
    }

    [Fact]
    public void EnqueuedConfigurations_GoFirst_AndBadOnesAreRefused()
    {
        var study = new Study(OneFloat(), new RandomSampler(), seed: 1);
        study.Enqueue(new Dictionary<string, double> { ["x"] = 0.25 });
        Assert.Equal(0.25, study.Ask().Float("x"));
        var e = Assert.Throws<ArgumentException>(() => study.Enqueue(new Dictionary<string, double> { ["x"] = 2 }));
        Assert.Contains("'x' = 2 is outside its range or grid", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATrialEndsOnce_AndNaNIsAFailure()
    {
        var study = new Study(OneFloat(), new RandomSampler());
        var t = study.Ask();
        study.Tell(t, 1);
        var again = Assert.Throws<InvalidOperationException>(() => study.Tell(t, 2));
        Assert.Contains("trial 0 has already ended (complete)", again.Message, StringComparison.Ordinal);
        var nan = study.Ask();
        study.Tell(nan, double.NaN);
        Assert.Equal(TrialState.Failed, nan.State);

        var conditional = new Study(SearchSpace.Builder().Categorical("k", ["a", "b"]).Float("y", 0, 1, when: new Condition("k", ["a"])).Build(), new RandomSampler());
        conditional.Enqueue(new Dictionary<string, double> { ["k"] = 1 });
        var b = conditional.Ask();
        Assert.Equal("b", b.Choice("k"));
        var absent = Assert.Throws<InvalidOperationException>(() => b.Float("y"));
        Assert.Contains("parameter 'y' does not exist in trial 0: its condition does not hold", absent.Message, StringComparison.Ordinal);
        var kind = Assert.Throws<InvalidOperationException>(() => b.Float("k"));
        Assert.Contains("parameter 'k' is categorical, not float", kind.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParallelWorkers_GetDistinctTrials()
    {
        var study = new Study(OneFloat(), new TpeSampler(new TpeOptions { StartupTrials = 4 }), seed: 5);
        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            var t = study.Ask();
            study.Tell(t, Math.Abs(t.Float("x") - 0.7));
        });
        Assert.Equal(Enumerable.Range(0, 200), study.Trials.Select(t => t.Number));
        Assert.All(study.Trials, t => Assert.Equal(TrialState.Complete, t.State));
    }

    [Fact]
    public void BadRanges_NameTheParameter()
    {
        var e = Assert.Throws<ArgumentException>(() => SearchSpace.Builder().Float("x", 1, 0).Build());
        Assert.Contains("parameter 'x': need low <= high (got 1..0)", e.Message, StringComparison.Ordinal);
        var twice = Assert.Throws<ArgumentException>(() => SearchSpace.Builder().Float("x", 0, 1).Int("x", 0, 1).Build());
        Assert.Contains("parameter 'x' is declared twice", twice.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Conditions_MustNameACategoricalParentAndItsChoices()
    {
        var notParent = Assert.Throws<ArgumentException>(() => SearchSpace.Builder().Float("y", 0, 1, when: new Condition("k", ["a"])).Build());
        Assert.Contains("its condition names 'k', which is not a parameter", notParent.Message, StringComparison.Ordinal);
        var badChoice = Assert.Throws<ArgumentException>(() => SearchSpace.Builder().Categorical("k", ["a"]).Float("y", 0, 1, when: new Condition("k", ["z"])).Build());
        Assert.Contains("'z' is not a choice of 'k' (a)", badChoice.Message, StringComparison.Ordinal);
        var log = Assert.Throws<ArgumentException>(() => SearchSpace.Builder().Float("lr", 0, 1, log: true).Build());
        Assert.Contains("a log scale needs low > 0", log.Message, StringComparison.Ordinal);
    }

    /// <summary>A learning curve: trial i's loss at step s is final_i + 1/s (so the order of trials never changes).</summary>
    private static double Curve(double final, long step) => final + (1.0 / step);

    [Fact]
    public void Asha_PromotesTheTopThirdAtEachRung_AsTrialsArrive()
    {
        // Rungs at steps 1, 3, 9 (min resource 1, η = 3). Trials arrive with finals 5, 4, 3, 2, 1, 6, 0.5, 7, 8.
        var study = new Study(OneFloat(), new RandomSampler(), pruner: new SuccessiveHalvingPruner(minResource: 1, reductionFactor: 3), seed: 1);
        double[] finals = [5, 4, 3, 2, 1, 6, 0.5, 7, 8];
        var stoppedAt = new Dictionary<int, long>();
        foreach (var final in finals)
        {
            var t = study.Ask();
            for (long step = 1; step <= 27; step++)
            {
                if (study.Report(t, step, Curve(final, step)))
                {
                    stoppedAt[t.Number] = step;
                    break;
                }
            }
            if (t.State == TrialState.Running)
            {
                study.Tell(t, final);
            }
        }
        // At each rung a trial goes on only if it is within the best ⌊n/3⌋ (at least the best) of those there so far:
        // trial 0 is alone (goes on to the end); trial 1 beats it at rung 1 (best of 2), trial 2 too, and so on.
        // Trial 5 (final 6) is worse than the best of the six at rung 1 (⌊6/3⌋ = 2 go on): stopped at step 1.
        Assert.DoesNotContain(0, stoppedAt.Keys);
        Assert.Equal(1, stoppedAt[5]);
        Assert.Equal(1, stoppedAt[7]);
        Assert.Equal(1, stoppedAt[8]);
        Assert.DoesNotContain(6, stoppedAt.Keys); // the best (0.5) runs to the end
        Assert.All(stoppedAt, p => Assert.Contains(p.Value, new long[] { 1, 3, 9, 27 }));
        Assert.Equal(TrialState.Pruned, study.Trials[5].State);
        Assert.Equal(Curve(6, 1), study.Trials[5].Value);
    }

    [Fact]
    public void Asha_TrialsWhoseFirstReportIsPastTheFirstRungs_AreJudgedThereByThatValue()
    {
        // Rungs at 1, 3, 9, 27; trials evaluate every 10 steps (a training run evaluating every N steps with the
        // default min_resource of 1): the first report (step 10) decides rungs 1, 3 and 9 by its value.
        var study = new Study(OneFloat(), new RandomSampler(), pruner: new SuccessiveHalvingPruner(minResource: 1, reductionFactor: 3), seed: 1);
        var stopped = new List<int>();
        foreach (var final in new double[] { 1, 2, 3, 4, 0.5 })
        {
            var t = study.Ask();
            for (long step = 10; step <= 40; step += 10)
            {
                if (study.Report(t, step, final))
                {
                    stopped.Add(t.Number);
                    break;
                }
            }
            if (t.State == TrialState.Running)
            {
                study.Tell(t, final);
            }
        }
        Assert.DoesNotContain(0, stopped); // alone at its rungs
        Assert.Contains(1, stopped); // worse than trial 0 where only the best of two goes on
        Assert.DoesNotContain(4, stopped); // the best
    }

    [Fact]
    public void Asha_WithAMaximumResource_JudgesNoRungAtOrAboveIt()
    {
        // Rungs at 1 and 3 only (9 is the maximum): a trial that passed them is never cut at 9 or 27.
        var study = new Study(OneFloat(), new RandomSampler(), pruner: new SuccessiveHalvingPruner(minResource: 1, reductionFactor: 3, maxResource: 9), seed: 1);
        var stoppedAt = new Dictionary<int, long>();
        foreach (var final in new double[] { 1, 2, 3, 0.9, 0.95 })
        {
            var t = study.Ask();
            for (long step = 1; step <= 27; step++)
            {
                // Curves that cross late: 0.9 and 0.95 are worse than the best until step 9, then better.
                var value = step < 9 ? final : final - 0.5;
                if (study.Report(t, step, value))
                {
                    stoppedAt[t.Number] = step;
                    break;
                }
            }
            if (t.State == TrialState.Running)
            {
                study.Tell(t, final);
            }
        }
        Assert.All(stoppedAt.Values, step => Assert.True(step < 9, $"cut at step {step}, at or above the maximum"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SuccessiveHalvingPruner(maxResource: 0));
    }

    [Fact]
    public void Restore_RebuildsAStudy_ThatContinuesWithItsTrials()
    {
        var space = OneFloat();
        var original = new Study(space, new TpeSampler(), seed: 4);
        for (var i = 0; i < 12; i++)
        {
            var t = original.Ask();
            original.Tell(t, Math.Abs(t.Float("x") - 0.3));
        }
        var running = original.Ask();
        original.Report(running, 1, 0.5);

        var restored = new Study(space, new TpeSampler(), seed: 5);
        foreach (var t in original.Trials)
        {
            restored.Restore(t.Values, t.State, t.Value, t.Intermediate);
        }
        Assert.Equal(original.Best!.Number, restored.Best!.Number);
        Assert.Equal(0.5, restored.Trials[12].Intermediate[1]);
        restored.Tell(restored.Trials[12], 0.01); // a running trial may still be told
        Assert.Equal(12, restored.Best!.Number);
        Assert.Equal(14, restored.Ask().Number + 1);
        Assert.Throws<ArgumentException>(() => restored.Restore(new Dictionary<string, double> { ["x"] = 7 }, TrialState.Complete, 1));
        Assert.Throws<ArgumentException>(() => restored.Restore(new Dictionary<string, double> { ["x"] = 0.5 }, TrialState.Complete));
    }

    [Fact]
    public void Importance_GoesToTheParameterThatMatters_AndNotToNoise()
    {
        // y depends on a (strongly) and on the choice c; n is noise the objective ignores.
        var space = SearchSpace.Builder().Float("a", 0, 1).Float("n", 0, 1).Categorical("c", ["p", "q"]).Build();
        var study = new Study(space, new RandomSampler(), seed: 2);
        for (var i = 0; i < 200; i++)
        {
            var t = study.Ask();
            study.Tell(t, (10 * t.Float("a")) + (t.Choice("c") == "q" ? 2 : 0));
        }
        var report = StudyReport.Of(study);
        var importance = report.Importance.ToDictionary(i => i.Name, i => i.Importance);
        Assert.Equal("a", report.Importance[0].Name);
        Assert.True(importance["a"] > 0.7, $"a: {importance["a"]}");
        Assert.True(importance["c"] > importance["n"], $"c {importance["c"]} vs n {importance["n"]}");
        Assert.True(importance["n"] < 0.05, $"n: {importance["n"]}");
        Assert.Equal(1, importance.Values.Sum(), 9);
        Assert.Equal(200, report.Lines.Count);
        Assert.Equal(200, report.History.Count);
        Assert.True(report.History.Zip(report.History.Skip(1)).All(p => p.Second.Best <= p.First.Best), "best so far never gets worse");

        var directory = Path.Combine(Path.GetTempPath(), "aimass-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var files = report.Write(directory, "test");
            foreach (var name in new[] { "history.png", "history.svg", "parallel-coordinates.png", "parallel-coordinates.svg", "importance.png", "importance.svg", "report.json" })
            {
                Assert.Contains(Path.Combine(directory, name), files);
                Assert.True(new FileInfo(Path.Combine(directory, name)).Length > 500, name);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void MedianPruner_StopsATrialWorseThanTheMedianAtTheSameStep()
    {
        var study = new Study(OneFloat(), new RandomSampler(), pruner: new MedianPruner(startupTrials: 3), seed: 1);
        foreach (var final in new double[] { 1, 2, 3 })
        {
            var t = study.Ask();
            for (long step = 1; step <= 5; step++)
            {
                Assert.False(study.Report(t, step, final * step));
            }
            study.Tell(t, final * 5);
        }
        var good = study.Ask();
        Assert.False(study.Report(good, 1, 1.5)); // median at step 1 is 2
        var bad = study.Ask();
        Assert.True(study.Report(bad, 1, 2.5));
        Assert.Equal(TrialState.Pruned, bad.State);
    }

    [Fact]
    public void Hyperband_SpreadsTrialsOverBrackets_ThatCutAtDifferentRungs()
    {
        var pruner = new HyperbandPruner(minResource: 1, maxResource: 27, reductionFactor: 3);
        Assert.Equal(4, pruner.Brackets);
        Assert.Equal([0, 1, 2, 3, 0], Enumerable.Range(0, 5).Select(pruner.Bracket));
        var study = new Study(OneFloat(), new RandomSampler(), pruner: pruner, seed: 1);
        // Bracket 3's first rung is at step 27: its trials are never stopped before.
        var stopped = new List<(int Trial, long Step)>();
        for (var i = 0; i < 16; i++)
        {
            var t = study.Ask();
            for (long step = 1; step <= 27; step++)
            {
                if (study.Report(t, step, Curve(16 - i, step)))
                {
                    stopped.Add((t.Number, step));
                    break;
                }
            }
            if (t.State == TrialState.Running)
            {
                study.Tell(t, 16 - i);
            }
        }
        Assert.DoesNotContain(stopped, s => pruner.Bracket(s.Trial) == 3 && s.Step < 27);
        Assert.DoesNotContain(stopped, s => pruner.Bracket(s.Trial) == 1 && s.Step < 3);
    }
}
