namespace AiMass.Serving;

/// <summary>Dynamic batching settings of a model (Triton's <c>dynamic_batching</c>).</summary>
public sealed record BatchingOptions
{
    /// <summary>Largest batch (rows along the first dimension) run at once; 1 disables batching.</summary>
    public int MaxBatchSize { get; init; } = 8;

    /// <summary>Batch sizes run at once without waiting for the queue delay.</summary>
    public IReadOnlyList<int> PreferredBatchSizes { get; init; } = [];

    /// <summary>How long the oldest request of a batch may wait for more to join it.</summary>
    public TimeSpan MaxQueueDelay { get; init; } = TimeSpan.FromMicroseconds(100);

    /// <summary>Requests waiting at most; beyond it requests are refused (429) with <see cref="RetryAfter"/>.</summary>
    public int MaxQueueSize { get; init; } = 1024;

    /// <summary>Time a request may wait in the queue when it does not say (null: no limit).</summary>
    public TimeSpan? DefaultTimeout { get; init; }

    /// <summary>What a refused client is told to wait.</summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Batches run at the same time (Triton's instance count). ONNX Runtime runs one session concurrently, so the
    /// instances share the session's weights; each execution uses the session's intra-op threads.
    /// </summary>
    public int Instances { get; init; } = 1;
}

/// <summary>
/// Queues requests for one model and runs them in batches: requests whose inputs agree in every dimension but the
/// first are concatenated along it (up to <see cref="BatchingOptions.MaxBatchSize"/> rows), run once, and the outputs
/// split back row for row. A higher priority is served before queued lower ones; equal priorities in arrival order. A
/// request that waited past its timeout fails with 504 without running; a full queue refuses with 429.
/// </summary>
public sealed class DynamicBatcher : IAsyncDisposable
{
    private readonly ModelSession _session;
    private readonly BatchingOptions _options;
    private readonly TimeProvider _time;
    private readonly List<Pending> _queue = [];
    private readonly object _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _workers;
    // Executions under way, direct or from the queue, stay within the instance count.
    private readonly SemaphoreSlim _slots;
    private readonly ServingMetrics.Counters _counters;
    // Recent execution time (moving average); long.MaxValue until the first execution.
    private long _computeTicks = long.MaxValue;

    /// <summary>Models that run faster than this may run on the request's thread when nothing waits.</summary>
    private static readonly TimeSpan DirectRunLimit = TimeSpan.FromMicroseconds(200);
    private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _holds;
    private long _batches;
    private long _inferences;
    private long _computeTotal;

    /// <summary>Total time of model executions so far.</summary>
    public TimeSpan ComputeTime => TimeSpan.FromTicks(Interlocked.Read(ref _computeTotal));

