# CMake toolchain file: cross-build mica for 64-bit ARM Linux (glibc) with
# Debian's aarch64-linux-gnu-gcc (tools/setup.sh installs it). The binaries
# run here under qemu-aarch64-static with QEMU_LD_PREFIX=/usr/aarch64-linux-gnu.
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=tools/aarch64-linux-gnu.cmake \
#         -DCMAKE_BUILD_TYPE=Release -DMICA_TESTS=OFF
#
# MICA_AARCH64_TRIPLE overrides the compiler prefix (another vendor's
# toolchain); MICA_AARCH64_SYSROOT the target's root (libraries, headers).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(MICA_AARCH64_TRIPLE "aarch64-linux-gnu" CACHE STRING "prefix of the cross compiler")
set(MICA_AARCH64_SYSROOT "/usr/${MICA_AARCH64_TRIPLE}" CACHE PATH "the target's root")
set(CMAKE_C_COMPILER "${MICA_AARCH64_TRIPLE}-gcc")

# Libraries and headers from the target's root only; programs (python3, the
# generators) from the build machine.
set(CMAKE_FIND_ROOT_PATH "${MICA_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# try_run and the like cannot execute target binaries without help.
set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64-static;-L;${MICA_AARCH64_SYSROOT}")
