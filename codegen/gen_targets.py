#!/usr/bin/env python3
"""Writes the C table of mica's targets from codegen/targets.json.

    gen_targets.py TARGETS.json OUTPUT.inc

Python 3 standard library only. The output is an include file for
runtime/target.c: the feature names, the tile table and one mica_target_t
initializer per target, in the order of the JSON, plus static assertions
that runtime/target.h's feature enum matches the JSON's feature list. The
output depends only on the JSON (its SHA-256 is in the banner): two runs
give the same bytes.

The JSON is validated first; a bad file (unknown feature, tile or arch,
missing or unknown field, wrong type, a value out of range, a string too
long for its C array) stops the build with "FILE: targets[i] (NAME): what is
wrong". The limits here must match runtime/target.h.
"""

import hashlib
import json
import sys

NAME_MAX = 32       # MICA_TARGET_NAME_MAX, with the NUL
SUMMARY_MAX = 128   # MICA_TARGET_SUMMARY_MAX
CC_MAX = 64         # MICA_TARGET_CC_MAX
CFLAGS_MAX = 192    # MICA_TARGET_CFLAGS_MAX
TILE_NAME_MAX = 16
TILE_INSN_MAX = 32
OPENCL_C_MAX = 8
MAX_CLUSTERS = 8    # MICA_TARGET_MAX_CLUSTERS

ARCHES = {"x86_64": "MICA_TARGET_ARCH_X86_64", "aarch64": "MICA_TARGET_ARCH_AARCH64",
          "opencl": "MICA_TARGET_ARCH_OPENCL"}

# Fields of a target: the CPU part (absent when detected) and the rest.
CPU_FIELDS = ("arch", "features", "clusters", "cache", "vector", "cc", "cflags", "tile",
              "dram_budget")
COMMON_FIELDS = ("name", "summary", "prefill_chunk", "bandwidth_gbs", "int8_gops", "gpu",
                 "source")
GPU_FIELDS = ("name", "opencl_c", "fp16", "int_dot", "work_group", "compute_units",
              "peak_gops")


class Invalid(Exception):
    pass


def need(cond, where, msg):
    if not cond:
        raise Invalid("%s: %s" % (where, msg))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def check_str(obj, key, cap, where):
    v = obj.get(key)
    need(isinstance(v, str) and v, where, "'%s' must be a non-empty string" % key)
    need(len(v.encode("utf-8")) < cap, where, "'%s' is longer than %d bytes" % (key, cap - 1))
    need(all(32 <= ord(c) < 127 for c in v), where, "'%s' must be printable ASCII" % key)
    return v


def check_int(obj, key, lo, hi, where):
    v = obj.get(key)
    need(is_int(v) and lo <= v <= hi, where, "'%s' must be an integer in [%d, %d]" % (key, lo, hi))
    return v


def check_num(obj, key, lo, hi, where, lo_open=False):
    v = obj.get(key)
    ok = is_num(v) and (lo < v if lo_open else lo <= v) and v <= hi
    need(ok, where, "'%s' must be a number in %s%g, %g]" % (key, "(" if lo_open else "[", lo, hi))
    return float(v)


def check_keys(obj, allowed, required, where):
    need(isinstance(obj, dict), where, "must be an object")
    for k in sorted(obj):
        need(k in allowed, where, "unknown field '%s'" % k)
    for k in required:
        need(k in obj, where, "missing field '%s'" % k)


def feature_bits(names, features, where, arch=None):
    need(isinstance(names, list), where, "features must be a list of names")
    bits = 0
    for n in names:
        need(n in features, where, "unknown feature '%s' (known: %s)" %
             (n, ", ".join(features)))
        f = features[n]
        need(arch is None or f["arch"] == arch, where,
             "feature '%s' is %s, not %s" % (n, f["arch"], arch))
        need(not bits & (1 << f["bit"]), where, "feature '%s' given twice" % n)
        bits |= 1 << f["bit"]
    return bits


