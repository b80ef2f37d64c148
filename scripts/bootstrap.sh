#!/usr/bin/env bash
# Install everything dvfs needs on Debian 12 (run as root): system packages for FUSE
# and building pyfuse3, then a .venv with dvfs and its pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# chromium: the browser tests of `dvfs ui` drive Debian's build (no browser download).
# xfsprogs, e2fsprogs: the tests of restoring by shared blocks make an XFS (mkfs.xfs)
# and look at a file's extents (filefrag).
for pkg in fuse3 libfuse3-dev pkg-config gcc git python3-venv python3-dev rsync chromium \
    xfsprogs e2fsprogs; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing system packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] \
    || [ scripts/bootstrap.sh -nt "$stamp" ]; then
    echo "==> creating .venv with dvfs and its pinned dependencies"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    # editable_mode=compat: the checkout goes on sys.path through a plain .pth line.
    # setuptools' default editable install adds an import hook whose module imports
    # pathlib, importlib.util and more at every interpreter start: 13-14 ms more for
    # each dvfs command (a sixth of a small `dvfs status`), which an installed wheel
    # does not pay. Benchmarks and tests run dvfs as users do.
    .venv/bin/pip install -q -c constraints.txt -e ".[dev]" --config-settings editable_mode=compat
    touch "$stamp"
fi

# An editable install compiles nothing, and PYTHONDONTWRITEBYTECODE (set on some
# machines) would have every dvfs command compile its modules again: about 0.25 s of
# CPU each time. Up-to-date files are skipped; an edited one is compiled again here.
.venv/bin/python -m compileall -q vfs daemon >/dev/null
