#!/usr/bin/env bash
# Fetch the dashboard's third-party libraries from npm into vfs/ui/static/vendor/.
#
# The files it writes are committed: `dvfs ui` serves them as they are, with no build
# step and nothing fetched at run time. Run this only to change the version (then
# update VERSION below, vfs/ui/static/vendor/README.md, and check the pages).
#
#   uPlot (MIT): the charts of the experiments page. Its ES module build and CSS.
#   dagre (MIT; it bundles graphlib, MIT): the layout of the lineage graph. Its
#   browser build, which sets window.dagre (lineage.js loads it with a script tag).
#   highlight.js (BSD-3-Clause), from @highlightjs/cdn-assets, the package of its ES
#   module builds: the core, the grammars in HL_LANGUAGES and the GitHub theme, for
#   the syntax highlighting of text previews.
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

HL_PACKAGE=@highlightjs/cdn-assets
HL_VERSION=11.11.1
HL_LANGUAGES="bash c cpp dockerfile go ini java javascript json makefile markdown python r rust shell sql typescript xml yaml"
hl="$dest/highlight"
(cd "$work" && npm pack --silent "$HL_PACKAGE@$HL_VERSION" >/dev/null)
mkdir -p "$work/hl" "$hl/languages"
tar -xzf "$work/highlightjs-cdn-assets-$HL_VERSION.tgz" -C "$work/hl"
cp "$work/hl/package/es/core.min.js" "$hl/core.min.js"
cp "$work/hl/package/styles/github.min.css" "$hl/github.min.css"
cp "$work/hl/package/LICENSE" "$hl/LICENSE"
for lang in $HL_LANGUAGES; do
  cp "$work/hl/package/es/languages/$lang.min.js" "$hl/languages/$lang.min.js"
done
echo "==> highlight.js $HL_VERSION in $hl:"
sha256sum "$hl"/*.* "$hl"/languages/*

DAGRE_PACKAGE=@dagrejs/dagre
DAGRE_VERSION=1.1.4
(cd "$work" && npm pack --silent "$DAGRE_PACKAGE@$DAGRE_VERSION" >/dev/null)
mkdir -p "$work/dagre"
tar -xzf "$work/dagrejs-dagre-$DAGRE_VERSION.tgz" -C "$work/dagre"
cp "$work/dagre/package/dist/dagre.min.js" "$dest/dagre.min.js"
cp "$work/dagre/package/LICENSE" "$dest/dagre.LICENSE"
echo "==> dagre $DAGRE_VERSION in $dest:"
sha256sum "$dest"/dagre.*
