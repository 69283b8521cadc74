namespace AiMass.IO;

/// <summary>Writes files aside, then renames them into place: a reader never sees half a file.</summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="text"/> as UTF-8.</summary>
    public static void Write(string path, string text) => Write(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Writes <paramref name="bytes"/>.</summary>
    public static void Write(string path, byte[] bytes)
    {
        var temporary = path + ".tmp";
        File.WriteAllBytes(temporary, bytes);
        File.Move(temporary, path, overwrite: true);
    }
}
