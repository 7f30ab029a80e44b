"""Build script for fastrnn's compiled kernels.

Metadata lives in pyproject.toml; this file only declares the Cython
extensions, how they are built and the compile-time probes:

* The C helpers (every fastrnn/_engine/src/*.c) are compiled ONCE into one library:
  on Linux a shared libfastrnn_helpers.so next to the modules (rpath $ORIGIN), so the
  dispatched kernels exist once in the wheel; elsewhere (or FASTRNN_STATIC_HELPERS=1) a
  static library with hidden symbols linked into each module.
* Parallel: cythonize in worker processes, helpers and extensions compiled
  concurrently; `-j N`, else FASTRNN_BUILD_JOBS, else every core.
* Cython's utility code is generated once into fastrnn._engine._cyutility, shared by the
  five modules (instead of compiled into each: nearly half of the C).
* Unchanged Cython inputs (by content) reuse the generated C: a second `pip install .`
  recompiles nothing.
* Release builds carry no debug info (-g0 after Python's -g).

* BLAS integer width: read from the installed SciPy's cython_blas.pxd (the
  type of sgemm's `m` argument); 64-bit -> -DFASTRNN_BLAS_INT64.
* OpenMP: `-fopenmp` if a tiny OpenMP program compiles and links
  (FASTRNN_NO_OPENMP=1 disables it); otherwise `-fopenmp-simd` alone when
  supported, so the `omp simd` loops still vectorize.
* Runtime ISA dispatch: src/fr_kern.c compiles its kernels per instruction set
  (`#pragma GCC target`, GCC on x86) and picks one by CPUID at import; the
  target_clones probe below only sets FASTRNN_HAVE_TARGET_CLONES (now unused).
* FASTRNN_DEBUG=1: bounds checking and wraparound on, -O0 -g (debug info
  kept), asserts.
Never GCC's fast-math mode (the activations rely on NaN semantics).
"""
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np  # noqa: F401  (build requirement; keeps the import order explicit)
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.modified import newer_group

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINE = os.path.join("fastrnn", "_engine")
SRC = os.path.join(ENGINE, "src")
DEBUG = os.environ.get("FASTRNN_DEBUG", "") not in ("", "0")
NO_OPENMP = os.environ.get("FASTRNN_NO_OPENMP", "") not in ("", "0")
# how to ask the compiler for OpenMP; Apple clang + Homebrew libomp needs e.g.
# FASTRNN_OPENMP_CFLAGS="-Xpreprocessor -fopenmp -I$(brew --prefix libomp)/include"
# FASTRNN_OPENMP_LDFLAGS="-L$(brew --prefix libomp)/lib -lomp"   (docs/release.md, macOS)
OMP_CFLAGS = os.environ.get("FASTRNN_OPENMP_CFLAGS", "-fopenmp").split()
OMP_LDFLAGS = os.environ.get("FASTRNN_OPENMP_LDFLAGS", "-fopenmp").split()


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


def _helper_sources():
    """Every C helper in fastrnn/_engine/src, compiled once into one static library.

    A new source dropped into src/ (e.g. a per-ISA kernel) is picked up without touching this
    file; give it its own flags in HELPER_FLAGS.
    """
    return sorted(glob.glob(os.path.join(SRC, "*.c")))


# extra compile flags for single helper sources, by file name (GCC/Clang; MSVC ignores them),
# e.g. {"fr_gemm_avx512.c": ["-mavx512f", "-mavx512dq"]}: that source must guard its own use
HELPER_FLAGS = {}
HELPER_LIB = "fastrnn_helpers"
# Linux builds link the helpers as one shared library next to the modules; this forces the
# static library (a private copy in every module) instead
STATIC_HELPERS = os.environ.get("FASTRNN_STATIC_HELPERS", "") not in ("", "0")


def _build_jobs(requested):
    """Parallel jobs: `-j N` if given, else FASTRNN_BUILD_JOBS, else every core."""
    if requested is True:
        return os.cpu_count() or 1
    if requested:
        return int(requested)
    env = os.environ.get("FASTRNN_BUILD_JOBS", "")
    return int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)


