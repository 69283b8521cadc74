using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.RegularExpressions;

namespace AiMass.Resources;

/// <summary>Names of resources in specs and vectors.</summary>
public static partial class ResourceNames
{
    /// <summary>CPU, in cores (<c>2</c>, <c>0.5</c>) or millicores (<c>500m</c>).</summary>
    public const string Cpu = "cpu";

    /// <summary>Memory with a unit (<c>512Mi</c>, <c>4Gi</c>, <c>1G</c>).</summary>
    public const string Memory = "memory";

    /// <summary>Whole GPUs.</summary>
    public const string Gpu = "gpu";

    /// <summary>The rule a custom resource name follows (lower case, e.g. <c>fpga</c>, <c>license.matlab</c>).</summary>
    public const string CustomPattern = "^[a-z][a-z0-9._/-]{0,62}$";

    /// <summary>True when <paramref name="name"/> can name a custom resource (and is not cpu, memory or gpu).</summary>
    public static bool IsValidCustom([NotNullWhen(true)] string? name) =>
        name is not null && name is not (Cpu or Memory or Gpu) && Custom().IsMatch(name);

    [GeneratedRegex(CustomPattern, RegexOptions.CultureInvariant)]
    private static partial Regex Custom();
}

/// <summary>
/// Parsing and formatting of resource quantities as written in specs: CPU as cores or millicores, memory with
/// binary (<c>Ki Mi Gi Ti Pi</c>) or decimal (<c>k M G T P</c>) units, durations as <c>1h30m</c> or Slurm's
/// <c>[D-]HH:MM:SS</c>.
/// </summary>
public static partial class Quantity
{
    /// <summary>Parses CPU: <c>2</c>, <c>0.5</c>, <c>1.25</c> cores or <c>500m</c> millicores.</summary>
    public static bool TryParseCpu(string? text, out long millicores, [NotNullWhen(false)] out string? error)
    {
        millicores = 0;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            error = "a CPU amount is required, e.g. 2, 0.5 or 500m";
            return false;
        }
        if (text.EndsWith('m'))
        {
            if (long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out millicores))
            {
                error = null;
                return true;
            }
            error = $"'{text}' is not a CPU amount: millicores are a whole number followed by m, e.g. 500m";
            return false;
        }
        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var cores))
        {
            error = $"'{text}' is not a CPU amount: use cores (2, 0.5) or millicores (500m)";
            return false;
        }
        var millis = cores * 1000m;
        if (millis != decimal.Truncate(millis))
        {
            error = $"'{text}' is finer than a millicore; the smallest CPU amount is 0.001 (1m)";
            return false;
        }
        if (millis > long.MaxValue / 2)
        {
            error = $"'{text}' is too large a CPU amount";
            return false;
        }
        millicores = (long)millis;
        error = null;
        return true;
    }

    /// <summary>Parses a byte amount: <c>4Gi</c>, <c>512Mi</c>, <c>1.5G</c>, <c>100k</c>, <c>1048576</c>; a trailing <c>B</c> is allowed.</summary>
    public static bool TryParseBytes(string? text, out long bytes, [NotNullWhen(false)] out string? error)
    {
        bytes = 0;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            error = "a memory amount is required, e.g. 512Mi or 4Gi";
            return false;
        }
        var m = BytesPattern().Match(text);
        if (!m.Success)
        {
            error = $"'{text}' is not a memory amount: use a number with a unit, e.g. 512Mi, 4Gi, 1G (Ki Mi Gi Ti Pi are powers of 1024, k M G T P of 1000)";
            return false;
        }
        var unit = m.Groups["unit"].Value;
        decimal factor = unit switch
        {
            "" => 1m,
            "k" or "K" => 1e3m,
            "M" => 1e6m,
            "G" => 1e9m,
            "T" => 1e12m,
            "P" => 1e15m,
            "Ki" => 1024m,
            "Mi" => 1024m * 1024,
            "Gi" => 1024m * 1024 * 1024,
            "Ti" => 1024m * 1024 * 1024 * 1024,
            "Pi" => 1024m * 1024 * 1024 * 1024 * 1024,
            _ => 0m,
        };
        if (factor == 0m)
        {
            error = $"'{text}' has an unknown unit '{unit}': use Ki Mi Gi Ti Pi (powers of 1024) or k M G T P (powers of 1000)";
            return false;
        }
        var value = decimal.Parse(m.Groups["number"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture) * factor;
        if (value != decimal.Truncate(value))
        {
            error = $"'{text}' is not a whole number of bytes";
            return false;
        }
        if (value > long.MaxValue / 2)
        {
            error = $"'{text}' is too large a memory amount";
            return false;
        }
        bytes = (long)value;
        error = null;
        return true;
    }

    /// <summary>Parses a duration: <c>90s</c>, <c>45m</c>, <c>1h30m</c>, <c>2d</c>, or Slurm's <c>MM:SS</c>, <c>HH:MM:SS</c>, <c>D-HH[:MM[:SS]]</c>.</summary>
    public static bool TryParseDuration(string? text, out TimeSpan duration, [NotNullWhen(false)] out string? error)
    {
        duration = TimeSpan.Zero;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            error = "a duration is required, e.g. 30m, 1h30m or 01:30:00";
            return false;
        }
        var units = UnitDuration().Match(text);
        if (units.Success && units.Length > 0)
        {
            double seconds = 0;
            foreach (Capture part in units.Groups["part"].Captures)
            {
                var p = UnitPart().Match(part.Value);
                var n = double.Parse(p.Groups["n"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
                seconds += n * p.Groups["u"].Value switch
                {
                    "ms" => 0.001,
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    _ => 86400,
                };
            }
            duration = TimeSpan.FromSeconds(seconds);
            error = null;
            return true;
        }
        var clock = SlurmDuration().Match(text);
        if (clock.Success)
        {
            static long G(Match m, string name) =>
                m.Groups[name].Success ? long.Parse(m.Groups[name].Value, CultureInfo.InvariantCulture) : 0;
            long days = G(clock, "d"), a = G(clock, "a"), b = G(clock, "b"), c = G(clock, "c");
            long h, min, s;
            if (clock.Groups["d"].Success)
            {
                (h, min, s) = (a, b, c); // D-HH[:MM[:SS]]
            }
            else if (clock.Groups["c"].Success)
            {
                (h, min, s) = (a, b, c); // HH:MM:SS
            }
            else
            {
                (h, min, s) = (0, a, b); // MM:SS
            }
            duration = new TimeSpan((int)days, (int)h, (int)min, (int)s);
            error = null;
            return true;
        }
        error = $"'{text}' is not a duration: use 90s, 45m, 1h30m, 2d, or HH:MM:SS / D-HH:MM:SS (a bare number is ambiguous, give a unit)";
        return false;
    }

    /// <summary>Formats millicores as a spec would write them: <c>2</c>, <c>1.5</c>, <c>250m</c>.</summary>
    public static string FormatCpu(long millicores) =>
        millicores % 1000 == 0 ? (millicores / 1000).ToString(CultureInfo.InvariantCulture)
        : millicores % 100 == 0 || millicores > 1000 ? (millicores / 1000m).ToString("0.###", CultureInfo.InvariantCulture)
        : millicores.ToString(CultureInfo.InvariantCulture) + "m";

    /// <summary>Formats bytes with the largest binary unit that divides them exactly (<c>4Gi</c>, <c>1536Mi</c>), else with one decimal (<c>1.2Gi</c>).</summary>
    public static string FormatBytes(long bytes)
    {
        string[] units = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
        var abs = Math.Abs(bytes);
        for (var i = units.Length - 1; i > 0; i--)
        {
            var f = 1L << (10 * i);
            if (abs >= f)
            {
                // Exact when it divides evenly (4Gi, 1536Mi), else one decimal of the largest unit (23.5Gi).
                for (var j = i; j > 0 && abs >= 1L << (10 * j) && j > i - 1; j--)
                {
                    if (abs % (1L << (10 * j)) == 0)
                    {
                        return (bytes / (1L << (10 * j))).ToString(CultureInfo.InvariantCulture) + units[j];
                    }
                }
                if (i > 1 && abs % (1L << (10 * (i - 1))) == 0 && abs / (1L << (10 * (i - 1))) < 10_000)
                {
                    return (bytes / (1L << (10 * (i - 1)))).ToString(CultureInfo.InvariantCulture) + units[i - 1];
                }
                return ((double)bytes / f).ToString("0.0", CultureInfo.InvariantCulture) + units[i];
            }
        }
        return bytes.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Formats a duration the way <see cref="TryParseDuration"/> reads it: <c>1h30m</c>, <c>45s</c>, <c>2d</c>.</summary>
    public static string FormatDuration(TimeSpan duration)
    {
        if (duration <= TimeSpan.Zero)
        {
            return "0s";
        }
        var parts = new List<string>();
        if (duration.Days > 0)
        {
            parts.Add($"{duration.Days}d");
        }
        if (duration.Hours > 0)
        {
            parts.Add($"{duration.Hours}h");
        }
        if (duration.Minutes > 0)
        {
            parts.Add($"{duration.Minutes}m");
        }
        if (duration.Seconds > 0 || parts.Count == 0)
        {
            parts.Add(duration.Milliseconds > 0 && duration.TotalSeconds < 60
                ? duration.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s"
                : $"{duration.Seconds}s");
        }
        return string.Concat(parts);
    }

    [GeneratedRegex(@"^(?<number>[0-9]+(\.[0-9]+)?)\s*(?<unit>[A-Za-z]{0,2}?)B?$", RegexOptions.CultureInvariant)]
    private static partial Regex BytesPattern();

    [GeneratedRegex(@"^(?<part>[0-9]+(\.[0-9]+)?(ms|d|h|m|s))+$", RegexOptions.CultureInvariant)]
    private static partial Regex UnitDuration();

    [GeneratedRegex(@"^(?<n>[0-9]+(\.[0-9]+)?)(?<u>ms|d|h|m|s)$", RegexOptions.CultureInvariant)]
    private static partial Regex UnitPart();

    [GeneratedRegex(@"^(?:(?<d>[0-9]+)-(?<a>[0-9]{1,2})(?::(?<b>[0-5]?[0-9])(?::(?<c>[0-5]?[0-9]))?)?|(?<a>[0-9]+):(?<b>[0-5]?[0-9])(?::(?<c>[0-5]?[0-9]))?)$", RegexOptions.CultureInvariant)]
    private static partial Regex SlurmDuration();
}