    /// <summary>Starts the batcher's worker.</summary>
    public DynamicBatcher(ModelSession session, BatchingOptions? options = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        _session = session;
        _options = options ?? new BatchingOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxQueueSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.Instances, 1);
        _time = time ?? TimeProvider.System;
        _counters = ServingMetrics.Track(this, session.Name, session.Version);
        _slots = new SemaphoreSlim(_options.Instances, _options.Instances);
        _workers = Enumerable.Range(0, _options.Instances)
            .Select(_ => Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))
            .ToArray();
    }

    /// <summary>Requests waiting in the queue now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Model executions so far (Triton's execution count).</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Requests answered so far (Triton's inference count counts rows; this counts requests).</summary>
    public long Inferences => Interlocked.Read(ref _inferences);

    /// <summary>
    /// Queues a request and returns its outputs (those it asked for, in that order; else all). Bad inputs fail at once
    /// with a 400 that names them; a full queue with 429; a timeout with 504.
    /// </summary>
    public Task<IReadOnlyList<InferTensor>> InferAsync(InferenceRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            return Enqueue(request, cancellationToken);
        }
        catch (InferenceException e)
        {
            return Task.FromException<IReadOnlyList<InferTensor>>(e);
        }
    }

    private Task<IReadOnlyList<InferTensor>> Enqueue(InferenceRequest request, CancellationToken cancellationToken)
    {
        _session.Validate(request.Inputs);
        if (request.Outputs.Count > 0)
        {
            _session.ValidateOutputs(request.Outputs.Select(o => o.Name));
        }
        var rows = _session.Batchable ? (int)request.Inputs[0].Shape[0] : 1;
        if (_session.Batchable && !SameRows(request.Inputs, rows))
        {
            throw new InferenceException($"every input's first (batch) dimension must agree; got {string.Join(", ", request.Inputs.Select(i => $"{i.Name} {ModelSession.Format(i.Shape)}"))}");
        }
        var timeout = request.Timeout ?? _options.DefaultTimeout;
        var pending = new Pending(request, rows, _time.GetTimestamp(), timeout);
        var direct = false;
        lock (_lock)
        {
            // Nothing to batch with, an instance free and a quick model: run here, on the request's own thread, without
            // the two thread hand-offs of the queue. A slow model still goes to its instance threads, not to hold up a
            // thread-pool thread.
            if (!WaitsForBatch && Volatile.Read(ref _computeTicks) <= DirectRunLimit.Ticks && _queue.Count == 0 && _holds == 0
                && !_stop.IsCancellationRequested && _slots.Wait(0, CancellationToken.None))
            {
                direct = true;
            }
        }
        if (direct)
        {
            Execute([pending]);
            return pending.Task;
        }
        if (cancellationToken.CanBeCanceled)
        {
            pending.Registration = cancellationToken.UnsafeRegister(static (p, token) => ((Pending)p!).Cancel(token), pending);
        }
        lock (_lock)
        {
            if (_queue.Count >= _options.MaxQueueSize)
            {
                pending.Registration.Unregister();
                throw new InferenceException(429, $"model {_session.Name}: the queue is full ({_options.MaxQueueSize} requests)") { RetryAfter = _options.RetryAfter };
            }
            // Ordered by priority (higher first), then arrival.
            var at = _queue.Count;
            while (at > 0 && _queue[at - 1].Request.Priority < request.Priority)
            {
                at--;
            }
            _queue.Insert(at, pending);
            _signal.TrySetResult();
        }
        return pending.Task;
    }

    /// <summary>Keeps the worker from starting batches until disposed (tests use it to queue requests first).</summary>
    internal IDisposable Hold()
    {
        lock (_lock)
        {
            _holds++;
        }
        return new Release(this);
    }

    private sealed class Release(DynamicBatcher batcher) : IDisposable
    {
        public void Dispose()
        {
            lock (batcher._lock)
            {
                batcher._holds--;
                batcher._signal.TrySetResult();
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        ServingMetrics.Untrack(this);
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_workers).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        lock (_lock)
        {
            foreach (var p in _queue)
            {
                p.Fail(new InferenceException(503, $"model {_session.Name} is unloading") { RetryAfter = _options.RetryAfter });
            }
            _queue.Clear();
        }
        // Executions running on request threads finish before the session they use can be released.
        for (var i = 0; i < _options.Instances; i++)
        {
            await _slots.WaitAsync().ConfigureAwait(false);
        }
        _stop.Dispose();
        _slots.Dispose();
    }

    /// <summary>
    /// One instance's loop, on a thread of its own: a model run blocks its thread for as long as the model computes, and
    /// on the thread pool that would starve the threads that read and answer requests (on two cores, badly).
    /// </summary>
    private void Run()
    {
        var token = _stop.Token;
        try
        {
            while (!token.IsCancellationRequested)
            {
                Task signal;
                List<Pending>? batch = null;
                TimeSpan? wait = null;
                lock (_lock)
                {
                    signal = _signal.Task;
                    if (_signal.Task.IsCompleted)
                    {
                        _signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    }
                    DropExpired();
                    if (_queue.Count > 0 && _holds == 0)
                    {
                        var (chosen, full) = Choose();
                        var waited = _time.GetElapsedTime(chosen[0].Enqueued);
                        if (full || waited >= _options.MaxQueueDelay)
                        {
                            foreach (var p in chosen)
                            {
                                _queue.Remove(p);
                            }
                            batch = chosen;
                        }
                        else
                        {
                            wait = _options.MaxQueueDelay - waited;
                        }
                    }
                    // Wake up in time to fail a request whose timeout passes while it waits.
                    foreach (var p in _queue)
                    {
                        if (p.Timeout is { } t)
                        {
                            var left = t - _time.GetElapsedTime(p.Enqueued) + TimeSpan.FromTicks(1);
                            wait = wait is { } w0 && w0 < left ? w0 : left;
                        }
                    }
                }
                if (batch is not null)
                {
                    try
                    {
                        _slots.Wait(token);
                    }
                    catch (OperationCanceledException)
                    {
                        foreach (var p in batch)
                        {
                            p.Fail(new InferenceException(503, $"model {_session.Name} is unloading") { RetryAfter = _options.RetryAfter });
                        }
                        return;
                    }
                    Execute(batch);
                    continue;
                }
                // Sleep until a request arrives or the oldest one's delay is over.
                if (wait is { } w)
                {
                    Task.WaitAny(signal, Task.Delay(w, _time, token));
                }
                else
                {
                    signal.Wait(token);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    /// <summary>Whether a request may wait for others to join it (batching on, and a delay to wait).</summary>
    private bool WaitsForBatch => _session.Batchable && _options.MaxBatchSize > 1 && _options.MaxQueueDelay > TimeSpan.Zero;

    /// <summary>The requests to run next: the head of the queue and the compatible ones after it, up to the batch size.</summary>
    private (List<Pending> Batch, bool Full) Choose()
    {
        var head = _queue[0];
        var batch = new List<Pending> { head };
        if (!_session.Batchable || _options.MaxBatchSize == 1 || head.Rows >= _options.MaxBatchSize)
        {
            return (batch, true);
        }
        var rows = head.Rows;
        foreach (var p in _queue.Skip(1))
        {
            if (rows + p.Rows <= _options.MaxBatchSize && SameShapes(head.Request, p.Request))
            {
                batch.Add(p);
                rows += p.Rows;
            }
        }
        return (batch, rows == _options.MaxBatchSize || _options.PreferredBatchSizes.Contains(rows));
    }

    private void DropExpired()
    {
        for (var i = _queue.Count - 1; i >= 0; i--)
        {
            var p = _queue[i];
            if (p.Task.IsCompleted)
            {
                _queue.RemoveAt(i);
            }
            else if (p.Timeout is { } t && _time.GetElapsedTime(p.Enqueued) > t)
            {
                _queue.RemoveAt(i);
                p.Fail(new InferenceException(504, $"model {_session.Name}: the request waited longer than its timeout ({t.TotalMilliseconds:0.###} ms) in the queue"));
            }
        }
    }

    /// <summary>
    /// Runs a batch on the instance slot its caller took, gives the slot back as soon as the model is done, then answers
    /// the requests: the only request of an execution on this thread (what awaits it, encoding and writing the answer,
    /// runs here at once instead of after waking another thread), those of a larger batch on the thread pool, in one
    /// group per core.
    /// </summary>
    private void Execute(List<Pending> batch)
    {
        var released = false;
        try
        {
            var names = OutputNames(batch);
            var started = _time.GetTimestamp();
            var queued = new TimeSpan[batch.Count];
            var total = 0;
            for (var i = 0; i < batch.Count; i++)
            {
                queued[i] = _time.GetElapsedTime(batch[i].Enqueued, started);
                total += batch[i].Rows;
            }
            if (batch.Count == 1)
            {
                var outputs = _session.Run(batch[0].Request.Inputs, names);
                var compute = Executed(batch, started, queued);
                _slots.Release();
                released = true;
                batch[0].Succeed(Answer(batch[0], outputs));
                // The metrics after the answer: the client does not wait for them.
                _counters.Executed(total, compute, queued[0]);
                return;
            }
            var inputs = batch[0].Request.Inputs.Select(i => Concat(i.Name, batch)).ToList();
            var batched = _session.Run(inputs, names);
            var batchCompute = Executed(batch, started, queued);
            _slots.Release();
            released = true;
            var answers = new (Pending Pending, IReadOnlyList<InferTensor> Result)[batch.Count];
            var offset = 0;
            for (var i = 0; i < batch.Count; i++)
            {
                var p = batch[i];
                answers[i] = (p, Answer(p, batched.Select(o => Slice(o, offset, p.Rows, total)).ToList()));
                offset += p.Rows;
            }
            // The answers go to the thread pool in as many groups as there are cores, each group's thread completing its
            // requests one after another (what awaits them encodes and writes the answers): a work item, and maybe a
            // thread woken, per group rather than per request.
            var groups = Math.Min(Environment.ProcessorCount, answers.Length);
            for (var g = 0; g < groups; g++)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static s =>
                {
                    for (var i = s.From; i < s.To; i++)
                    {
                        s.Answers[i].Pending.Succeed(s.Answers[i].Result);
                    }
                }, (Answers: answers, From: g * answers.Length / groups, To: (g + 1) * answers.Length / groups), preferLocal: false);
            }
            _counters.Executed(total, batchCompute, queued.Aggregate(TimeSpan.Zero, (a, b) => a + b));
        }
#pragma warning disable CA1031 // a failed execution fails its requests, never the worker
        catch (Exception e)
#pragma warning restore CA1031
        {
            var error = e as InferenceException ?? new InferenceException(500, $"model {_session.Name} failed: {e.Message}");
            foreach (var p in batch)
            {
                p.Fail(error);
            }
        }
        finally
        {
            if (!released)
            {
                _slots.Release();
            }
        }
    }

    /// <summary>Counts an execution and gives its requests their queue and compute times; returns the compute time.</summary>
    private TimeSpan Executed(List<Pending> batch, long started, TimeSpan[] queued)
    {
        var compute = _time.GetElapsedTime(started);
        var previous = Volatile.Read(ref _computeTicks);
        Volatile.Write(ref _computeTicks, previous == long.MaxValue ? compute.Ticks : (previous * 7 + compute.Ticks) / 8);
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _computeTotal, compute.Ticks);
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch[i].Request.Timing is { } timing)
            {
                timing.Queue = queued[i];
                timing.Compute = compute;
            }
        }
        return compute;
    }

    /// <summary>The outputs a batch asks for (null: all, when any request asks for all).</summary>
    private static List<string>? OutputNames(List<Pending> batch)
    {
        List<string>? names = null;
        foreach (var p in batch)
        {
            if (p.Request.Outputs.Count == 0)
            {
                return null;
            }
            names ??= [];
            foreach (var o in p.Request.Outputs)
            {
                if (!names.Contains(o.Name))
                {
                    names.Add(o.Name);
                }
            }
        }
        return names;
    }

    /// <summary>The outputs a request asked for (all when it named none), counting it as answered.</summary>
    private IReadOnlyList<InferTensor> Answer(Pending pending, IReadOnlyList<InferTensor> outputs)
    {
        var asked = pending.Request.Outputs;
        IReadOnlyList<InferTensor> result = asked.Count == 0 ? outputs : asked.Select(a => outputs.First(o => o.Name == a.Name)).ToList();
        Interlocked.Increment(ref _inferences);
        return result;
    }

    private static InferTensor Concat(string name, List<Pending> batch)
    {
        var parts = batch.Select(p => p.Request.Inputs.First(i => i.Name == name)).ToList();
        var first = parts[0];
        var shape = (long[])first.Shape.Clone();
        shape[0] = parts.Sum(p => p.Shape[0]);
        var data = InferDataTypes.NewArray(first.DataType, parts.Sum(p => p.Data.Length));
        var at = 0;
        foreach (var part in parts)
        {
            Array.Copy(part.Data, 0, data, at, part.Data.Length);
            at += part.Data.Length;
        }
        return new InferTensor(name, first.DataType, shape, data);
    }

    private static InferTensor Slice(InferTensor output, int offset, int rows, int total)
    {
        if (output.Shape.Length == 0 || output.Shape[0] != total)
        {
            throw new InferenceException(500, $"output '{output.Name}' has shape {ModelSession.Format(output.Shape)}; a batch of {total} rows cannot be split back");
        }
        var perRow = total == 0 ? 0 : output.Data.Length / total;
        var shape = (long[])output.Shape.Clone();
        shape[0] = rows;
        var data = InferDataTypes.NewArray(output.DataType, rows * perRow);
        Array.Copy(output.Data, offset * perRow, data, 0, rows * perRow);
        return new InferTensor(output.Name, output.DataType, shape, data);
    }

    private static bool SameRows(IReadOnlyList<InferTensor> inputs, int rows)
    {
        foreach (var input in inputs)
        {
            if (input.Shape[0] != rows)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Requests batch together when their inputs agree in names, types and every dimension but the first.</summary>
    private static bool SameShapes(InferenceRequest a, InferenceRequest b)
    {
        if (a.Inputs.Count != b.Inputs.Count)
        {
            return false;
        }
        foreach (var x in a.Inputs)
        {
            InferTensor? y = null;
            foreach (var candidate in b.Inputs)
            {
                if (candidate.Name == x.Name)
                {
                    y = candidate;
                    break;
                }
            }
            if (y is null || y.DataType != x.DataType || !x.Shape.AsSpan(1).SequenceEqual(y.Shape.AsSpan(1)))
            {
                return false;
            }
        }
        return true;
    }

    private sealed class Pending(InferenceRequest request, int rows, long enqueued, TimeSpan? timeout)
    {
        public InferenceRequest Request { get; } = request;

        public int Rows { get; } = rows;

        /// <summary>The request's cancellation callback, removed once it is answered.</summary>
        public CancellationTokenRegistration Registration { get; set; }

        public long Enqueued { get; } = enqueued;

        public TimeSpan? Timeout { get; } = timeout;

        // Without RunContinuationsAsynchronously: where what awaits the request runs is chosen per completion below.
        private readonly TaskCompletionSource<IReadOnlyList<InferTensor>> _completion = new();

        public Task<IReadOnlyList<InferTensor>> Task => _completion.Task;

        /// <summary>
        /// Answers the request on this thread: what awaits it (encoding and writing the answer) runs here at once. Only
        /// where no lock is held and no instance slot is taken.
        /// </summary>
        public void Succeed(IReadOnlyList<InferTensor> result)
        {
            Registration.Unregister();
            _completion.TrySetResult(result);
        }

        /// <summary>Fails the request; what awaits it runs on the thread pool (callers may hold the batcher's lock).</summary>
        public void Fail(Exception error)
        {
            Registration.Unregister();
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Completion.TrySetException(s.Error), (Completion: _completion, Error: error), preferLocal: false);
        }

        /// <summary>Cancels the request; what awaits it runs on the thread pool.</summary>
        public void Cancel(CancellationToken token) =>
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Completion.TrySetCanceled(s.Token), (Completion: _completion, Token: token), preferLocal: false);
    }
}
