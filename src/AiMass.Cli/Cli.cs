using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using AiMass.Client;
using AiMass.Registry;
using Spectre.Console;

namespace AiMass.Cli;

/// <summary>Exit codes: 0 success, 1 a failure the user caused, 2 an internal error.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int UserError = 1;
    public const int InternalError = 2;

    /// <summary>Stopped by SIGINT or SIGTERM after saving its work (as a shell reports a process that SIGINT ended).</summary>
    public const int Interrupted = 130;
}

/// <summary>A command that stopped on a signal after saving its work; its message is already printed. Exit code 130.</summary>
internal sealed class InterruptedRun : Exception
{
    public InterruptedRun() : base("interrupted")
    {
    }

    public InterruptedRun(string message) : base(message)
    {
    }

    public InterruptedRun(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>A failure the user can fix; its message says how. Exit code 1.</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>Options every command shares, and the output helpers.</summary>
internal static class Cli
{
    public const string DefaultServer = "http://127.0.0.1:8470";

    public static readonly Option<string> Server = new("--server")
    {
        Description = "Control plane URL (env AIMASS_SERVER; default " + DefaultServer + ")",
        Recursive = true,
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("AIMASS_SERVER") is { Length: > 0 } env ? env : DefaultServer,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print JSON for scripts instead of tables",
        Recursive = true,
    };

    private static readonly JsonSerializerOptions Indented = new(AiMassJson.Options) { WriteIndented = true };

    public static AiMassClient CreateClient(ParseResult parse)
    {
        var text = parse.GetValue(Server)!;
        if (!Uri.TryCreate(text.EndsWith('/') ? text : text + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new CliException($"--server '{text}' is not an http(s) URL, e.g. {DefaultServer}");
        }
        return new AiMassClient(uri, Environment.UserName);
    }

    public static bool WantsJson(ParseResult parse) => parse.GetValue(Json);

    public static void PrintJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Indented));

    /// <summary>Prints <paramref name="value"/> as JSON with --json, else the one-line message for people.</summary>
    public static void Print<T>(ParseResult parse, T value, string message)
    {
        if (WantsJson(parse))
        {
            PrintJson(value);
        }
        else
        {
            Console.Out.WriteLine(message);
        }
    }

    /// <summary>A console for progress bars on stderr, or null when stderr is not a terminal.</summary>
    public static IAnsiConsole? ProgressConsole(ParseResult parse) =>
        WantsJson(parse) || Console.IsErrorRedirected
            ? null
            : AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    /// <summary>Runs a command body and maps failures to a message and an exit code.</summary>
    public static async Task<int> RunAsync(ParseResult parse, Func<Task> body)
    {
        try
        {
            await body();
            return ExitCodes.Ok;
        }
        catch (CliException ex)
        {
            return Fail(ex.Message, ExitCodes.UserError);
        }
        catch (SilentFailure)
        {
            return ExitCodes.UserError;
        }
        catch (InterruptedRun)
        {
            return ExitCodes.Interrupted;
        }
        catch (AiMassApiException ex)
        {
            var field = ex.Field is null || ex.Message.Contains(ex.Field + ":", StringComparison.Ordinal) ? "" : $" [{ex.Field}]";
            return Fail($"{ex.Message}{field} ({(int)ex.Status} {ex.Code})", (int)ex.Status is >= 400 and < 500 ? ExitCodes.UserError : ExitCodes.InternalError);
        }
        catch (HttpRequestException ex) when (ex.InnerException is SocketException || ex.HttpRequestError == HttpRequestError.ConnectionError)
        {
            return Fail($"cannot reach the control plane at {parse.GetValue(Server)}: {ex.Message}. Start it with './aimass up' or pass --server URL.", ExitCodes.UserError);
        }
        catch (AiMassException ex)
        {
            return Fail(ex.Message, ex.Status is >= 400 and < 500 ? ExitCodes.UserError : ExitCodes.InternalError);
        }
        catch (Specs.SpecException ex)
        {
            return Fail(ex.Message, ExitCodes.UserError);
        }
        catch (Training.TrainingException ex)
        {
            return Fail(ex.Message, ExitCodes.UserError);
        }
        catch (OperationCanceledException)
        {
            return Fail("cancelled", ExitCodes.UserError);
        }
        catch (IOException ex)
        {
            return Fail(ex.Message, ExitCodes.UserError);
        }
        catch (UnauthorizedAccessException ex)
        {
            return Fail(ex.Message, ExitCodes.UserError);
        }
#pragma warning disable CA1031 // the CLI's last line of defence: report and exit 2
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return Fail($"internal error: {ex}", ExitCodes.InternalError);
        }
    }

    public static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"error: {message}");
        return code;
    }

    public static VersionRef ParseRef(string text)
    {
        if (!VersionRef.TryParse(text, out var value, out var error))
        {
            throw new CliException(error!);
        }
        return value;
    }

    public static Dictionary<string, string> ParsePairs(IEnumerable<string>? items, string option)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in items ?? [])
        {
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new CliException($"{option} '{item}' must be KEY=VALUE");
            }
            result[item[..eq]] = item[(eq + 1)..];
        }
        return result;
    }

    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : $"{value:0.0} {units[unit]}";
    }

    public static string Time(DateTimeOffset at) => at.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);

    public static string Esc(string? text) => Markup.Escape(text ?? "");

    /// <summary>Runs <paramref name="work"/> with a byte progress bar on stderr when it is a terminal.</summary>
    public static async Task<T> WithProgressAsync<T>(ParseResult parse, string label, long? total, Func<IProgress<long>?, Task<T>> work)
    {
        var console = ProgressConsole(parse);
        if (console is null)
        {
            return await work(null);
        }
        T result = default!;
        await console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(label), maxValue: total is > 0 ? total.Value : 1);
                task.IsIndeterminate = total is null;
                var progress = new Progress<long>(sent => task.Value = sent);
                result = await work(progress);
                task.Value = task.MaxValue;
            });
        return result;
    }

    /// <summary>One page from <paramref name="token"/>, or every page from there on with <paramref name="all"/>; returns the next token.</summary>
    public static async Task<(List<T> Items, string? NextToken)> FetchAsync<T>(string? token, bool all, Func<string?, Task<Page<T>>> fetch)
    {
        var items = new List<T>();
        do
        {
            var page = await fetch(token);
            items.AddRange(page.Items);
            token = page.NextPageToken;
        }
        while (token is not null && all);
        return (items, token);
    }

    public static (Option<int?> Size, Option<string?> Token, Option<bool> All) PagingOptions() => (
        new Option<int?>("--page-size") { Description = "Items per page (default 100)" },
        new Option<string?>("--page-token") { Description = "Continue a listing from the token a previous page printed" },
        new Option<bool>("--all") { Description = "Fetch every page" });

    public static bool IsPortInUse(Exception ex) =>
        ex is IOException { InnerException: SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } }
        || (ex is SocketException s && s.SocketErrorCode == SocketError.AddressAlreadyInUse)
        || ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase);
}
