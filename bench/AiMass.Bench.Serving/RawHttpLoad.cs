using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AiMass.Bench.Serving;

/// <summary>
/// A lean HTTP/1.1 load generator, in the manner of wrk or Triton's perf_analyzer: each client is one keep-alive
/// connection sending the same pre-built request and reading the answer with as little work as the protocol allows
/// (no request, response or header objects; the answer is read into the connection's buffer). It exists so that the load generator, which shares the machine's
/// cores with the server, takes as little of them as possible; HttpClient costs several times more per request.
/// </summary>
internal sealed class RawHttpLoad : IAsyncDisposable
{
    private readonly byte[] _request;
    private readonly Socket[] _sockets;
    private readonly byte[][] _buffers;

    private RawHttpLoad(byte[] request, Socket[] sockets)
    {
        _request = request;
        _sockets = sockets;
        _buffers = sockets.Select(_ => new byte[64 * 1024]).ToArray();
    }

    /// <summary>Opens <paramref name="clients"/> keep-alive connections that will each send the same request.</summary>
    /// <param name="inferenceHeaderLength">For a binary-tensor body, the length of its JSON header; null for a JSON body.</param>
    public static async Task<RawHttpLoad> ConnectAsync(Uri server, string path, byte[] body, int? inferenceHeaderLength, int clients)
    {
        var head = new StringBuilder()
            .Append("POST /").Append(path).Append(" HTTP/1.1\r\n")
            .Append("Host: ").Append(server.Host).Append(':').Append(server.Port).Append("\r\n")
            .Append("Content-Type: ").Append(inferenceHeaderLength is null ? "application/json" : "application/octet-stream").Append("\r\n")
            .Append("Content-Length: ").Append(body.Length).Append("\r\n");
        if (inferenceHeaderLength is { } h)
        {
            head.Append("Inference-Header-Content-Length: ").Append(h).Append("\r\n");
        }
        head.Append("\r\n");
        var endpoint = new IPEndPoint(IPAddress.Parse(server.Host), server.Port);
        var sockets = new Socket[clients];
        for (var i = 0; i < clients; i++)
        {
            sockets[i] = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await sockets[i].ConnectAsync(endpoint);
        }
        return new RawHttpLoad([.. Encoding.ASCII.GetBytes(head.ToString()), .. body], sockets);
    }

    /// <summary>Every connection sends, waits for the answer and sends again until <paramref name="length"/> has passed; returns the answers.</summary>
    public async Task<long> RunAsync(TimeSpan length)
    {
        long done = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(_sockets.Select(async (socket, i) =>
        {
            while (watch.Elapsed < length)
            {
                await socket.SendAsync(_request, SocketFlags.None);
                await ReadResponseAsync(socket, _buffers[i]);
                Interlocked.Increment(ref done);
            }
        }));
        return done;
    }

    public ValueTask DisposeAsync()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Reads one answer (headers and Content-Length bytes of body); anything but 200 is an error.</summary>
    private static async Task ReadResponseAsync(Socket socket, byte[] buffer)
    {
        var filled = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None);
            if (n == 0)
            {
                throw new IOException("the server closed the connection");
            }
            filled += n;
            var end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8);
            if (end < 0)
            {
                continue;
            }
            var head = buffer.AsSpan(0, end);
            if (!head.StartsWith("HTTP/1.1 200"u8))
            {
                throw new IOException($"the server answered {Encoding.ASCII.GetString(head[..Math.Min(head.Length, 200)])}");
            }
            var at = head.IndexOf("\r\nContent-Length: "u8);
            if (at < 0 || !Utf8Parser.TryParse(head[(at + 18)..], out int length, out _))
            {
                throw new IOException("the answer has no Content-Length");
            }
            var total = end + 4 + length;
            if (total > buffer.Length)
            {
                throw new IOException($"the answer ({total} bytes) is larger than the buffer");
            }
            while (filled < total)
            {
                var m = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None);
                if (m == 0)
                {
                    throw new IOException("the server closed the connection");
                }
                filled += m;
            }
            return;
        }
    }
}
