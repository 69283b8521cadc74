namespace AiMass.Registry.Inspection;

/// <summary>Checks an artifact of one format before it becomes a version, and reads its signature.</summary>
public interface IArtifactInspector
{
    /// <summary>The format this inspector handles (e.g. <c>onnx</c>).</summary>
    string Format { get; }

    /// <summary>Loads the file; throws <see cref="InvalidArtifactException"/> with the reason when it is not a valid artifact.</summary>
    ModelSignature? Inspect(string path);
}

/// <summary>An artifact that cannot be loaded as its declared format.</summary>
public sealed class InvalidArtifactException : Exception
{
    public InvalidArtifactException()
    {
    }

    public InvalidArtifactException(string message)
        : base(message)
    {
    }

    public InvalidArtifactException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
