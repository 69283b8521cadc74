using System.Buffers.Binary;
using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace AiMass.Bench.Serving;

/// <summary>
/// A lean HTTP/1.1 load generator, built as wrk is: one thread drives every connection from one epoll set. Each client
/// is one keep-alive connection sending the same pre-built request and reading the answer by its Content-Length into
/// the connection's buffer (no request, response or header objects). It exists so that the load generator, which shares
/// the machine's two cores with the server, takes as little of them as possible: an answer costs one <c>recv</c>, the
/// next request one <c>send</c>, and one <c>epoll_wait</c> serves every connection that became readable meanwhile —
/// where .NET's asynchronous sockets cost a failed <c>recv</c>, a wake-up of the runtime's epoll thread and a thread-pool
/// hop per answer, and HttpClient several times that.
/// </summary>
internal sealed partial class RawHttpLoad : IDisposable
{
    private const int EpollIn = 0x001;
    private const int EpollOut = 0x004;
    private const int EpollErr = 0x008;
    private const int EpollHup = 0x010;
    private const int EpollCtlAdd = 1;
    private const int EpollCtlMod = 3;
    private const int EpollCloexec = 0x80000;
    private const int Eintr = 4;

    // struct epoll_event { uint32_t events; epoll_data_t data; }: packed (12 bytes) on x86-64, 16 bytes elsewhere.
    private static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    private static readonly int DataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    private readonly byte[] _request;
    private readonly Socket[] _sockets;
    private readonly byte[][] _buffers;
    private readonly int[] _filled;
    private readonly int[] _sent;
    private readonly bool[] _waitingForRoom;
    private readonly int _epoll;

    private RawHttpLoad(byte[] request, Socket[] sockets)
    {
        _request = request;
        _sockets = sockets;
        _buffers = sockets.Select(_ => new byte[64 * 1024]).ToArray();
        _filled = new int[sockets.Length];
        _sent = new int[sockets.Length];
        _waitingForRoom = new bool[sockets.Length];
        _epoll = EpollCreate1(EpollCloexec);
        if (_epoll < 0)
        {
            throw new IOException($"epoll_create1 failed: errno {Marshal.GetLastPInvokeError()}");
        }
        for (var i = 0; i < sockets.Length; i++)
        {
            Control(EpollCtlAdd, i, EpollIn);
        }
    }