def validate(doc):
    check_keys(doc, {"comment", "features", "tiles", "targets"}, ("features", "tiles", "targets"),
               "top level")

    features = {}
    need(isinstance(doc["features"], list) and doc["features"], "features", "must be a list")
    need(len(doc["features"]) <= 64, "features", "more than 64 (they are bits of a uint64_t)")
    for i, f in enumerate(doc["features"]):
        where = "features[%d]" % i
        check_keys(f, {"name", "arch", "requires", "summary"}, ("name", "arch", "requires", "summary"),
                   where)
        name = check_str(f, "name", NAME_MAX, where)
        need(name.replace("_", "").isalnum() and name == name.lower(), where,
             "name '%s' must be lower-case letters, digits or _" % name)
        need(name not in features, where, "feature '%s' declared twice" % name)
        need(f["arch"] in ("x86_64", "aarch64"), where, "arch must be x86_64 or aarch64")
        check_str(f, "summary", 200, where)
        features[name] = {"bit": i, "arch": f["arch"], "requires": f["requires"]}
    for name, f in features.items():
        feature_bits(f["requires"], features, "feature '%s' requires" % name, f["arch"])

    tiles = {}
    need(isinstance(doc["tiles"], list) and doc["tiles"], "tiles", "must be a list")
    for i, t in enumerate(doc["tiles"]):
        where = "tiles[%d]" % i
        keys = ("name", "arch", "instruction", "needs", "ep", "hp", "lp", "comment")
        check_keys(t, set(keys), keys, where)
        name = check_str(t, "name", TILE_NAME_MAX, where)
        where = "tiles[%d] (%s)" % (i, name)
        need(name not in tiles, where, "tile declared twice")
        check_str(t, "instruction", TILE_INSN_MAX, where)
        need(t["arch"] in ("x86_64", "aarch64", "any"), where, "arch must be x86_64, aarch64 or any")
        arch = None if t["arch"] == "any" else t["arch"]
        needs = feature_bits(t["needs"], features, where, arch)
        for k in ("ep", "hp", "lp"):
            check_int(t, k, 1, 256, where)
        tiles[name] = dict(t, needs_bits=needs, index=i)
    need(not tiles[doc["tiles"][-1]["name"]]["needs_bits"], "tiles",
         "the last tile must need no feature (the fallback for detected CPUs)")

    targets = []
    names = set()
    need(isinstance(doc["targets"], list) and doc["targets"], "targets", "must be a list")
    for i, t in enumerate(doc["targets"]):
        where = "targets[%d]" % i
        need(isinstance(t, dict), where, "must be an object")
        name = check_str(t, "name", NAME_MAX, where)
        where = "targets[%d] (%s)" % (i, name)
        need(name not in names, where, "target declared twice")
        names.add(name)
        detect = t.get("detect", False)
        need(isinstance(detect, bool), where, "'detect' must be true or false")
        allowed = set(CPU_FIELDS + COMMON_FIELDS + ("detect",))
        if detect:
            # The CPU part comes from the running machine; only an OpenCL
            # target names its arch.
            check_keys(t, set(COMMON_FIELDS + ("detect", "arch")), COMMON_FIELDS, where)
            need(t.get("arch", "opencl") == "opencl", where,
                 "a detected target's arch is the host's; only 'opencl' may be given")
        else:
            check_keys(t, allowed, CPU_FIELDS + COMMON_FIELDS, where)
        check_str(t, "summary", SUMMARY_MAX, where)
        check_str(t, "source", 2000, where)
        out = {"name": name, "summary": t["summary"], "detect": detect,
               "arch": t.get("arch"), "cpu_arch": None, "features": 0, "clusters": [],
               "cache": (0, 0, 0), "vector": (0, 0), "cc": "", "cflags": "", "tile": None,
               "dram_budget": 0}
        if "arch" in t:
            need(t["arch"] in ARCHES, where, "unknown arch '%s' (known: %s)" %
                 (t["arch"], ", ".join(ARCHES)))
        if not detect:
            need(t["arch"] != "opencl", where,
                 "an opencl target takes its CPU part from the host: set \"detect\": true")
            arch = out["cpu_arch"] = t["arch"]
            out["features"] = feature_bits(t["features"], features, where, arch)
            for fname in t["features"]:
                for r in features[fname]["requires"]:
                    need(r in t["features"], where, "feature '%s' requires '%s'" % (fname, r))
            cl = t["clusters"]
            need(isinstance(cl, list) and 1 <= len(cl) <= MAX_CLUSTERS, where,
                 "clusters must be a list of 1 to %d" % MAX_CLUSTERS)
            prev = None
            for j, c in enumerate(cl):
                cw = "%s clusters[%d]" % (where, j)
                check_keys(c, {"name", "count", "capacity"}, ("name", "count", "capacity"), cw)
                check_str(c, "name", NAME_MAX, cw)
                check_int(c, "count", 1, 1024, cw)
                cap = check_num(c, "capacity", 0.0, 1.0, cw, lo_open=True)
                need(j > 0 or cap == 1.0, cw, "the first (fastest) cluster must have capacity 1.0")
                need(prev is None or cap <= prev, cw, "clusters must be listed fastest first")
                prev = cap
                out["clusters"].append((c["name"], c["count"], cap))
            cw = where + " cache"
            check_keys(t["cache"], {"l1d", "l2", "l3"}, ("l1d", "l2", "l3"), cw)
            out["cache"] = tuple(check_int(t["cache"], k, 0, 1 << 40, cw) for k in ("l1d", "l2", "l3"))
            vw = where + " vector"
            check_keys(t["vector"], {"registers", "bits"}, ("registers", "bits"), vw)
            out["vector"] = (check_int(t["vector"], "registers", 1, 256, vw),
                             check_int(t["vector"], "bits", 64, 4096, vw))
            out["cc"] = check_str(t, "cc", CC_MAX, where)
            out["cflags"] = check_str(t, "cflags", CFLAGS_MAX, where)
            need(t["tile"] in tiles, where, "unknown tile '%s' (known: %s)" %
                 (t["tile"], ", ".join(tiles)))
            tile = tiles[t["tile"]]
            need(tile["arch"] in ("any", arch), where, "tile '%s' is for %s" % (tile["name"], tile["arch"]))
            need(tile["needs_bits"] & ~out["features"] == 0, where,
                 "tile '%s' needs features the target lacks" % tile["name"])
            out["tile"] = tile
            out["dram_budget"] = check_int(t, "dram_budget", 1 << 20, 1 << 50, where)
        out["prefill_chunk"] = check_int(t, "prefill_chunk", 1, 1 << 20, where)
        out["bandwidth_gbs"] = check_num(t, "bandwidth_gbs", 0.0, 1e6, where, lo_open=True)
        out["int8_gops"] = check_num(t, "int8_gops", 0.0, 1e7, where, lo_open=True)
        g = t["gpu"]
        need(g is not None or t.get("arch") != "opencl", where,
             "an opencl target needs a gpu profile")
        if g is not None:
            gw = where + " gpu"
            check_keys(g, set(GPU_FIELDS), GPU_FIELDS, gw)
            check_str(g, "name", NAME_MAX, gw)
            check_str(g, "opencl_c", OPENCL_C_MAX, gw)
            for k in ("fp16", "int_dot"):
                need(isinstance(g[k], bool), gw, "'%s' must be true or false" % k)
            check_int(g, "work_group", 1, 4096, gw)
            check_int(g, "compute_units", 0, 4096, gw)
            check_num(g, "peak_gops", 0.0, 1e8, gw, lo_open=True)
        out["gpu"] = g
        targets.append(out)
    host = [t for t in targets if t["name"] == "host"]
    need(host and host[0]["detect"], "targets", "a target 'host' with \"detect\": true is required")
    return doc["features"], doc["tiles"], tiles, targets


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def c_double(v):
    return repr(float(v))


