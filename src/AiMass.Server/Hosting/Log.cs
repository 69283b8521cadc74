
namespace AiMass.Server.Hosting;

/// <summary>Source-generated log messages with stable event ids (1xxx host, 2xxx registry API).</summary>
internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Information, "Data directory {DataDirectory}; removed {TempFiles} stale temporary upload file(s)")]
    public static partial void Started(ILogger logger, string dataDirectory, int tempFiles);

    [LoggerMessage(2001, LogLevel.Information, "Registered {Model}@{Version} ({Size} bytes, {Digest})")]
    public static partial void Registered(ILogger logger, string model, int version, long size, string digest);

    [LoggerMessage(2002, LogLevel.Information, "Alias {Model}@{Alias} -> {Version} by {Actor}")]
    public static partial void AliasMoved(ILogger logger, string model, string alias, int? version, string actor);

    [LoggerMessage(2003, LogLevel.Information, "Deleted {Model}@{Version} by {Actor}")]
    public static partial void VersionDeleted(ILogger logger, string model, string version, string actor);

    [LoggerMessage(2004, LogLevel.Information, "Backup written to {Path}: {Versions} version(s), {Blobs} blob(s), {Bytes} bytes")]
    public static partial void BackupWritten(ILogger logger, string path, int versions, int blobs, long bytes);

    [LoggerMessage(2005, LogLevel.Information, "Garbage collection: {Blobs} blob(s), {Bytes} bytes; {TempFiles} temporary file(s) (dry run: {DryRun})")]
    public static partial void GarbageCollected(ILogger logger, int blobs, long bytes, int tempFiles, bool dryRun);

    [LoggerMessage(2899, LogLevel.Information, "Client aborted {Method} {Path}")]
    public static partial void ClientAborted(ILogger logger, string method, string path);

    [LoggerMessage(2900, LogLevel.Error, "Unhandled error on {Method} {Path}")]
    public static partial void Unhandled(ILogger logger, Exception exception, string method, string path);
}
