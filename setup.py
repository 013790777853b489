"""Builds the C algorithm library (clib/) as a plain shared library.

It is a ctypes library, not a Python extension: no Python C-API, no PyInit_
symbol, no libpython link. It lands at app/native/libtaskbeat_alg.so, where
app.native.load_library() finds it through package resources, for
`pip install .`, `pip install -e .` and `python setup.py build_ext --inplace`
alike. The library is Linux only (clib/README.md says why). Everything else is
in pyproject.toml.
"""

import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LIBRARY_MODULE = "app.native.libtaskbeat_alg"
LIBRARY_SUFFIX = ".so"
CLIB = Path("clib")

# The library is every .c and .h directly in clib/ (its tests live in clib/tests/).
SOURCES = sorted(str(path) for path in CLIB.glob("*.c"))
HEADERS = sorted(str(path) for path in CLIB.glob("*.h"))


class BuildPlainSharedLibrary(build_ext):
    """build_ext for libraries loaded with ctypes rather than imported."""

    def get_ext_filename(self, fullname: str) -> str:
        filename: str = super().get_ext_filename(fullname)
        if fullname.split(".")[-1] != LIBRARY_MODULE.split(".")[-1]:
            return filename
        # Drop the interpreter tag: "libtaskbeat_alg.cpython-311-x86_64-linux-gnu.so" -> ".so".
        ext_suffix = sysconfig.get_config_var("EXT_SUFFIX") or LIBRARY_SUFFIX
        return filename[: -len(ext_suffix)] + LIBRARY_SUFFIX

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return list(ext.export_symbols)  # no PyInit_<name>

    def get_libraries(self, ext: Extension) -> list[str]:
        return list(ext.libraries)  # never link libpython


setup(
    ext_modules=[
        Extension(
            LIBRARY_MODULE,
            sources=SOURCES,
            depends=HEADERS,
            extra_compile_args=["-std=c11", "-O2", "-pthread", "-fvisibility=hidden"],
            extra_link_args=["-pthread"],
        )
    ],
    cmdclass={"build_ext": BuildPlainSharedLibrary},
)
