#!/usr/bin/env bash
# Fetch the dashboard's one third-party library from npm into vfs/ui/static/vendor/.
#
# The files it writes are committed: `dvfs ui` serves them as they are, with no build
# step and nothing fetched at run time. Run this only to change the version (then
# update VERSION below, vfs/ui/static/vendor/README.md, and check the pages).
#
#   uPlot (MIT): the charts of the experiments page. Its ES module build and CSS.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=uplot
VERSION=1.6.32
dest=vfs/ui/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tar -xzf "$work/$PACKAGE-$VERSION.tgz" -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/uPlot.esm.js" "$dest/uPlot.esm.js"
cp "$work/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
cp "$work/package/LICENSE" "$dest/uPlot.LICENSE"
echo "==> $PACKAGE $VERSION in $dest:"
sha256sum "$dest"/uPlot.*
