using System.Threading.Channels;

namespace AiMass.Jobs;

/// <summary>
/// The control loop of a service: runs one step under the service's gate whenever it is woken, or when the wait it is
/// given passes (the tick that checks deadlines). A failed step is reported and followed by a pause — never the end of
/// the loop, or nothing would be done again.
/// </summary>
internal sealed class ControlLoop : IDisposable
{
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _gate;
    private readonly Func<CancellationToken, Task> _step;
    private readonly Func<TimeSpan> _wait;
    private readonly TimeSpan _pause;
    private readonly Action<Exception> _failed;
    private Task? _loop;

    /// <param name="gate">Held while a step runs (the service's API calls take it too).</param>
    /// <param name="step">One pass.</param>
    /// <param name="wait">Longest time until the next pass when nothing wakes the loop.</param>
    /// <param name="pause">Time after a failed step before the next.</param>
    /// <param name="failed">Reports a failed step.</param>
    public ControlLoop(SemaphoreSlim gate, Func<CancellationToken, Task> step, Func<TimeSpan> wait, TimeSpan pause, Action<Exception> failed)
    {
        _gate = gate;
        _step = step;
        _wait = wait;
        _pause = pause;
        _failed = failed;
    }

    /// <summary>Ends with <see cref="StopAsync"/>: for work the service starts outside the loop (waiting on a task's exit).</summary>
    public CancellationToken Stopping => _stop.Token;

    /// <summary>Starts the loop.</summary>
    public void Start() => _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);

    /// <summary>Asks for a pass now.</summary>
    public void Wake() => _wake.Writer.TryWrite(true);

    /// <summary>Stops the loop after the step under way.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _stop.Dispose();

    private async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
                timeout.CancelAfter(_wait());
                try
                {
                    await _wake.Reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false);
                    _wake.Reader.TryRead(out _);
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    // The tick: a pass anyway.
                }
                await _gate.WaitAsync(stop).ConfigureAwait(false);
                try
                {
                    await _step(stop).ConfigureAwait(false);
                }
                finally
                {
                    _gate.Release();
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // the loop must outlive any one failed step
            catch (Exception e)
#pragma warning restore CA1031
            {
                _failed(e);
                try
                {
                    await Task.Delay(_pause, stop).ConfigureAwait(false); // no hot loop on a persistent failure
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}
