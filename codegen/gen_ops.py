#!/usr/bin/env python3
"""Writes the attribute indices and accessors of the op table.

    gen_ops.py OPS.def OUTPUT.h

Python 3 standard library only. Reads the MICA_OP(...) entries of
ir/ops.def (the one op table) and writes, for every attribute of every op,

  - an index:     MICA_ATTR_<OP>_<NAME>, its place in mica_node_t.attrs
  - an accessor:  mica_attr_<op>_<name>(n), typed by the attribute's kind
                  (i -> int64_t, f -> double, s -> const char *,
                  I -> const mica_attr_t *), asserting n->op is that op
  - the table:    MICA_OP_ATTR_TABLE, one {count, names, kinds} initializer
                  per op in ops.def order, so nothing is parsed at start-up

so C code addresses attributes by compile-time index, never by string. The
output depends on the input only (no timestamps); it fails, naming the
line, on an entry it cannot read, an unknown kind or too many attributes.
"""

import re
import sys

MAX_ATTRS = 4  # MICA_MAX_ATTRS in ir/ir.h
KINDS = {"i": ("int64_t", "i"), "f": ("double", "f"), "s": ("const char *", "s"),
         "I": ("const mica_attr_t *", None), "R": (None, None)}
CATEGORIES = ("BOUNDARY", "COMPUTE", "STATE", "MOVEMENT")

ENTRY = re.compile(r'^MICA_OP\(\s*(\w+)\s*,\s*"([a-z_0-9]+)"\s*,\s*(\w+)\s*,\s*(-?\d+)\s*,'
                   r'\s*"([^"]*)"\s*,\s*(0x[0-9a-fA-F]+)\s*,', re.M)


def fail(msg):
    sys.stderr.write("gen_ops.py: %s\n" % msg)
    sys.exit(1)


def read_ops(path):
    text = open(path, encoding="utf-8").read()
    starts = [m.start() for m in re.finditer(r"^MICA_OP\(", text, re.M)]
    ops = []
    for m in ENTRY.finditer(text):
        op_id, name, cat, _nin, spec, _mask = m.groups()
        line = text.count("\n", 0, m.start()) + 1
        if cat not in CATEGORIES:
            fail("%s:%d: %s has category %s (want one of %s)" % (path, line, op_id, cat,
                                                                  ", ".join(CATEGORIES)))
        attrs = []
        for item in filter(None, spec.split(",")):
            if not re.fullmatch(r"[a-z_][a-z_0-9]*:[a-zA-Z]", item):
                fail("%s:%d: %s: bad attribute '%s'" % (path, line, op_id, item))
            aname, kind = item.split(":")
            if kind not in KINDS:
                fail("%s:%d: %s: attribute %s has unknown kind %s" % (path, line, op_id, aname, kind))
            attrs.append((aname, kind))
        if len(attrs) > MAX_ATTRS:
            fail("%s:%d: %s has %d attributes (at most %d)" % (path, line, op_id, len(attrs), MAX_ATTRS))
        ops.append((op_id, attrs))
    if len(ops) != len(starts):
        fail("%s: read %d of %d MICA_OP entries" % (path, len(ops), len(starts)))
    return ops


def render(ops, src_name):
    # The banner, spelt in two pieces so this script is not taken for output.
    out = ["/* generated " "by codegen/gen_ops.py from %s, do not edit */" % src_name,
           "#ifndef MICA_OP_ATTRS_H", "#define MICA_OP_ATTRS_H", "", "#include <assert.h>", "",
           "/* Attribute indices into mica_node_t.attrs. */"]
    for op_id, attrs in ops:
        for k, (aname, _) in enumerate(attrs):
            out.append("#define MICA_ATTR_%s_%s %d" % (op_id, aname.upper(), k))
    out += ["", "/* Per-op attribute specs in ops.def order: {count, names, kinds}. */",
            "#define MICA_OP_ATTR_TABLE \\"]
    rows = []
    for op_id, attrs in ops:
        names = ", ".join('"%s"' % a for a, _ in attrs) or "0"
        kinds = ", ".join("'%s'" % k for _, k in attrs) or "0"
        rows.append("    {%d, {%s}, {%s}}" % (len(attrs), names, kinds))
    out.append(", \\\n".join(rows))
    out += ["", "/* Typed accessors; each asserts the node is of its op. */"]
    for op_id, attrs in ops:
        for k, (aname, kind) in enumerate(attrs):
            ctype, member = KINDS[kind]
            if ctype is None:
                continue  # regions live in mica_node_t.regions
            fn = "mica_attr_%s_%s" % (op_id.lower(), aname)
            value = "n->attrs[%d].%s" % (k, member) if member else "&n->attrs[%d]" % k
            out.append("static inline %s%s%s(const mica_node_t *n)" %
                       (ctype, "" if ctype.endswith("*") else " ", fn))
            out.append("{")
            out.append("    assert(n->op == MICA_OP_%s);" % op_id)
            out.append("    return %s;" % value)
            out.append("}")
    out += ["", "#endif", ""]
    return "\n".join(out)


def main():
    if len(sys.argv) != 3:
        fail("usage: gen_ops.py OPS.def OUTPUT.h")
    text = render(read_ops(sys.argv[1]), "ir/ops.def")
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
