using AiMass.Tuning;

namespace AiMass.Specs.Tests;

/// <summary>Search spaces in YAML: every kind of parameter, conditions, mistakes named with their line, and the round trip.</summary>
public sealed class SearchSpaceReaderTests
{
    private const string Space = """
        lr: {type: float, low: 1e-5, high: 0.1, log: true}
        width: {type: int, low: 32, high: 512, step: 32}
        depth: {type: int, low: 1, high: 6}
        optimizer: [adam, sgd, rmsprop]
        momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: [sgd, rmsprop]}}
        nesterov: {type: categorical, choices: ["yes", "no"], when: {optimizer: sgd}}
        dropout: {type: float, low: 0, high: 0.5, step: 0.1}
        """;

    [Fact]
    public void EveryKindOfParameter_AndConditions_AreRead()
    {
        var space = SearchSpaceReader.Parse(Space);
        Assert.Equal(["lr", "width", "depth", "optimizer", "momentum", "nesterov", "dropout"], space.Parameters.Select(p => p.Name));
        Assert.Equal((ParameterKind.Float, 1e-5, 0.1, true), (space["lr"].Kind, space["lr"].Low, space["lr"].High, space["lr"].Log));
        Assert.Equal((ParameterKind.Int, 32.0), (space["width"].Kind, space["width"].Step!.Value));
        Assert.Equal(1, space["depth"].Step);
        Assert.Equal(["adam", "sgd", "rmsprop"], space["optimizer"].Choices);
        Assert.Equal("optimizer", space["momentum"].When!.Parent);
        Assert.Equal(["sgd", "rmsprop"], space["momentum"].When!.Choices);
        Assert.Equal(["sgd"], space["nesterov"].When!.Choices);
        Assert.Equal(0.1, space["dropout"].Step);

        var again = SearchSpaceReader.Parse(SearchSpaceReader.Write(space));
        Assert.Equal(space.Parameters.Select(Describe), again.Parameters.Select(Describe));
    }

    private static string Describe(Parameter p) =>
        $"{p.Name} {p.Kind} {p.Low} {p.High} {p.Log} {p.Step} [{string.Join(",", p.Choices)}] {p.When?.Parent}={string.Join(",", p.When?.Choices ?? [])}";

    [Fact]
    public void Mistakes_AreNamedWithTheirLine()
    {
        var e = Assert.Throws<SpecException>(() => SearchSpaceReader.Parse("""
            lr: {type: float, low: 0.1}
            width: {type: integer, low: 1, high: 2}
            opt: {type: categorical}
            m: {type: float, low: 0, high: 1, when: {opt: [adam], other: x}}
            x: {type: float, low: 0, high: 1, lgo: true}
            """));
        var messages = e.Errors.Select(x => x.ToString()).ToList();
        Assert.Contains(messages, m => m.Contains("line 1", StringComparison.Ordinal) && m.Contains("lr.high: is required for a numeric parameter", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("line 2", StringComparison.Ordinal) && m.Contains("width.type: 'integer' is not a parameter type: float, int or categorical", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("opt.choices: a categorical parameter needs a list of choices", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("m.when: names one categorical parent", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("x.lgo: unknown field; did you mean 'log'?", StringComparison.Ordinal));

        var parent = Assert.Throws<SpecException>(() => SearchSpaceReader.Parse("m: {type: float, low: 0, high: 1, when: {opt: adam}}\n"));
        Assert.Contains("m: parameter 'm': its condition names 'opt', which is not a parameter", parent.Message, StringComparison.Ordinal);
        var range = Assert.Throws<SpecException>(() => SearchSpaceReader.Parse("lr: {type: float, low: 0, high: 1, log: true}\n"));
        Assert.Contains("parameter 'lr': a log scale needs low > 0", range.Message, StringComparison.Ordinal);
    }
}
