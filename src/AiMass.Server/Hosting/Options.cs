using System.ComponentModel.DataAnnotations;

namespace AiMass.Server.Hosting;

/// <summary>Where the control plane keeps its state (configuration section <c>Storage</c>).</summary>
public sealed class StorageOptions
{
    public const string Section = "Storage";

    /// <summary>The data directory: <c>aimass.db</c>, <c>blobs/</c>, <c>tmp/</c>. Default <c>~/.aimass</c>.</summary>
    [Required]
    public string DataDirectory { get; set; } = DefaultDataDirectory();

    /// <summary><c>AIMASS_DATA_DIR</c> when set, else <c>~/.aimass</c>.</summary>
    public static string DefaultDataDirectory()
    {
        var env = Environment.GetEnvironmentVariable("AIMASS_DATA_DIR");
        return string.IsNullOrWhiteSpace(env)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".aimass")
            : env;
    }
}

/// <summary>Where the control plane listens (configuration section <c>Server</c>).</summary>
public sealed class ServerOptions
{
    public const string Section = "Server";

    /// <summary>The port the control plane uses when none is given.</summary>
    public const int DefaultPort = 8470;

    /// <summary>Address to bind; loopback by default.</summary>
    [Required]
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one.</summary>
    [Range(0, 65535)]
    public int Port { get; set; } = DefaultPort;
}
