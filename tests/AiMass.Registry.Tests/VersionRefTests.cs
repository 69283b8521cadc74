namespace AiMass.Registry.Tests;

public sealed class VersionRefTests
{
    [Theory]
    [InlineData("m", "m", null, null, null)]
    [InlineData("grid.load_v2@3", "grid.load_v2", "3", 3, null)]
    [InlineData("m@production", "m", "production", null, "production")]
    public void Parse_ValidReferences(string text, string model, string? selector, int? number, string? alias)
    {
        var r = VersionRef.Parse(text);

        Assert.Equal(model, r.Model);
        Assert.Equal(selector, r.Selector);
        Assert.Equal(number, r.Number);
        Assert.Equal(alias, r.Alias);
        Assert.Equal(text, r.ToString());
    }

    [Theory]
    [InlineData("", "required")]
    [InlineData("bad name@1", "not a valid model name")]
    [InlineData("m@0", "neither a version number")]
    [InlineData("m@", "neither a version number")]
    [InlineData("m@-prod", "neither a version number")]
    public void Parse_Invalid_ErrorSaysWhy(string text, string expected)
    {
        Assert.False(VersionRef.TryParse(text, out _, out var error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }
}
