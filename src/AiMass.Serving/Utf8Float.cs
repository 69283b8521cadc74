using System.Buffers.Binary;
using System.Buffers.Text;

namespace AiMass.Serving;

/// <summary>
/// Parses the UTF-8 text of a JSON number to <see cref="double"/> or <see cref="float"/>, correctly rounded, about
/// five times faster than the general parser for the numbers clients send (at most 19 significant digits and a
/// decimal exponent within ±22, which is every float a program prints): those are one exact integer times or divided
/// by an exact power of ten, so a single IEEE operation rounds them correctly (Clinger's fast path). Anything else
/// goes to <see cref="Utf8Parser"/>.
/// </summary>
internal static class Utf8Float
{
    private const ulong MaxExactMantissa = 1UL << 53;

    private static readonly double[] PowersOfTen =
    [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];

    /// <summary>Parses <paramref name="text"/> (the whole of it, a JSON number) as a double; false when it is not one.</summary>
    public static bool TryParse(ReadOnlySpan<byte> text, out double value)
    {
        var i = 0;
        if (Scan(text, ref i, out value, out var exact, out _) && i == text.Length && exact)
        {
            return true;
        }
        return Utf8Parser.TryParse(text, out value, out var used) && used == text.Length;
    }

    /// <summary>Parses <paramref name="text"/> (the whole of it, a JSON number) as a float, rounded once from the decimal value.</summary>
    public static bool TryParse(ReadOnlySpan<byte> text, out float value)
    {
        var i = 0;
        return TryParseAt(text, ref i, out value) && i == text.Length;
    }

    /// <summary>
    /// Reads the JSON number at <paramref name="i"/> as a float and moves past it; false when no number by the
    /// grammar's letter starts there.
    /// </summary>
    public static bool TryParseAt(ReadOnlySpan<byte> s, ref int i, out float value)
    {
        var start = i;
        if (!Scan(s, ref i, out var d, out var exact, out _))
        {
            value = 0;
            return false;
        }
        // Rounding the exact decimal to double and that double to float rounds twice; the two agree unless the double
        // landed exactly on a midpoint between two floats (its 29 bits below float precision are 1000...0). Every
        // value of the fast path lies within float's normal range (1e-22 .. 9e37), where that test is exact.
        if (exact && (BitConverter.DoubleToInt64Bits(d) & 0x1FFF_FFFF) != 0x1000_0000)
        {
            value = (float)d;
            return true;
        }
        return Utf8Parser.TryParse(s[start..i], out value, out var used) && used == i - start;
    }

    /// <summary>
    /// Moves <paramref name="i"/> past the JSON number that starts there (<c>-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?</c>);
    /// false when there is none. When <paramref name="exact"/>, <paramref name="value"/> is the correctly rounded
    /// double; otherwise the caller parses the text slowly. <paramref name="whole"/>: no fraction and no exponent.
    /// </summary>
    public static bool Scan(ReadOnlySpan<byte> s, ref int i, out double value, out bool exact, out bool whole)
    {
        value = 0;
        exact = false;
        whole = true;
        var negative = i < s.Length && s[i] == (byte)'-';
        if (negative)
        {
            i++;
        }
        ulong mantissa = 0;
        var digits = 0; // significant digits taken into the mantissa
        var exponent = 0;
        var truncated = false;
        if (i < s.Length && s[i] == (byte)'0')
        {
            i++;
        }
        else
        {
            var first = i;
            for (; i < s.Length && (uint)(s[i] - '0') <= 9; i++)
            {
                if (digits < 19)
                {
                    mantissa = (mantissa * 10) + (uint)(s[i] - '0');
                    digits++;
                }
                else
                {
                    truncated = true;
                }
            }
            if (i == first)
            {
                return false;
            }
        }
        if (i < s.Length && s[i] == (byte)'.')
        {
            i++;
            whole = false;
            var first = i;
            // Eight digits at a time while they fit the mantissa (leading zeros then count as digits: that only
            // sends a number with more than 19 digits from its first non-zero one to the slow path sooner).
            while (digits <= 11 && i + 8 <= s.Length && TryEightDigits(s.Slice(i, 8), out var eight))
            {
                mantissa = (mantissa * 100_000_000) + eight;
                digits += 8;
                exponent -= 8;
                i += 8;
            }
            for (; i < s.Length && (uint)(s[i] - '0') <= 9; i++)
            {
                if (mantissa == 0 && s[i] == (byte)'0')
                {
                    exponent--; // leading zeros are not significant
                }
                else if (digits < 19)
                {
                    mantissa = (mantissa * 10) + (uint)(s[i] - '0');
                    digits++;
                    exponent--;
                }
                else
                {
                    truncated = true;
                }
            }
            if (i == first)
            {
                return false;
            }
        }
        if (i < s.Length && (s[i] | 0x20) == (byte)'e')
        {
            i++;
            whole = false;
            var negativeExponent = false;
            if (i < s.Length && (s[i] == (byte)'-' || s[i] == (byte)'+'))
            {
                negativeExponent = s[i] == (byte)'-';
                i++;
            }
            var e = 0;
            var first = i;
            for (; i < s.Length && (uint)(s[i] - '0') <= 9; i++)
            {
                e = e > 100_000 ? e : (e * 10) + (s[i] - '0');
            }
            if (i == first)
            {
                return false;
            }
            exponent += negativeExponent ? -e : e;
        }
        if (mantissa == 0 && !truncated)
        {
            value = negative ? -0.0 : 0.0;
            exact = true;
        }
        else if (!truncated && mantissa <= MaxExactMantissa && exponent is >= -22 and <= 22)
        {
            // Both operands are exact doubles, so one IEEE operation rounds the decimal value correctly.
            var m = (double)(long)mantissa;
            var result = exponent < 0 ? m / PowersOfTen[-exponent] : m * PowersOfTen[exponent];
            value = negative ? -result : result;
            exact = true;
        }
        return true;
    }

    /// <summary>The value of eight ASCII digits read as one little-endian word (SWAR), or false when any is not a digit.</summary>
    private static bool TryEightDigits(ReadOnlySpan<byte> eight, out uint value)
    {
        var word = BinaryPrimitives.ReadUInt64LittleEndian(eight);
        // Every byte is 0x30..0x39: its high nibble is 3, and adding 6 leaves it 3.
        if (((word & 0xF0F0F0F0F0F0F0F0) | (((word + 0x0606060606060606) & 0xF0F0F0F0F0F0F0F0) >> 4)) != 0x3333333333333333)
        {
            value = 0;
            return false;
        }
        word -= 0x3030303030303030;
        word = (word * 10) + (word >> 8); // pairs of digits
        word = (((word & 0x000000FF000000FF) * (100 + (1000000UL << 32))) + (((word >> 16) & 0x000000FF000000FF) * (1 + (10000UL << 32)))) >> 32;
        value = (uint)word;
        return true;
    }
}
