namespace AiMass.Registry;

/// <summary>A request the registry refuses; carries the HTTP status, a stable code and, when known, the offending field.</summary>
public sealed class RegistryException : AiMassException
{
    /// <summary>Creates the exception.</summary>
    public RegistryException(int status, string code, string message, string? field = null)
        : base(status, code, message, field)
    {
    }

    /// <summary>Creates an internal error.</summary>
    public RegistryException() : base(500, ErrorCodes.Internal, "registry error")
    {
    }

    /// <summary>Creates an internal error with a message.</summary>
    public RegistryException(string message) : base(message)
    {
    }

    /// <summary>Creates an internal error with an inner exception.</summary>
    public RegistryException(string message, Exception innerException) : base(message, innerException)
    {
    }

    internal static RegistryException Invalid(string field, string message) => new(400, ErrorCodes.InvalidArgument, message, field);

    internal static RegistryException NotFound(string message) => new(404, ErrorCodes.NotFound, message);

    internal static RegistryException Conflict(string message, string code = ErrorCodes.Conflict) => new(409, code, message);
}