def c_float(v):
    return repr(float(v)) + "f"


def c_bits(bits, feature_list):
    if not bits:
        return "0"
    return " | ".join("MICA_TARGET_FEATURE_BIT(%s)" % enum_name(f["name"])
                      for i, f in enumerate(feature_list) if bits & (1 << i))


def enum_name(feature):
    return "MICA_TARGET_FEATURE_" + feature.upper()


def c_tile(t, feature_list):
    return ("{%s, %s, %d, %d, %d, %s}" %
            (c_str(t["name"]), c_str(t["instruction"]), t["ep"], t["hp"], t["lp"],
             c_bits(t["needs_bits"], feature_list)))


def render(feature_list, tile_list, tiles, targets, digest):
    out = []
    # The banner every generated file opens with (spelt in two pieces so
    # that this script is not itself taken for generated output).
    out.append("/* generated " "by codegen/gen_targets.py, do not edit; from codegen/targets.json, "
               "sha256 %s */" % digest)
    out.append("")
    out.append("/* The feature enum of runtime/target.h must follow the JSON's list. */")
    for i, f in enumerate(feature_list):
        out.append("_Static_assert(%s == %d, \"runtime/target.h disagrees with codegen/targets.json "
                   "on feature %s\");" % (enum_name(f["name"]), i, f["name"]))
    out.append("_Static_assert(MICA_TARGET_FEATURE_COUNT == %d, \"runtime/target.h and "
               "codegen/targets.json list different features\");" % len(feature_list))
    out.append("")
    out.append("static const char *const target_feature_names[MICA_TARGET_FEATURE_COUNT] = {")
    for f in feature_list:
        out.append("    %s," % c_str(f["name"]))
    out.append("};")
    out.append("")
    out.append("/* In order of preference for a detected CPU; the last needs nothing. */")
    out.append("static const struct {")
    out.append("    mica_target_arch_t arch; /* NONE: any */")
    out.append("    mica_target_tile_t tile;")
    out.append("} target_tiles[] = {")
    for t in tile_list:
        tt = tiles[t["name"]]
        out.append("    {%s, %s}," % (ARCHES.get(t["arch"], "MICA_TARGET_ARCH_NONE"),
                                      c_tile(tt, feature_list)))
    out.append("};")
    out.append("")
    out.append("static const mica_target_t target_table[] = {")
    for t in targets:
        arch = ARCHES[t["arch"]] if t["arch"] else "MICA_TARGET_ARCH_NONE"
        cpu_arch = ARCHES[t["cpu_arch"]] if t["cpu_arch"] else "MICA_TARGET_ARCH_NONE"
        out.append("    {")
        out.append("        .name = %s," % c_str(t["name"]))
        out.append("        .summary = %s," % c_str(t["summary"]))
        out.append("        .arch = %s," % arch)
        out.append("        .cpu_arch = %s," % cpu_arch)
        out.append("        .detect = %s," % ("true" if t["detect"] else "false"))
        out.append("        .features = %s," % c_bits(t["features"], feature_list))
        out.append("        .n_clusters = %d," % len(t["clusters"]))
        if t["clusters"]:
            out.append("        .clusters = {")
            for name, count, cap in t["clusters"]:
                out.append("            {%s, %d, %s}," % (c_str(name), count, c_float(cap)))
            out.append("        },")
        out.append("        .l1d_bytes = %d," % t["cache"][0])
        out.append("        .l2_bytes = %d," % t["cache"][1])
        out.append("        .l3_bytes = %d," % t["cache"][2])
        out.append("        .vector_registers = %d," % t["vector"][0])
        out.append("        .vector_bits = %d," % t["vector"][1])
        out.append("        .cc = %s," % c_str(t["cc"]))
        out.append("        .cflags = %s," % c_str(t["cflags"]))
        if t["tile"]:
            out.append("        .tile = %s," % c_tile(t["tile"], feature_list))
        out.append("        .prefill_chunk = %d," % t["prefill_chunk"])
        out.append("        .bandwidth_gbs = %s," % c_double(t["bandwidth_gbs"]))
        out.append("        .int8_gops = %s," % c_double(t["int8_gops"]))
        out.append("        .dram_budget_bytes = INT64_C(%d)," % t["dram_budget"])
        g = t["gpu"]
        if g:
            out.append("        .gpu = {true, %s, %s, %s, %s, %d, %d, %s}," %
                       (c_str(g["name"]), c_str(g["opencl_c"]), "true" if g["fp16"] else "false",
                        "true" if g["int_dot"] else "false", g["work_group"], g["compute_units"],
                        c_double(g["peak_gops"])))
        out.append("    },")
    out.append("};")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_targets.py TARGETS.json OUTPUT.inc")
    src, dst = sys.argv[1], sys.argv[2]
    try:
        with open(src, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        sys.exit("%s: cannot read: %s" % (src, e.strerror))
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        sys.exit("%s: not valid JSON: %s" % (src, e))
    try:
        feature_list, tile_list, tiles, targets = validate(doc)
    except Invalid as e:
        sys.exit("%s: %s" % (src, e))
    text = render(feature_list, tile_list, tiles, targets, hashlib.sha256(raw).hexdigest())
    with open(dst, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
