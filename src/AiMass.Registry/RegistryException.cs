namespace AiMass.Registry;

/// <summary>A request the registry refuses; carries the HTTP status, a stable code and, when known, the offending field.</summary>
public sealed class RegistryException : Exception
{
    public RegistryException(int status, string code, string message, string? field = null)
        : base(message)
    {
        Status = status;
        Code = code;
        Field = field;
    }

    public RegistryException()
        : this(500, ErrorCodes.Internal, "registry error")
    {
    }

    public RegistryException(string message)
        : this(500, ErrorCodes.Internal, message)
    {
    }

    public RegistryException(string message, Exception innerException)
        : base(message, innerException)
    {
        Status = 500;
        Code = ErrorCodes.Internal;
    }

    /// <summary>HTTP status code.</summary>
    public int Status { get; }

    /// <summary>Stable machine-readable code (see <see cref="ErrorCodes"/>).</summary>
    public string Code { get; }

    /// <summary>The request field that was wrong, when there is one.</summary>
    public string? Field { get; }

    internal static RegistryException Invalid(string field, string message) => new(400, ErrorCodes.InvalidArgument, message, field);

    internal static RegistryException NotFound(string message) => new(404, ErrorCodes.NotFound, message);

    internal static RegistryException Conflict(string message, string code = ErrorCodes.Conflict) => new(409, code, message);
}
