namespace AiMass.Tensors;

/// <summary>
/// One recorded operation: its ONNX operator type and attributes (what the exporter writes), its inputs, and how to
/// turn the gradient of its output into gradients of its inputs.
/// </summary>
internal sealed class Node(string opType, Tensor[] inputs, Func<Tensor, Tensor?[]> backward, IReadOnlyDictionary<string, object>? attributes)
{
    public string OpType { get; } = opType;

    public Tensor[] Inputs { get; } = inputs;

    /// <summary>Given dL/d(output), returns dL/d(input) for each input (null where no gradient is needed).</summary>
    public Func<Tensor, Tensor?[]> Backward { get; } = backward;

    public IReadOnlyDictionary<string, object> Attributes { get; } = attributes ?? new Dictionary<string, object>();
}

/// <summary>
/// Reverse-mode automatic differentiation. The engine executes eagerly and records, for every result that depends on
/// a tensor requiring gradients, the ONNX operator that produced it (a tape in the form of a graph).
/// </summary>
public static class Autograd
{
    [ThreadStatic]
    private static int _noGrad;

    [ThreadStatic]
    private static int _tracing;

    /// <summary>Whether operations are recorded on this thread.</summary>
    public static bool IsEnabled => _noGrad == 0;

    /// <summary>Stops recording on this thread until the returned scope is disposed (evaluation, inference, optimizer steps).</summary>
    public static IDisposable NoGrad()
    {
        _noGrad++;
        return new Scope(() => _noGrad--);
    }

    /// <summary>Records every operation, even on tensors that need no gradient (the exporter traces a forward pass).</summary>
    internal static IDisposable Trace()
    {
        _tracing++;
        var saved = _noGrad;
        _noGrad = 0;
        return new Scope(() =>
        {
            _tracing--;
            _noGrad = saved;
        });
    }

    internal static bool IsTracing => _tracing > 0;

    /// <summary>Attaches the operation that produced <paramref name="output"/> when it must be recorded.</summary>
    internal static Tensor Record(Tensor output, string opType, Tensor[] inputs, Func<Tensor, Tensor?[]> backward, IReadOnlyDictionary<string, object>? attributes = null)
    {
        if (_noGrad > 0)
        {
            return output;
        }
        var needsGrad = false;
        foreach (var input in inputs)
        {
            needsGrad |= input.RequiresGrad;
        }
        if (needsGrad || _tracing > 0)
        {
            output.RequiresGrad = needsGrad;
            output.Creator = new Node(opType, inputs, backward, attributes);
        }
        return output;
    }

    /// <summary>Propagates <paramref name="grad"/> (dL/d<paramref name="root"/>) back to every leaf that requires gradients.</summary>
    internal static void Backward(Tensor root, Tensor grad)
    {
        var order = TopologicalOrder(root, input => input.RequiresGrad);
        var grads = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance) { [root] = grad };
        using var _ = NoGrad();
        for (var i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            if (!grads.Remove(t, out var g))
            {
                continue;
            }
            if (t.Creator is not { } node)
            {
                if (t.RequiresGrad)
                {
                    t.Grad = t.Grad is null ? g.Detach() : Ops.AddInPlace(t.Grad, g);
                }
                continue;
            }
            var inputGrads = node.Backward(g);
            for (var k = 0; k < node.Inputs.Length; k++)
            {
                var input = node.Inputs[k];
                if (!input.RequiresGrad || inputGrads[k] is not { } ig)
                {
                    continue;
                }
                // Gradients may alias each other (Add passes one tensor to both inputs): accumulate into a new tensor.
                grads[input] = grads.TryGetValue(input, out var existing) ? Ops.AddInPlace(existing.Detach(), ig) : ig;
            }
        }
    }

    /// <summary>
    /// The tensors <paramref name="root"/> was computed from, inputs before results (an iterative depth-first search,
    /// so deep graphs cannot overflow the stack); <paramref name="follow"/> says which inputs to walk into.
    /// </summary>
    internal static List<Tensor> TopologicalOrder(Tensor root, Func<Tensor, bool> follow)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor Tensor, bool Expanded)>();
        stack.Push((root, false));
        while (stack.Count > 0)
        {
            var (t, expanded) = stack.Pop();
            if (expanded)
            {
                order.Add(t);
                continue;
            }
            if (!visited.Add(t))
            {
                continue;
            }
            stack.Push((t, true));
            if (t.Creator is { } node)
            {
                foreach (var input in node.Inputs)
                {
                    if (follow(input) && !visited.Contains(input))
                    {
                        stack.Push((input, false));
                    }
                }
            }
        }
        return order;
    }

    private sealed class Scope(Action dispose) : IDisposable
    {
        private Action? _dispose = dispose;

        public void Dispose()
        {
            _dispose?.Invoke();
            _dispose = null;
        }
    }
}
