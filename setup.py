"""Build script for fastrnn's compiled kernels.

Metadata lives in pyproject.toml; this file only declares the Cython
extensions and the compile-time probes:

* BLAS integer width: read from the installed SciPy's cython_blas.pxd (the
  type of sgemm's `m` argument); 64-bit -> -DFASTRNN_BLAS_INT64.
* OpenMP: `-fopenmp` if a tiny OpenMP program compiles and links
  (FASTRNN_NO_OPENMP=1 disables it); otherwise `-fopenmp-simd` alone when
  supported, so the `omp simd` loops still vectorize.
* Runtime ISA dispatch: GCC/Clang `target_clones` (AVX-512 / AVX2 / baseline)
  when the compiler and platform support it.
* FASTRNN_DEBUG=1: bounds checking and wraparound on, -O0 -g, asserts.
Never GCC's fast-math mode (the activations rely on NaN semantics).
"""
import os
import re
import shutil
import sys
import tempfile

import numpy as np  # noqa: F401  (build requirement; keeps the import order explicit)
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINE = os.path.join("fastrnn", "_engine")
SRC = os.path.join(ENGINE, "src")
DEBUG = os.environ.get("FASTRNN_DEBUG", "") not in ("", "0")
NO_OPENMP = os.environ.get("FASTRNN_NO_OPENMP", "") not in ("", "0")


def scipy_blas_int64():
    """True if scipy.linalg.cython_blas takes 64-bit integers."""
    import scipy.linalg
    pxd = os.path.join(os.path.dirname(scipy.linalg.__file__), "cython_blas.pxd")
    try:
        with open(pxd) as fh:
            text = fh.read()
    except OSError:
        return False
    m = re.search(r"cdef\s+void\s+sgemm\s*\(\s*char\s*\*\s*\w+\s*,\s*char\s*\*\s*\w+\s*,"
                  r"\s*([\w ]+?)\s*\*", text)
    if not m:
        return False
    ityp = m.group(1).strip()
    # resolve one level of ctypedef (e.g. `ctypedef int64_t blas_int`)
    td = re.search(r"ctypedef\s+([\w ]+?)\s+" + re.escape(ityp) + r"\s*$", text, re.M)
    if td:
        ityp = td.group(1).strip()
    return ityp not in ("int", "int32_t", "npy_int32", "signed int")


def _try_compile(compiler, code, extra_compile=(), extra_link=(), link=True):
    tmp = tempfile.mkdtemp(prefix="fastrnn-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write(code)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=list(extra_compile))
        if link:
            compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                     extra_postargs=list(extra_link))
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""

SIMD_PROBE = r"""
int main(void) {
    float a[16] = {0};
    #pragma omp simd
    for (int i = 0; i < 16; i++) a[i] += 1.0f;
    return (int)a[3] - 1;
}
"""

CLONES_PROBE = r"""
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
int f(int x) { return x + 1; }
int main(void) { __builtin_cpu_init(); return f(-1) + (__builtin_cpu_supports("avx2") ? 0 : 0); }
"""


class BuildExt(build_ext):
    def build_extensions(self):
        cc = self.compiler
        msvc = cc.compiler_type == "msvc"
        cflags, lflags, macros = [], [], []
        if msvc:
            cflags += ["/O2"] if not DEBUG else ["/Od", "/Zi"]
            if not NO_OPENMP:
                cflags.append("/openmp")
                macros.append(("FASTRNN_OMP_SIMD", "1"))
            openmp = not NO_OPENMP
        else:
            cflags += ["-O0", "-g"] if DEBUG else ["-O3"]
            # no fast-math mode; these two keep IEEE NaN/inf semantics but let the
            # compiler if-convert the activations' selects into vector blends
            cflags += ["-fno-trapping-math", "-fno-math-errno", "-std=gnu99"]
            openmp = False
            if not NO_OPENMP and _try_compile(cc, OMP_PROBE, ["-fopenmp"], ["-fopenmp"]):
                cflags.append("-fopenmp")
                lflags.append("-fopenmp")
                openmp = True
            elif _try_compile(cc, SIMD_PROBE, ["-fopenmp-simd", "-Werror"], link=False):
                cflags.append("-fopenmp-simd")
                macros.append(("FASTRNN_OMP_SIMD", "1"))
            if _try_compile(cc, CLONES_PROBE, ["-Werror"]):
                macros.append(("FASTRNN_HAVE_TARGET_CLONES", "1"))
        if scipy_blas_int64():
            macros.append(("FASTRNN_BLAS_INT64", "1"))
        if not DEBUG:
            macros.append(("NDEBUG", "1"))
        print(f"fastrnn build: openmp={openmp} debug={DEBUG} macros={macros}")
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags
            ext.extra_link_args = list(ext.extra_link_args or []) + lflags
            ext.define_macros = list(ext.define_macros or []) + macros
        super().build_extensions()


def make_ext(name, with_c=True):
    sources = [os.path.join(ENGINE, name + ".pyx")]
    if with_c:
        sources += [os.path.join(SRC, "fr_cells.c"), os.path.join(SRC, "fr_kern.c")]
    return Extension(
        "fastrnn._engine." + name,
        sources=sources,
        include_dirs=[SRC],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        depends=[os.path.join(SRC, f) for f in
                 ("fr_common.h", "fr_act.h", "fr_cells_impl.h", "fr_kern_impl.h",
                  "fr_blas_int.h")],
    )


directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [make_ext("blas", with_c=False), make_ext("runtime"), make_ext("elman"),
              make_ext("lstm"), make_ext("gru"), make_ext("stepper")]
extensions[-1].include_dirs.append(np.get_include())   # the stepper uses NumPy's C API

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives,
                          include_path=["."], quiet=True),
    cmdclass={"build_ext": BuildExt},
)
