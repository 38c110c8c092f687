"""The ISAs kernels are generated for: the dialect table's first half.

Python 3 standard library only. Each entry says what a kernel file for that
ISA needs: the architecture, the feature names it may use (the names of
codegen/targets.json "features"), the compiler flags that enable them, the
intrinsics header, and the int8 weight tile (hp, lp) its quantized kernels
read (targets.json "tiles"). Family modules read these entries and add
their own spellings; every ISA provides every family, so the emitter can
pick `<family>` for any ISA by name.
"""

ISAS = [
    {"name": "scalar", "arch": "any", "features": [], "cflags": "",
     "header": None, "tile": "scalar", "ep": 1, "hp": 8, "lp": 4, "vector_bits": 0},
    {"name": "avx2", "arch": "x86_64", "features": ["avx2", "fma", "f16c"],
     "cflags": "-mavx2 -mfma -mf16c", "header": "immintrin.h",
     "tile": "avx2", "ep": 4, "hp": 8, "lp": 4, "vector_bits": 256},
    {"name": "avx512vnni", "arch": "x86_64",
     "features": ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vnni"],
     "cflags": "-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni",
     "header": "immintrin.h", "tile": "avx512vnni", "ep": 4, "hp": 64, "lp": 4,
     "vector_bits": 512},
    {"name": "neon", "arch": "aarch64", "features": ["neon"], "cflags": "-march=armv8-a",
     "header": "arm_neon.h", "tile": "neon", "ep": 4, "hp": 8, "lp": 4, "vector_bits": 128},
    {"name": "dotprod", "arch": "aarch64", "features": ["neon", "dotprod", "fp16"],
     "cflags": "-march=armv8.2-a+dotprod+fp16", "header": "arm_neon.h",
     "tile": "sdot", "ep": 12, "hp": 8, "lp": 4, "vector_bits": 128},
    {"name": "i8mm", "arch": "aarch64", "features": ["neon", "dotprod", "i8mm", "fp16"],
     "cflags": "-march=armv8.6-a+dotprod+i8mm+fp16", "header": "arm_neon.h",
     "tile": "i8mm", "ep": 10, "hp": 8, "lp": 8, "vector_bits": 128},
]

# Which kernel ISA serves a target tile (targets.json "tiles" names).
TILE_ISA = {"scalar": "scalar", "avx2": "avx2", "avxvnni": "avx2",
            "avx512vnni": "avx512vnni", "neon": "neon", "sdot": "dotprod", "i8mm": "i8mm"}


def by_name(name):
    for isa in ISAS:
        if isa["name"] == name:
            return isa
    raise KeyError(name)