class BuildExt(build_ext):
    """build_ext with compiler probes, one static helper library and parallel jobs.

    Order: probes -> cythonize (worker processes; deferred to here so metadata and sdist steps
    never run Cython) -> C helpers compiled once, in parallel, archived with hidden symbols ->
    the Cython extensions compiled in parallel, each linking the archive.
    """

    def finalize_options(self):
        super().finalize_options()
        self.parallel = _build_jobs(self.parallel)

    # -- the shared helper library is an output like the modules (wheel, --inplace, editable)
    def _shared_helper_pair(self):
        """(in-place path, build path) of libfastrnn_helpers.so, or None when not shared."""
        if not sys.platform.startswith("linux") or STATIC_HELPERS \
                or self.compiler_type_is_msvc():
            return None
        build_py = self.get_finalized_command("build_py")
        lstm = next(e for e in self.extensions if e.name == "fastrnn._engine.lstm")
        inplace_file, regular_file = self._get_inplace_equivalent(build_py, lstm)
        name = "lib" + HELPER_LIB + ".so"
        return (os.path.join(os.path.dirname(inplace_file), name),
                os.path.join(os.path.dirname(regular_file), name))

    def compiler_type_is_msvc(self):
        return (self.compiler or "") == "msvc" or getattr(self.compiler, "compiler_type",
                                                           "") == "msvc"

    def copy_extensions_to_source(self):
        super().copy_extensions_to_source()
        pair = self._shared_helper_pair()
        if pair is not None and os.path.exists(pair[1]):
            self.copy_file(pair[1], pair[0], level=self.verbose)

    def get_output_mapping(self):
        mapping = dict(super().get_output_mapping())
        pair = self._shared_helper_pair()
        if pair is not None:
            mapping[pair[0]] = pair[1]
        return dict(sorted(mapping.items()))

    def get_outputs(self):
        outputs = list(super().get_outputs())
        pair = self._shared_helper_pair()
        if pair is not None and not self.inplace:
            outputs.append(pair[1])
        return sorted(set(outputs))

    def _flags(self):
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
            # release: -g0 comes after Python's own CFLAGS (which carry -g) and wins, so the
            # shipped modules hold no debug info (a cell module: 2.5 MB with it, 0.4 MB without)
            cflags += ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
            # no fast-math mode; these two keep IEEE NaN/inf semantics but let the
            # compiler if-convert the activations' selects into vector blends
            cflags += ["-fno-trapping-math", "-fno-math-errno", "-std=gnu99"]
            openmp = False
            if not NO_OPENMP and _try_compile(cc, OMP_PROBE, OMP_CFLAGS, OMP_LDFLAGS):
                cflags += OMP_CFLAGS
                lflags += OMP_LDFLAGS
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
        return msvc, openmp, cflags, lflags, macros

    def _cython_inputs_digest(self):
        """Hash of everything the generated C depends on: the engine's Cython sources, the
        directives, Cython's version and SciPy's cython_blas.pxd (by content, not date)."""
        import Cython
        import scipy.linalg
        h = hashlib.sha256(repr((directives, Cython.__version__)).encode())
        files = sorted(glob.glob(os.path.join(ENGINE, "*.pyx")) +
                       glob.glob(os.path.join(ENGINE, "*.pxd")))
        files.append(os.path.join(os.path.dirname(scipy.linalg.__file__), "cython_blas.pxd"))
        for f in files:
            h.update(os.path.basename(f).encode())    # not the path: pip's build env is random
            try:
                with open(f, "rb") as fh:
                    h.update(fh.read())
            except OSError:
                h.update(b"missing")
        return h.hexdigest()

    def _cythonize(self):
        """Turn the .pyx sources into C, several modules at once (Cython is single-threaded).

        Cython compares file dates, and pip's isolated build environment installs SciPy's
        cython_blas.pxd afresh for every `pip install`, so `.`, `.[test]`, `.[examples]` would
        each regenerate (and recompile) everything. A content digest of the inputs decides
        instead: unchanged inputs reuse the generated C, and build_ext then skips the modules
        whose compiled file is up to date.
        """
        pyx = [e for e in self.extensions
               if e.name == SHARED_UTILITY or any(s.endswith(".pyx") for s in e.sources)]
        if not pyx:
            return
        digest = self._cython_inputs_digest()
        stamp = os.path.join(self.build_temp, "fastrnn-cython-inputs.json")
        try:
            with open(stamp) as fh:
                previous = json.load(fh)
        except (OSError, ValueError):
            previous = {}
        generated = previous.get("sources", {})
        if (previous.get("digest") == digest and not self.force
                and all(e.name in generated for e in pyx)
                and all(os.path.exists(c) for e in pyx for c in generated[e.name])):
            for ext in pyx:
                ext.sources = list(generated[ext.name])
            return
        # worker processes fork cleanly on Linux; elsewhere Cython runs in this process
        nthreads = self.parallel if sys.platform.startswith("linux") else 0
        done = cythonize(pyx, compiler_directives=directives, include_path=["."], quiet=True,
                         nthreads=nthreads, force=bool(self.force),
                         shared_utility_qualified_name=SHARED_UTILITY)
        by_name = {e.name: e for e in done}
        for ext in pyx:
            ext.sources = by_name[ext.name].sources
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as fh:
            json.dump({"digest": digest, "sources": {e.name: e.sources for e in pyx}}, fh)

    def _plan_helpers(self, msvc, cflags, lflags, macros):
        """Compile src/*.c once, in parallel, into one library.

        Returns ``(lib_dir, lib_path, rpath, shared, work)``: ``work`` builds the library (None
        when it is up to date).

        Linux: a shared library next to the extensions (``$ORIGIN`` rpath), so the ~1 MB of
        ISA-dispatched kernels exists once in the wheel instead of once per module. Elsewhere
        (and with FASTRNN_STATIC_HELPERS=1): a static library with hidden symbols, one private
        copy per module.
        """
        sources = _helper_sources()
        shared = sys.platform.startswith("linux") and not msvc and not STATIC_HELPERS
        tag = hashlib.sha1(repr((cflags, macros, HELPER_FLAGS, shared)).encode()).hexdigest()[:10]
        out_dir = os.path.join(self.build_temp, "helpers-" + tag)
        if shared:
            lib_dir = os.path.dirname(self.get_ext_fullpath("fastrnn._engine.lstm"))
            lib_path = os.path.join(lib_dir, "lib" + HELPER_LIB + ".so")
        else:
            lib_dir = out_dir
            lib_path = os.path.join(out_dir, self.compiler.library_filename(HELPER_LIB))
        rpath = ["-Wl,-rpath,$ORIGIN"] if shared else []
        headers = glob.glob(os.path.join(SRC, "*.h"))
        if (not self.force and os.path.exists(lib_path)
                and not newer_group(sources + headers + [__file__], lib_path)):
            return lib_dir, lib_path, rpath, shared, None
        own = list(cflags)
        if not msvc and not shared:
            own.append("-fvisibility=hidden")   # each extension keeps a private copy

        def compile_one(src):
            extra = own + ([] if msvc else HELPER_FLAGS.get(os.path.basename(src), []))
            return self.compiler.compile([src], output_dir=out_dir, macros=macros,
                                         include_dirs=[SRC], extra_postargs=extra,
                                         depends=headers)

        def work():
            with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
                objects = [o for objs in pool.map(compile_one, sources) for o in objs]
            if shared:
                os.makedirs(lib_dir, exist_ok=True)
                self._link(objects, lib_path,
                           extra_postargs=lflags + ["-Wl,-soname,lib" + HELPER_LIB + ".so"])
            else:
                self.compiler.create_static_lib(objects, HELPER_LIB, output_dir=out_dir)

        return lib_dir, lib_path, rpath, shared, work

    def build_extensions(self):
        t0 = time.time()
        # the one line a user sees in the build log (pip shows build output with -v only)
        print(f"fastrnn: compiling the C/Cython engine with {self.parallel} parallel jobs "
              "(about a minute on 2 cores) ...", file=sys.stderr, flush=True)
        msvc, openmp, cflags, lflags, macros = self._flags()
        print(f"fastrnn build: openmp={openmp} debug={DEBUG} macros={macros}" + ("" if openmp or NO_OPENMP else "\nfastrnn build: WARNING: the OpenMP compile probe failed, the kernels will use ONE thread (install the compiler's OpenMP runtime, or set FASTRNN_OPENMP_CFLAGS / FASTRNN_OPENMP_LDFLAGS; FASTRNN_NO_OPENMP=1 silences this)"), file=sys.stderr if not openmp and not NO_OPENMP else sys.stdout)
        # Cython and build_ext compare timestamps only: after a switch between release and
        # FASTRNN_DEBUG builds, rebuild everything instead of mixing the two
        stamp = os.path.join(self.build_temp, "fastrnn-build-flags.txt")
        flags = repr((cflags, lflags, macros, directives))
        try:
            with open(stamp) as fh:
                if fh.read() != flags:
                    self.force = True
        except OSError:
            pass
        self._cythonize()
        lib_dir, lib_path, rpath, shared, work = self._plan_helpers(msvc, cflags, lflags, macros)
        helpers = None
        self._link = self.compiler.link_shared_object
        if work is not None and shared:
            # the helpers (one large, ISA-cloned source) compile WHILE the Cython modules do;
            # a module only waits for the library when it is linked
            helpers = ThreadPoolExecutor(max_workers=1).submit(work)

            def link_after_helpers(objects, output, *args, libraries=None, **kw):
                if libraries and HELPER_LIB in libraries:
                    helpers.result()
                return self._link(objects, output, *args, libraries=libraries, **kw)

            self.compiler.link_shared_object = link_after_helpers
        elif work is not None:
            work()
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags
            ext.extra_link_args = list(ext.extra_link_args or []) + lflags
            ext.define_macros = list(ext.define_macros or []) + macros
            if getattr(ext, "uses_helpers", False):
                ext.libraries = list(ext.libraries or []) + [HELPER_LIB]
                ext.library_dirs = list(ext.library_dirs or []) + [lib_dir]
                ext.extra_link_args += rpath
                if not shared:   # a static library is inside the module: relink on a new one
                    ext.depends = list(ext.depends or []) + [lib_path]
        try:
            super().build_extensions()
        finally:
            if helpers is not None:
                helpers.result()
                self.compiler.link_shared_object = self._link
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as fh:
            fh.write(flags)
        print(f"fastrnn: engine compiled in {time.time() - t0:.0f} s", file=sys.stderr,
              flush=True)


def make_ext(name, with_c=True):
    """One Cython module of the engine; `with_c` links the static C helper library."""
    ext = Extension(
        "fastrnn._engine." + name,
        sources=[os.path.join(ENGINE, name + ".pyx")],
        include_dirs=[SRC],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        depends=[os.path.join(SRC, f) for f in
                 ("fr_common.h", "fr_act.h", "fr_cells_impl.h", "fr_kern_impl.h",
                  "fr_kern_isa.h", "fr_blas_int.h")],
    )
    ext.uses_helpers = with_c
    return ext


directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

# Cython's utility code (memoryviews, fused-type dispatch: most of each generated module) goes
# into one shared module instead of being compiled into every module: -45% compile time
SHARED_UTILITY = "fastrnn._engine._cyutility"
shared = Extension(SHARED_UTILITY, sources=[])
shared.uses_helpers = False

# the modules that need no helper library first: they compile while the helpers do
extensions = [shared, make_ext("blas", with_c=False), make_ext("runtime"), make_ext("elman"),
              make_ext("lstm"), make_ext("gru"), make_ext("dense"), make_ext("stepper")]
extensions[-1].include_dirs.append(np.get_include())   # the stepper uses NumPy's C API

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
