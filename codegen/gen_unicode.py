#!/usr/bin/env python3
"""Writes the Unicode class table the tokenizer's pre-tokenizers use.

    gen_unicode.py DATA.txt OUTPUT.c          (the build)
    gen_unicode.py --write-data DATA.txt [MODULE]   (re-pinning, by hand)

The build reads the Unicode data from DATA.txt, a file committed beside
this script (codegen/unicode-data.txt), never from the Python that runs
it: every build machine tokenizes the same way. That file holds one
Unicode version's General_Category of every code point (as runs) and its
White_Space code points, the only Unicode facts the tokenizer uses; its
header names the version and where it came from. The output depends on
nothing else: two runs give the same bytes.

--write-data derives such a file from a unicodedata module (MODULE, by
default the standard library's; `unicodedata2`, a build of the same module
on a newer UCD, gives other versions) and checks there that no code point
above U+007F lowercases to one of the letters the contractions compare
with (so the tokenizer needs no case table). Python 3 standard library only
in either mode.

One table, `mica_tok_uclass_ranges`: sorted entries `(start << 9) | flags`,
each giving the flags of the code points from `start` up to the next
entry's start; the last entry starts at 0x110000 (flags 0). The flags are
one general-category bit (as llama.cpp's unicode tables group them) plus a
White_Space bit. `mica_tok_uclass_ascii` repeats the first 128 for a fast
path. The bit values must match runtime/tok_internal.h.
"""

import importlib
import sys

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


# ---- --write-data: the data file from a unicodedata module ----

def is_white_space(cp):
    """Unicode's White_Space property. str.isspace() also counts
    U+001C..U+001F (bidi class B/S), which White_Space does not. (The
    property has not changed since Unicode 6.3, so the interpreter's own
    database gives it for any later version.)"""
    return chr(cp).isspace() and not 0x1C <= cp <= 0x1F


def check_lowercase_not_needed():
    """The only case folding the pre-tokenizers do is in the contractions
    ('s 't 're 've 'm 'll 'd): they lower the letter after the apostrophe and
    compare it with ASCII. That needs a table only if some non-ASCII code
    point lowercases to one of those letters."""
    for cp in range(0x80, MAX_CODEPOINT):
        low = chr(cp).lower()
        if low and low[0] in "stmdrevl" and len(low) == 1:
            sys.exit("gen_unicode.py: U+%04X lowercases to '%s': the tokenizer needs a "
                     "lowercase table" % (cp, low))


def runs(values):
    """(first, last, value) for each run of equal values."""
    out = []
    start = 0
    for cp in range(1, MAX_CODEPOINT + 1):
        if cp == MAX_CODEPOINT or values[cp] != values[start]:
            out.append((start, cp - 1, values[start]))
            start = cp
    return out


def span(first, last):
    return "%04X" % first if first == last else "%04X..%04X" % (first, last)


def write_data(path, module_name):
    ucd = importlib.import_module(module_name)
    check_lowercase_not_needed()
    cats = [ucd.category(chr(cp)) for cp in range(MAX_CODEPOINT)]
    ws = [is_white_space(cp) for cp in range(MAX_CODEPOINT)]
    lines = [
        "# The Unicode data of mica's tokenizer: the General_Category of every code",
        "# point (runs FIRST..LAST CATEGORY, together covering 0000..10FFFF in order)",
        "# and the White_Space code points (FIRST..LAST White_Space), of Unicode %s."
        % ucd.unidata_version,
        "# Derived from the Unicode Character Database %s: the categories of its"
        % ucd.unidata_version,
        "# UnicodeData.txt as the Python module '%s' %s compiles them, White_Space"
        % (module_name, getattr(ucd, "__version__", ucd.unidata_version)),
        "# (PropList.txt; unchanged since Unicode 6.3) as str.isspace() less U+001C..U+001F;",
        "# by 'codegen/gen_unicode.py --write-data'. Read by gen_unicode.py at build time.",
        "version %s" % ucd.unidata_version,
    ]
    for first, last, cat in runs(cats):
        lines.append("%s %s" % (span(first, last), cat))
    for first, last, flag in runs(ws):
        if flag:
            lines.append("%s White_Space" % span(first, last))
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


# ---- the build: tables from the data file ----

def read_data(path):
    """The version and the per-code-point flags of a data file; exits with
    "FILE:LINE: problem" on anything malformed."""
    version = None
    flags = [None] * MAX_CODEPOINT
    next_cp = 0
    with open(path, encoding="ascii") as fh:
        for no, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue

            def bad(why):
                sys.exit("%s:%d: %s" % (path, no, why))
            fields = line.split()
            if len(fields) != 2:
                bad("want 'FIRST..LAST VALUE', got '%s'" % line)
            if fields[0] == "version":
                version = fields[1]
                continue
            try:
                ends = [int(x, 16) for x in fields[0].split("..")]
            except ValueError:
                bad("bad code point range '%s'" % fields[0])
            first, last = ends[0], ends[-1]
            if len(ends) > 2 or first > last or last >= MAX_CODEPOINT:
                bad("bad code point range '%s'" % fields[0])
            if fields[1] == "White_Space":
                for cp in range(first, last + 1):
                    if flags[cp] is None:
                        bad("White_Space before the category of U+%04X" % cp)
                    flags[cp] |= WHITESPACE
                continue
            if fields[1] not in CATEGORY_FLAG:
                bad("unknown general category '%s'" % fields[1])
            if first != next_cp:
                bad("category runs must cover the code points in order: U+%04X expected"
                    % next_cp)
            for cp in range(first, last + 1):
                flags[cp] = CATEGORY_FLAG[fields[1]]
            next_cp = last + 1
    if version is None:
        sys.exit("%s: no 'version' line" % path)
    if next_cp != MAX_CODEPOINT:
        sys.exit("%s: the categories stop at U+%04X, not at U+10FFFF" % (path, next_cp - 1))
    return version, flags


def write_tables(data_path, out_path):
    version, flags = read_data(data_path)
    ranges = []  # (start, flags)
    prev = None
    for cp in range(MAX_CODEPOINT):
        if flags[cp] != prev:
            ranges.append((cp, flags[cp]))
            prev = flags[cp]
    ranges.append((MAX_CODEPOINT, 0))

    out = []
    # The banner every generated file opens with (spelt in two pieces so
    # that this script is not itself taken for generated output).
    out.append("/* generated " "by codegen/gen_unicode.py, do not edit; Unicode %s from %s */"
               % (version, data_path.replace("\\", "/").split("/")[-1]))
    out.append("#include \"tok_internal.h\"")
    out.append("")
    out.append("const char mica_tok_unicode_version[] = \"%s\";" % version)
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
        out.append("    " + " ".join("0x%03X," % f for f in flags[i:i + 16]))
    out.append("};")
    text = "\n".join(out) + "\n"

    with open(out_path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)


def main():
    args = sys.argv[1:]
    if len(args) in (2, 3) and args[0] == "--write-data":
        write_data(args[1], args[2] if len(args) == 3 else "unicodedata")
    elif len(args) == 2 and not args[0].startswith("-"):
        write_tables(args[0], args[1])
    else:
        sys.exit("usage: gen_unicode.py DATA.txt OUTPUT.c | gen_unicode.py --write-data "
                 "DATA.txt [MODULE]")


if __name__ == "__main__":
    main()