    /// <summary>Opens <paramref name="clients"/> keep-alive connections that will each send the same request.</summary>
    /// <param name="inferenceHeaderLength">For a binary-tensor body, the length of its JSON header; null for a JSON body.</param>
    public static RawHttpLoad Connect(Uri server, string path, byte[] body, int? inferenceHeaderLength, int clients)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the load generator uses epoll, which only Linux has");
        }
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
            // A synchronous connect keeps the socket out of the runtime's own epoll engine, which would otherwise be
            // woken by every answer as well.
            sockets[i] = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            sockets[i].Connect(endpoint);
            sockets[i].Blocking = false;
        }
        return new RawHttpLoad([.. Encoding.ASCII.GetBytes(head.ToString()), .. body], sockets);
    }

    /// <summary>
    /// Every connection sends, waits for the answer and sends again until <paramref name="length"/> has passed (the
    /// requests in flight then are still answered); returns the answers. Runs on a thread of its own.
    /// </summary>
    public Task<long> RunAsync(TimeSpan length)
    {
        var result = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                result.SetResult(Run(length));
            }
            catch (Exception e)
            {
                result.SetException(e);
            }
        })
        { IsBackground = true, Name = "load generator" };
        thread.Start();
        return result.Task;
    }

    public void Dispose()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
        Close(_epoll);
    }

    private long Run(TimeSpan length)
    {
        long done = 0;
        var watch = Stopwatch.StartNew();
        var running = _sockets.Length;
        for (var i = 0; i < _sockets.Length; i++)
        {
            _filled[i] = 0;
            Send(i);
        }
        var events = new byte[EventSize * _sockets.Length];
        while (running > 0)
        {
            var ready = EpollWait(_epoll, events, _sockets.Length, 10_000);
            if (ready < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Eintr)
                {
                    continue;
                }
                throw new IOException($"epoll_wait failed: errno {errno}");
            }
            if (ready == 0)
            {
                throw new TimeoutException($"no answer on any of {running} connections for 10 s");
            }
            for (var k = 0; k < ready; k++)
            {
                var flags = BinaryPrimitives.ReadInt32LittleEndian(events.AsSpan(k * EventSize));
                var i = (int)BinaryPrimitives.ReadInt64LittleEndian(events.AsSpan(k * EventSize + DataOffset));
                if ((flags & (EpollErr | EpollHup)) != 0 && (flags & EpollIn) == 0)
                {
                    throw new IOException("a connection to the server failed");
                }
                if ((flags & EpollOut) != 0)
                {
                    Send(i);
                }
                if ((flags & EpollIn) == 0 || !Receive(i))
                {
                    continue;
                }
                done++;
                _filled[i] = 0;
                if (watch.Elapsed < length)
                {
                    Send(i);
                }
                else
                {
                    running--;
                }
            }
        }
        return done;
    }

    /// <summary>Sends the request, or as much of it as the socket takes, waiting for room (EPOLLOUT) for the rest.</summary>
    private void Send(int i)
    {
        while (_sent[i] < _request.Length)
        {
            var n = _sockets[i].Send(_request, _sent[i], _request.Length - _sent[i], SocketFlags.None, out var error);
            if (error == SocketError.WouldBlock)
            {
                if (!_waitingForRoom[i])
                {
                    _waitingForRoom[i] = true;
                    Control(EpollCtlMod, i, EpollIn | EpollOut);
                }
                return;
            }
            if (error != SocketError.Success)
            {
                throw new SocketException((int)error);
            }
            _sent[i] += n;
        }
        _sent[i] = 0;
        if (_waitingForRoom[i])
        {
            _waitingForRoom[i] = false;
            Control(EpollCtlMod, i, EpollIn);
        }
    }

    /// <summary>Reads what has arrived on connection <paramref name="i"/>; true when a whole answer is in.</summary>
    private bool Receive(int i)
    {
        var buffer = _buffers[i];
        var n = _sockets[i].Receive(buffer, _filled[i], buffer.Length - _filled[i], SocketFlags.None, out var error);
        if (error == SocketError.WouldBlock)
        {
            return false;
        }
        if (error != SocketError.Success)
        {
            throw new SocketException((int)error);
        }
        if (n == 0)
        {
            throw new IOException("the server closed the connection");
        }
        _filled[i] += n;
        var total = AnswerLength(buffer.AsSpan(0, _filled[i]));
        if (total > buffer.Length)
        {
            throw new IOException($"the answer ({total} bytes) is larger than the buffer");
        }
        if (total > 0 && _filled[i] > total)
        {
            throw new IOException("the server sent more than one answer to one request");
        }
        return total > 0 && _filled[i] == total;
    }

    /// <summary>The length of the answer (headers and Content-Length bytes of body), or 0 while its headers are incomplete; anything but 200 is an error.</summary>
    private static int AnswerLength(ReadOnlySpan<byte> data)
    {
        var end = data.IndexOf("\r\n\r\n"u8);
        if (end < 0)
        {
            return 0;
        }
        var head = data[..end];
        if (!head.StartsWith("HTTP/1.1 200"u8))
        {
            throw new IOException($"the server answered {Encoding.ASCII.GetString(head[..Math.Min(head.Length, 200)])}");
        }
        var at = head.IndexOf("\r\nContent-Length: "u8);
        if (at < 0 || !Utf8Parser.TryParse(head[(at + 18)..], out int length, out _))
        {
            throw new IOException("the answer has no Content-Length");
        }
        return end + 4 + length;
    }

    private void Control(int operation, int i, int flags)
    {
        var ev = new byte[EventSize];
        BinaryPrimitives.WriteInt32LittleEndian(ev, flags);
        BinaryPrimitives.WriteInt64LittleEndian(ev.AsSpan(DataOffset), i);
        if (EpollCtl(_epoll, operation, (int)_sockets[i].Handle, ev) < 0)
        {
            throw new IOException($"epoll_ctl failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    private static partial int EpollCreate1(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int EpollCtl(int epfd, int op, int fd, byte[] ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static partial int EpollWait(int epfd, [Out] byte[] events, int maxEvents, int timeout);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
