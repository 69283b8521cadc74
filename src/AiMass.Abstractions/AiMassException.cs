using AiMass.Registry;

namespace AiMass;

/// <summary>
/// A request a component refuses, with what the REST API answers: the HTTP status, a stable code (see
/// <see cref="ErrorCodes"/>) and, when known, the field that was wrong.
/// </summary>
public class AiMassException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AiMassException(int status, string code, string message, string? field = null)
        : base(message)
    {
        Status = status;
        Code = code;
        Field = field;
    }

    /// <summary>Creates an internal error.</summary>
    public AiMassException() : this(500, ErrorCodes.Internal, "internal error")
    {
    }

    /// <summary>Creates an internal error with a message.</summary>
    public AiMassException(string message) : this(500, ErrorCodes.Internal, message)
    {
    }

    /// <summary>Creates an internal error with an inner exception.</summary>
    public AiMassException(string message, Exception innerException) : base(message, innerException)
    {
        Status = 500;
        Code = ErrorCodes.Internal;
    }

    /// <summary>HTTP status code.</summary>
    public int Status { get; }

    /// <summary>Stable machine-readable code.</summary>
    public string Code { get; }

    /// <summary>The request field that was wrong, when there is one.</summary>
    public string? Field { get; }
}
