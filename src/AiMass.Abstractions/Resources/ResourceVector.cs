using System.Globalization;
using System.Text;

namespace AiMass.Resources;

/// <summary>
/// An amount of every schedulable resource: CPU in millicores, memory in bytes, GPUs, and named custom resources
/// (licences, FPGAs, ...). Immutable; arithmetic allocates only when custom resources are involved.
/// </summary>
public readonly struct ResourceVector : IEquatable<ResourceVector>
{
    // Custom resources, sorted by ordinal name, never holding a zero amount; null when there are none.
    private readonly string[]? _names;
    private readonly long[]? _amounts;

    /// <summary>Creates a vector; custom amounts of zero are dropped, names must be valid resource names.</summary>
    public ResourceVector(long cpuMillis, long memoryBytes, long gpus = 0, IEnumerable<KeyValuePair<string, long>>? custom = null)
    {
        CpuMillis = cpuMillis;
        MemoryBytes = memoryBytes;
        Gpus = gpus;
        if (custom is null)
        {
            return;
        }
        var sorted = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, amount) in custom)
        {
            if (!ResourceNames.IsValidCustom(name))
            {
                throw new ArgumentException($"'{name}' is not a valid custom resource name (expected {ResourceNames.CustomPattern})", nameof(custom));
            }
            sorted[name] = sorted.GetValueOrDefault(name) + amount;
        }
        var names = sorted.Where(p => p.Value != 0).Select(p => p.Key).ToArray();
        if (names.Length > 0)
        {
            _names = names;
            _amounts = names.Select(n => sorted[n]).ToArray();
        }
    }

    private ResourceVector(long cpu, long memory, long gpus, string[]? names, long[]? amounts)
    {
        CpuMillis = cpu;
        MemoryBytes = memory;
        Gpus = gpus;
        _names = names;
        _amounts = amounts;
    }

    /// <summary>No resources at all.</summary>
    public static ResourceVector Zero => default;

    /// <summary>CPU in millicores (1000 = one core).</summary>
    public long CpuMillis { get; }

    /// <summary>Memory in bytes.</summary>
    public long MemoryBytes { get; }

    /// <summary>Whole GPUs.</summary>
    public long Gpus { get; }

    /// <summary>Named custom resources with a non-zero amount, sorted by name.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> Custom
    {
        get
        {
            if (_names is null)
            {
                return [];
            }
            var result = new KeyValuePair<string, long>[_names.Length];
            for (var i = 0; i < result.Length; i++)
            {
                result[i] = new(_names[i], _amounts![i]);
            }
            return result;
        }
    }

    /// <summary>True when the vector has custom resources.</summary>
    public bool HasCustom => _names is not null;

    /// <summary>The amount of one custom resource (0 when absent).</summary>
    public long this[string customName]
    {
        get
        {
            if (_names is null)
            {
                return 0;
            }
            var i = Array.BinarySearch(_names, customName, StringComparer.Ordinal);
            return i >= 0 ? _amounts![i] : 0;
        }
    }

    /// <summary>True when every component is zero.</summary>
    public bool IsZero => CpuMillis == 0 && MemoryBytes == 0 && Gpus == 0 && _names is null;

    /// <summary>True when some component is negative.</summary>
    public bool AnyNegative
    {
        get
        {
            if (CpuMillis < 0 || MemoryBytes < 0 || Gpus < 0)
            {
                return true;
            }
            return _amounts is not null && Array.Exists(_amounts, a => a < 0);
        }
    }

    /// <summary>Component-wise sum.</summary>
    public static ResourceVector operator +(ResourceVector a, ResourceVector b) => Combine(a, b, 1);

    /// <summary>Component-wise difference.</summary>
    public static ResourceVector operator -(ResourceVector a, ResourceVector b) => Combine(a, b, -1);

    /// <summary>Every component multiplied by <paramref name="k"/>.</summary>
    public static ResourceVector operator *(ResourceVector a, long k) =>
        new(a.CpuMillis * k, a.MemoryBytes * k, a.Gpus * k, k == 0 ? null : a._names, a._amounts?.Select(x => x * k).ToArray());

    /// <summary>Component-wise sum (named alternative to the operator).</summary>
    public static ResourceVector Add(ResourceVector left, ResourceVector right) => left + right;

    /// <summary>Component-wise difference (named alternative to the operator).</summary>
    public static ResourceVector Subtract(ResourceVector left, ResourceVector right) => left - right;

    /// <summary>Every component multiplied (named alternative to the operator).</summary>
    public static ResourceVector Multiply(ResourceVector left, long right) => left * right;

    /// <summary>True when every component of this vector is at most the same component of <paramref name="capacity"/>.</summary>
    public bool FitsIn(in ResourceVector capacity)
    {
        if (CpuMillis > capacity.CpuMillis || MemoryBytes > capacity.MemoryBytes || Gpus > capacity.Gpus)
        {
            return false;
        }
        if (_names is null)
        {
            return capacity._names is null || !Array.Exists(capacity._amounts!, a => a < 0);
        }
        for (var i = 0; i < _names.Length; i++)
        {
            if (_amounts![i] > capacity[_names[i]])
            {
                return false;
            }
        }
        if (capacity._names is not null)
        {
            // A negative custom amount in the capacity that this vector does not request still means "over".
            for (var i = 0; i < capacity._names.Length; i++)
            {
                if (capacity._amounts![i] < 0 && this[capacity._names[i]] == 0)
                {
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>
    /// How many copies of <paramref name="need"/> fit in this vector (the minimum over requested components);
    /// <see cref="long.MaxValue"/> when <paramref name="need"/> is zero, 0 when this vector is negative somewhere.
    /// </summary>
    public long CountFitting(in ResourceVector need)
    {
        var n = long.MaxValue;
        if (CpuMillis < 0 || MemoryBytes < 0 || Gpus < 0)
        {
            return 0;
        }
        if (need.CpuMillis > 0)
        {
            n = Math.Min(n, CpuMillis / need.CpuMillis);
        }
        if (need.MemoryBytes > 0)
        {
            n = Math.Min(n, MemoryBytes / need.MemoryBytes);
        }
        if (need.Gpus > 0)
        {
            n = Math.Min(n, Gpus / need.Gpus);
        }
        if (need._names is not null)
        {
            for (var i = 0; i < need._names.Length; i++)
            {
                var have = this[need._names[i]];
                n = Math.Min(n, have <= 0 ? 0 : have / need._amounts![i]);
            }
        }
        return n;
    }

    /// <summary>Component-wise minimum.</summary>
    public static ResourceVector Min(ResourceVector a, ResourceVector b) => Pick(a, b, Math.Min);

    /// <summary>Component-wise maximum.</summary>
    public static ResourceVector Max(ResourceVector a, ResourceVector b) => Pick(a, b, Math.Max);

    /// <summary>
    /// The dominant share: the largest fraction this vector takes of any resource of <paramref name="total"/>
    /// (resources the total lacks are ignored).
    /// </summary>
    public double DominantShare(in ResourceVector total)
    {
        var share = 0.0;
        if (total.CpuMillis > 0)
        {
            share = Math.Max(share, (double)CpuMillis / total.CpuMillis);
        }
        if (total.MemoryBytes > 0)
        {
            share = Math.Max(share, (double)MemoryBytes / total.MemoryBytes);
        }
        if (total.Gpus > 0)
        {
            share = Math.Max(share, (double)Gpus / total.Gpus);
        }
        if (_names is not null)
        {
            for (var i = 0; i < _names.Length; i++)
            {
                var t = total[_names[i]];
                if (t > 0)
                {
                    share = Math.Max(share, (double)_amounts![i] / t);
                }
            }
        }
        return share;
    }

    /// <summary>
    /// How full a node with <paramref name="capacity"/> would be if this vector were what is left free, averaged over
    /// the components <paramref name="requested"/> asks for: 0 = empty, 1 = full. Used by placement strategies.
    /// </summary>
    public double FreeFraction(in ResourceVector capacity, in ResourceVector requested)
    {
        double sum = 0;
        var count = 0;
        if (requested.CpuMillis > 0 && capacity.CpuMillis > 0)
        {
            sum += (double)CpuMillis / capacity.CpuMillis;
            count++;
        }
        if (requested.MemoryBytes > 0 && capacity.MemoryBytes > 0)
        {
            sum += (double)MemoryBytes / capacity.MemoryBytes;
            count++;
        }
        if (requested.Gpus > 0 && capacity.Gpus > 0)
        {
            sum += (double)Gpus / capacity.Gpus;
            count++;
        }
        if (requested._names is not null)
        {
            foreach (var name in requested._names)
            {
                var c = capacity[name];
                if (c > 0)
                {
                    sum += (double)this[name] / c;
                    count++;
                }
            }
        }
        return count == 0 ? 0 : sum / count;
    }

    /// <inheritdoc />
    public bool Equals(ResourceVector other)
    {
        if (CpuMillis != other.CpuMillis || MemoryBytes != other.MemoryBytes || Gpus != other.Gpus)
        {
            return false;
        }
        if (_names is null || other._names is null)
        {
            return _names is null && other._names is null;
        }
        return _names.AsSpan().SequenceEqual(other._names) && _amounts.AsSpan().SequenceEqual(other._amounts);
    }

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ResourceVector other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = HashCode.Combine(CpuMillis, MemoryBytes, Gpus);
        if (_names is not null)
        {
            for (var i = 0; i < _names.Length; i++)
            {
                hash = HashCode.Combine(hash, StringComparer.Ordinal.GetHashCode(_names[i]), _amounts![i]);
            }
        }
        return hash;
    }

    /// <summary>Equality of every component.</summary>
    public static bool operator ==(ResourceVector left, ResourceVector right) => left.Equals(right);

    /// <summary>Inequality of some component.</summary>
    public static bool operator !=(ResourceVector left, ResourceVector right) => !left.Equals(right);

    /// <summary>The vector as a job spec would write it, e.g. <c>cpu=4, memory=16Gi, gpu=1, fpga=2</c>.</summary>
    public override string ToString()
    {
        if (IsZero)
        {
            return "nothing";
        }
        var sb = new StringBuilder();
        void Part(string text)
        {
            if (sb.Length > 0)
            {
                sb.Append(", ");
            }
            sb.Append(text);
        }
        if (CpuMillis != 0)
        {
            Part("cpu=" + Quantity.FormatCpu(CpuMillis));
        }
        if (MemoryBytes != 0)
        {
            Part("memory=" + Quantity.FormatBytes(MemoryBytes));
        }
        if (Gpus != 0)
        {
            Part("gpu=" + Gpus.ToString(CultureInfo.InvariantCulture));
        }
        if (_names is not null)
        {
            for (var i = 0; i < _names.Length; i++)
            {
                Part(_names[i] + "=" + _amounts![i].ToString(CultureInfo.InvariantCulture));
            }
        }
        return sb.ToString();
    }

    private static ResourceVector Combine(ResourceVector a, ResourceVector b, long sign)
    {
        string[]? names = null;
        long[]? amounts = null;
        if (a._names is not null || b._names is not null)
        {
            if (b._names is null)
            {
                (names, amounts) = (a._names, a._amounts);
            }
            else if (a._names is null && sign == 1)
            {
                (names, amounts) = (b._names, b._amounts);
            }
            else
            {
                (names, amounts) = Merge(a, b, (x, y) => x + sign * y);
            }
        }
        return new ResourceVector(a.CpuMillis + sign * b.CpuMillis, a.MemoryBytes + sign * b.MemoryBytes, a.Gpus + sign * b.Gpus, names, amounts);
    }

    private static ResourceVector Pick(ResourceVector a, ResourceVector b, Func<long, long, long> f)
    {
        string[]? names = null;
        long[]? amounts = null;
        if (a._names is not null || b._names is not null)
        {
            (names, amounts) = Merge(a, b, f);
        }
        return new ResourceVector(f(a.CpuMillis, b.CpuMillis), f(a.MemoryBytes, b.MemoryBytes), f(a.Gpus, b.Gpus), names, amounts);
    }

    private static (string[]?, long[]?) Merge(ResourceVector a, ResourceVector b, Func<long, long, long> f)
    {
        var an = a._names ?? [];
        var bn = b._names ?? [];
        var names = new List<string>(an.Length + bn.Length);
        var amounts = new List<long>(an.Length + bn.Length);
        int i = 0, j = 0;
        while (i < an.Length || j < bn.Length)
        {
            var cmp = i >= an.Length ? 1 : j >= bn.Length ? -1 : string.CompareOrdinal(an[i], bn[j]);
            string name;
            long value;
            if (cmp < 0)
            {
                (name, value) = (an[i], f(a._amounts![i], 0));
                i++;
            }
            else if (cmp > 0)
            {
                (name, value) = (bn[j], f(0, b._amounts![j]));
                j++;
            }
            else
            {
                (name, value) = (an[i], f(a._amounts![i], b._amounts![j]));
                i++;
                j++;
            }
            if (value != 0)
            {
                names.Add(name);
                amounts.Add(value);
            }
        }
        return names.Count == 0 ? (null, null) : (names.ToArray(), amounts.ToArray());
    }
}
