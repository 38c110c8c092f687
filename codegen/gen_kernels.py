#!/usr/bin/env python3
"""Writes every generated kernel variant, one C file per ISA, and the lists.

    gen_kernels.py OUTDIR [EXTRA_FILE...]

Python 3 standard library only. The kernel families live in
codegen/kernels/fam_*.py; the ISAs (the dialect table) in
codegen/kernels/isa.py. Each family module defines

    FAMILIES: list of family names it provides, e.g. ["qgemv_u4", "qgemm_u4"]
    PROTOS:   {family: "void NAME(...)"}, the one C signature of the family,
              with NAME where the variant's name goes
    def generate(isa) -> list of (variant, c_text)
        isa is one entry of isa.ISAS; variant is a dict with at least
        "family" and "name" (mica_k_<dtype>_<op>_<tile>__<isa>, as XNNPACK
        names ukernels) and optionally "params" (a short "k=v,k=v" string);
        c_text defines the function (non-static) and any static helpers it
        needs, whose names must carry the variant's or the module's prefix.
    HELPERS (optional): C text of static inline helpers shared by the
              module's variants on every ISA, emitted once per ISA file.

and must provide every family it lists for every ISA. The driver writes

    OUTDIR/mica_kernels.h       prototypes of every variant + common helpers
    OUTDIR/kernels_<isa>.c      the variants of one ISA (built with its cflags)
    OUTDIR/kernel_list.inc      MICA_KERNEL(family, name, isa, params) per variant
    OUTDIR/kernel_sources.inc   {"file", "text"} of the two kinds above, for
                                `mica compile` to write into artifacts,
                                with each EXTRA_FILE (the ABI header)

The output depends on the inputs only (sorted, no timestamps). Generated
code calls no libc function but memcpy and memset: it is linked into model
objects that have no DT_NEEDED entries.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "kernels"))
import isa as isa_table  # noqa: E402

BANNER = "generated " "by codegen/gen_kernels.py, do not edit"

COMMON = r"""
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* IEEE half <-> single, exact, without libc or F16C. */
static inline float mica_k_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
"""


def fail(msg):
    sys.stderr.write("gen_kernels.py: %s\n" % msg)
    sys.exit(1)


def load_families():
    mods = []
    kdir = os.path.join(HERE, "kernels")
    for fn in sorted(os.listdir(kdir)):
        if fn.startswith("fam_") and fn.endswith(".py"):
            spec = importlib.util.spec_from_file_location(fn[:-3], os.path.join(kdir, fn))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            for attr in ("FAMILIES", "PROTOS", "generate"):
                if not hasattr(mod, attr):
                    fail("%s defines no %s" % (fn, attr))
            mods.append((fn, mod))
    return mods


def c_string(text):
    out = []
    for line in text.splitlines(True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.append('"%s"' % esc)
    return "\n".join(out) if out else '""'


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    if len(sys.argv) < 2:
        fail("usage: gen_kernels.py OUTDIR [EXTRA_FILE...]")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    mods = load_families()
    protos, listing, files = [], [], {}
    seen_fam = {}
    for fn, mod in mods:
        for fam in mod.FAMILIES:
            if fam in seen_fam:
                fail("family %s in both %s and %s" % (fam, seen_fam[fam], fn))
            if fam not in mod.PROTOS:
                fail("%s: family %s has no prototype" % (fn, fam))
            seen_fam[fam] = fn
    for isa in isa_table.ISAS:
        parts = ["/* %s: ISA %s, cflags \"%s\", tile %s (hp %d, lp %d) */\n" %
                 (BANNER, isa["name"], isa["cflags"], isa["tile"], isa["hp"], isa["lp"]),
                 '#include "mica_kernels.h"\n']
        if isa["header"]:
            parts.append("#include <%s>\n" % isa["header"])
        for fn, mod in mods:
            helpers = getattr(mod, "HELPERS", None)
            if callable(helpers):
                helpers = helpers(isa)
            if helpers:
                parts.append("\n/* --- %s helpers --- */\n%s" % (fn, helpers))
            got = {}
            for variant, text in mod.generate(isa):
                fam, name = variant["family"], variant["name"]
                if fam not in mod.FAMILIES:
                    fail("%s: variant %s of unknown family %s" % (fn, name, fam))
                if not name.endswith("__" + isa["name"]):
                    fail("%s: variant %s does not end in __%s" % (fn, name, isa["name"]))
                got.setdefault(fam, []).append(name)
                protos.append(mod.PROTOS[fam].replace("NAME", name) + ";")
                listing.append('MICA_KERNEL(%s, %s, %s, "%s")' %
                               (fam, name, isa["name"], variant.get("params", "")))
                parts.append("\n/* --- %s --- */\n%s" % (name, text))
            for fam in mod.FAMILIES:
                if fam not in got:
                    fail("%s gives no %s for ISA %s" % (fn, fam, isa["name"]))
        files["kernels_%s.c" % isa["name"]] = "".join(parts)
    names = [l.split(",")[1] for l in listing]
    if len(set(names)) != len(names):
        fail("two variants share a name")
    header = ("/* %s */\n#ifndef MICA_KERNELS_H\n#define MICA_KERNELS_H\n%s\n%s\n\n#endif\n" %
              (BANNER, COMMON, "\n".join(protos)))
    files["mica_kernels.h"] = header
    for name, text in files.items():
        if name.startswith("kernels_") or name == "mica_kernels.h":
            write(os.path.join(out, name), text)
    write(os.path.join(out, "kernel_list.inc"),
          "/* %s: MICA_KERNEL(family, name, isa, params) for every variant */\n%s\n" %
          (BANNER, "\n".join(listing)))
    for extra in sys.argv[2:]:
        with open(extra, encoding="utf-8") as f:
            files[os.path.basename(extra)] = f.read()
    src = ["/* %s: the generated kernel sources, for mica compile to write */" % BANNER]
    for name in sorted(files):
        src.append('{"%s",\n%s},' % (name, c_string(files[name])))
    write(os.path.join(out, "kernel_sources.inc"), "\n".join(src) + "\n")


if __name__ == "__main__":
    main()
