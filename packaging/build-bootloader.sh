#!/bin/sh
# Builds PyInstaller's bootloader from the sdist of the PyInstaller that `make dist` installed,
# with bootloader-tmpdir.patch applied, and puts it in place of the prebuilt one.
#
# Why: the bootloader unpacks the one file before any Python runs, so only it can say why
# a TMPDIR is unusable. The prebuilt one falls back to /tmp when TMPDIR is not writable, and
# on a TMPDIR mounted noexec stops with the loader's "failed to map segment from shared
# object". The patched one unpacks where a set TMPDIR says or stops with one line naming it.
#
# Usage: packaging/build-bootloader.sh PYTHON   (the venv's python that has PyInstaller)
# Needs a C compiler (as the C library does). Skips the build when the installed
# bootloader already carries this patch for this PyInstaller version.
set -eu
python=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")  # absolute: waf runs elsewhere
here=$(cd "$(dirname "$0")" && pwd)
patch_file=$here/bootloader-tmpdir.patch

version=$("$python" -c "import PyInstaller; print(PyInstaller.__version__)")
target=$("$python" -c "import os, PyInstaller; print(os.path.join(os.path.dirname(PyInstaller.__file__), 'bootloader', PyInstaller.PLATFORM))")
stamp="$target/taskbeat-bootloader.stamp"
want="$version $(sha256sum "$patch_file" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" -m pip --disable-pip-version-check -q download --no-deps --no-binary :all: \
    -d "$scratch" "pyinstaller==$version"
tar -xzf "$scratch"/pyinstaller-"$version".tar.gz -C "$scratch"
source_dir="$scratch/pyinstaller-$version"
patch -d "$source_dir/bootloader" -p1 --quiet < "$patch_file"
# zlib linked in statically, as in PyInstaller's own builds: nothing more to find at run time.
(cd "$source_dir/bootloader" && "$python" ./waf --static-zlib all > "$scratch/waf.log" 2>&1) || {
    tail -30 "$scratch/waf.log" >&2
    exit 1
}
cp "$source_dir/PyInstaller/bootloader/$(basename "$target")"/run* "$target/"
echo "$want" > "$stamp"
echo "build-bootloader.sh: PyInstaller $version bootloader built with the TMPDIR check"
