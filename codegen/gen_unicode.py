#!/usr/bin/env python3
"""Writes the Unicode class table the tokenizer's pre-tokenizers use.

    gen_unicode.py OUTPUT.c

Python 3 standard library only; the data comes from `unicodedata`, so the
table follows the Unicode version of the Python that runs the build (named
on the first line of the output). The output depends on nothing else: two
runs with the same Python give the same bytes.

One table, `mica_tok_uclass_ranges`: sorted entries `(start << 9) | flags`,
each giving the flags of the code points from `start` up to the next
entry's start; the last entry starts at 0x110000 (flags 0). The flags are
one general-category bit (as llama.cpp's unicode tables group them) plus a
White_Space bit. `mica_tok_uclass_ascii` repeats the first 128 for a fast
path. The bit values must match runtime/tok_internal.h.
"""

import sys
import unicodedata

MAX_CODEPOINT = 0x110000

# Bits, as in runtime/tok_internal.h (MICA_TOK_U_*).
UNDEFINED = 0x001   # Cn, unassigned
NUMBER = 0x002      # N*
LETTER = 0x004      # L*
SEPARATOR = 0x008   # Z*
MARK = 0x010        # M*
PUNCT = 0x020       # P*
SYMBOL = 0x040      # S*
CONTROL = 0x080     # Cc Cf Co Cs
WHITESPACE = 0x100  # the White_Space property

CATEGORY_FLAG = {
    "Cn": UNDEFINED,
    "Cc": CONTROL, "Cf": CONTROL, "Co": CONTROL, "Cs": CONTROL,
    "Ll": LETTER, "Lm": LETTER, "Lo": LETTER, "Lt": LETTER, "Lu": LETTER,
    "Mc": MARK, "Me": MARK, "Mn": MARK,
    "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER,
    "Pc": PUNCT, "Pd": PUNCT, "Pe": PUNCT, "Pf": PUNCT, "Pi": PUNCT, "Po": PUNCT, "Ps": PUNCT,
    "Sc": SYMBOL, "Sk": SYMBOL, "Sm": SYMBOL, "So": SYMBOL,
    "Zl": SEPARATOR, "Zp": SEPARATOR, "Zs": SEPARATOR,
}


def is_white_space(cp):
    """Unicode's White_Space property. Python's str.isspace() also counts
    U+001C..U+001F (bidi class B/S), which White_Space does not."""
    return chr(cp).isspace() and not 0x1C <= cp <= 0x1F


def flags_of(cp):
    f = CATEGORY_FLAG[unicodedata.category(chr(cp))]
    if is_white_space(cp):
        f |= WHITESPACE
    return f


def check_lowercase_not_needed():
    """The only case folding the pre-tokenizers do is in the contractions
    ('s 't 're 've 'm 'll 'd): they lower the letter after the apostrophe and
    compare it with ASCII. That needs a table only if some non-ASCII code
    point lowercases to one of those letters; fail the build if one does."""
    for cp in range(0x80, MAX_CODEPOINT):
        low = chr(cp).lower()
        if low and low[0] in "stmdrevl" and len(low) == 1:
            sys.exit("gen_unicode.py: U+%04X lowercases to '%s': the tokenizer needs a "
                     "lowercase table" % (cp, low))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_unicode.py OUTPUT.c")
    check_lowercase_not_needed()

    ranges = []  # (start, flags)
    prev = None
    ascii_flags = []
    for cp in range(MAX_CODEPOINT):
        f = flags_of(cp)
        if cp < 0x80:
            ascii_flags.append(f)
        if f != prev:
            ranges.append((cp, f))
            prev = f
    ranges.append((MAX_CODEPOINT, 0))

    out = []
    # The banner every generated file opens with (spelt in two pieces so
    # that this script is not itself taken for generated output).
    out.append("/* generated " "by codegen/gen_unicode.py, do not edit; unicodedata %s */"
               % unicodedata.unidata_version)
    out.append("#include \"tok_internal.h\"")
    out.append("")
    out.append("const char mica_tok_unicode_version[] = \"%s\";" % unicodedata.unidata_version)
    out.append("")
    out.append("/* (start << 9) | flags, sorted; the last entry is the end (0x110000). */")
    out.append("const uint32_t mica_tok_uclass_ranges[] = {")
    line = "   "
    for start, f in ranges:
        item = " 0x%08Xu," % ((start << 9) | f)
        if len(line) + len(item) > 96:
            out.append(line)
            line = "   "
        line += item
    out.append(line)
    out.append("};")
    out.append("const size_t mica_tok_uclass_range_count = %d;" % len(ranges))
    out.append("")
    out.append("const uint16_t mica_tok_uclass_ascii[128] = {")
    for i in range(0, 128, 16):
        out.append("    " + " ".join("0x%03X," % f for f in ascii_flags[i:i + 16]))
    out.append("};")
    text = "\n".join(out) + "\n"

    with open(sys.argv[1], "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
