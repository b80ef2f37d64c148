// Lineage: the pipeline a version records, drawn as a graph laid out by dagre (each
// stage below the stages it reads from); clicking a stage shows its command, inputs (with
// the version that introduced each) and outputs.
import { api, errorBox, h, link, put, shellQuote, swap, visible } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 170, HGT = 44, GAPX = 60, GAPY = 40;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children) put(el, c);
  return el;
}

// dagre (vendor/dagre.min.js, MIT, scripts/ui-vendor.sh) lays the graph out: layers by
// its network-simplex ranking, crossings reduced, edges routed between the layers. Its
// browser build is a classic script that sets window.dagre: loaded once, on first use.
let dagreLoaded = null;
function loadDagre() {
  dagreLoaded ||= new Promise((ok, fail) => {
    if (window.dagre) { ok(window.dagre); return; }
    const tag = document.createElement("script");
    tag.src = "/static/vendor/dagre.min.js";
    tag.onload = () => (window.dagre ? ok(window.dagre) : fail(new Error("dagre did not load")));
    tag.onerror = () => { dagreLoaded = null; fail(new Error("the graph layout library did not load")); };
    document.head.append(tag);
  });
  return dagreLoaded;
}

// Where each stage goes (its box's top left) and each edge's points, top to bottom.
// dagre keeps nodes in plain objects keyed by id, where a stage named `__proto__` would
// be no key at all: it is given each stage's place in the list ("n0", "n1", ...) instead.
export async function layout(stages, edges) {
  const dagre = await loadDagre();
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: GAPX, ranksep: GAPY, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const ids = new Map(stages.map((st, i) => [st.stage, `n${i}`]));
  const names = new Map([...ids].map(([name, id]) => [id, name]));
  for (const id of names.keys()) g.setNode(id, { width: W, height: HGT });
  for (const [a, b] of edges) if (ids.has(a) && ids.has(b)) g.setEdge(ids.get(a), ids.get(b));
  dagre.layout(g);
  const pos = new Map(g.nodes().map((n) => {
    const p = g.node(n);
    return [names.get(n), { x: p.x - W / 2, y: p.y - HGT / 2 }];
  }));
  const routes = g.edges().map((e) => ({
    from: names.get(e.v), to: names.get(e.w), points: g.edge(e).points,
  }));
  return { pos, routes, width: Math.ceil(g.graph().width), height: Math.ceil(g.graph().height) };
}

export async function lineagePage(el, params) {
  const rev = params.rev || "HEAD";
  const input = h("input", { name: "rev", value: rev, size: 14 });
  put(el, h("h1", {}, "Lineage"), h("form", {
    class: "filters",
    onsubmit: (e) => { e.preventDefault(); location.hash = link("lineage", { rev: input.value }); },
  }, h("label", {}, "version ", input), h("button", { type: "submit" }, "Show")));
  let g;
  try {
    g = await api("lineage", { rev });
  } catch (err) {
    put(el, errorBox(err, "lineage"));
    return;
  }
  if (!g.stages.length) {
    put(el, h("p", { class: "muted empty" }, `${g.version} records no pipeline (stages run with \`dvfs repro\` or \`dvfs run\` are recorded by the next commit).`));
    return;
  }
  let drawn;
  try {
    drawn = await layout(g.stages, g.edges);
  } catch (err) {
    put(el, errorBox(err));
    return;
  }
  const { pos, routes, width, height } = drawn;
  const detail = h("section", { class: "stage-detail" });
  const byName = new Map(g.stages.map((st) => [st.stage, st]));
  const svg = s("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}` },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto" },
      s("path", { d: "M0,0 L10,5 L0,10 z" }))));
  for (const r of routes) {
    const [first, ...rest] = r.points;
    const d = `M${first.x},${first.y} ` + rest.map((p) => `L${p.x},${p.y}`).join(" ");
    svg.append(s("path", { class: "edge", "data-from": r.from, "data-to": r.to, d, "marker-end": "url(#arrow)" }));
  }
  for (const [name, p] of pos) {
    const st = byName.get(name);
    // (a stage is reached with Tab and opened with Enter or Space, as a button is)
    const open = () => showStage(detail, g, st, svg, name);
    const node = s("g", { class: "node", "data-stage": name, transform: `translate(${p.x},${p.y})`, tabindex: 0,
      role: "button", "aria-label": visible(`stage ${name}`), onclick: open,
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
      s("rect", { width: W, height: HGT, rx: 6 }),
      s("text", { x: W / 2, y: 18, "text-anchor": "middle", class: "name" }, name),
      s("text", { x: W / 2, y: 34, "text-anchor": "middle", class: "sub" }, `${st.output.length} out · exit ${st.run.exit}`));
    svg.append(node);
  }
  // (the walks back for the versions of the inputs' bytes are bounded, as `dvfs lineage`'s)
  const cut = g.stages.reduce((n, st) => n + st.input.filter((i) => i.since_cut).length, 0);
  put(el, h("p", { class: "muted" }, `${g.version}: ${g.stages.length} stages`),
    cut ? h("p", { class: "note" }, `The walk back through the versions was cut short: the version that introduced the bytes of ${cut.toLocaleString()} input${cut > 1 ? "s" : ""} is not known.`) : null,
    h("div", { class: "scroll" }, svg), detail);
}

function showStage(box, g, st, svg, name) {
  for (const n of svg.querySelectorAll(".node")) n.classList.toggle("selected", n.dataset.stage === name);
  // (a list of arguments quoted as `dvfs lineage` shows it; a shell line as it is)
  const cmd = Array.isArray(st.command) ? st.command.map(shellQuote).join(" ") : st.command;
  const file = (p, rev) => h("a", { href: link("version", { rev, dir: p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "", file: p }) }, p);
  swap(box, 
    h("h2", {}, `Stage ${st.stage}`),
    h("dl", { class: "fields" },
      h("dt", {}, "command"), h("dd", {}, h("code", {}, cmd)),
      h("dt", {}, "wdir"), h("dd", {}, st.wdir),
      h("dt", {}, "run"), h("dd", {}, `exit ${st.run.exit}, ${st.run.seconds} s, ${st.run.started} on ${st.run.host}`),
      h("dt", {}, "inputs"), h("dd", {}, h("ul", {}, st.input.map((i) =>
        h("li", {}, i.kind === "params" ? "params file " : null, file(i.path, g.id), " ", h("code", { class: "id" }, i.id.slice(0, 10)),
          i.since ? [" since ", i.since_id ? h("a", { href: link("version", { rev: i.since_id }) }, i.since) : i.since]
            : i.since_cut ? " since an unknown version (walk cut short)" : " (in no version)",
          i.since && i.in_version === false ? ` (${g.version} holds other bytes)` : null)))),
      h("dt", {}, "outputs"), h("dd", {}, h("ul", {}, st.output.map((o) =>
        h("li", {}, file(o.path, g.id), " ", h("code", { class: "id" }, o.id.slice(0, 10)))))),
    ));
}
