// Lineage: the pipeline a version records, drawn as a graph (stages in layers, each
// after the stages it reads from); clicking a stage shows its command, inputs (with
// the version that introduced each) and outputs.
import { api, errorBox, h, link, put, swap } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 170, HGT = 44, GAPX = 60, GAPY = 40;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children) put(el, c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Longest-path layering: a stage's layer is one more than the deepest stage it reads.
export function layers(stages, edges) {
  const up = new Map(stages.map((st) => [st.stage, []]));
  for (const [a, b] of edges) up.get(b)?.push(a);
  const depth = new Map();
  const visit = (n, seen = new Set()) => {
    if (depth.has(n)) return depth.get(n);
    if (seen.has(n)) return 0;
    seen.add(n);
    const d = Math.max(-1, ...up.get(n).map((u) => visit(u, seen))) + 1;
    depth.set(n, d);
    return d;
  };
  const out = [];
  for (const st of stages) {
    const d = visit(st.stage);
    (out[d] ||= []).push(st.stage);
  }
  return out;
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
  const rows = layers(g.stages, g.edges);
  const pos = new Map();
  rows.forEach((names, y) => names.forEach((n, x) => pos.set(n, { x: 20 + x * (W + GAPX), y: 20 + y * (HGT + GAPY) })));
  const width = 40 + Math.max(...rows.map((r) => r.length)) * (W + GAPX);
  const height = 40 + rows.length * (HGT + GAPY);
  const detail = h("section", { class: "stage-detail" });
  const byName = new Map(g.stages.map((st) => [st.stage, st]));
  const svg = s("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}` },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto" },
      s("path", { d: "M0,0 L10,5 L0,10 z" }))));
  for (const [a, b] of g.edges) {
    const p = pos.get(a), q = pos.get(b);
    if (!p || !q) continue;
    const x1 = p.x + W / 2, y1 = p.y + HGT, x2 = q.x + W / 2, y2 = q.y;
    svg.append(s("path", { class: "edge", d: `M${x1},${y1} C${x1},${y1 + GAPY / 2} ${x2},${y2 - GAPY / 2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
  }
  for (const [name, p] of pos) {
    const st = byName.get(name);
    const node = s("g", { class: "node", "data-stage": name, transform: `translate(${p.x},${p.y})`, tabindex: 0,
      onclick: () => showStage(detail, g, st, svg, name) },
      s("rect", { width: W, height: HGT, rx: 6 }),
      s("text", { x: W / 2, y: 18, "text-anchor": "middle", class: "name" }, name),
      s("text", { x: W / 2, y: 34, "text-anchor": "middle", class: "sub" }, `${st.output.length} out · exit ${st.run.exit}`));
    svg.append(node);
  }
  put(el, h("p", { class: "muted" }, `${g.version}: ${g.stages.length} stages`), h("div", { class: "scroll" }, svg), detail);
}

function showStage(box, g, st, svg, name) {
  for (const n of svg.querySelectorAll(".node")) n.classList.toggle("selected", n.dataset.stage === name);
  const cmd = Array.isArray(st.command) ? st.command.join(" ") : st.command;
  const file = (p, rev) => h("a", { href: link("version", { rev, dir: p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "", file: p }) }, p);
  swap(box, 
    h("h2", {}, `Stage ${st.stage}`),
    h("dl", { class: "fields" },
      h("dt", {}, "command"), h("dd", {}, h("code", {}, cmd)),
      h("dt", {}, "wdir"), h("dd", {}, st.wdir),
      h("dt", {}, "run"), h("dd", {}, `exit ${st.run.exit}, ${st.run.seconds} s, ${st.run.started} on ${st.run.host}`),
      h("dt", {}, "inputs"), h("dd", {}, h("ul", {}, st.input.map((i) =>
        h("li", {}, file(i.path, g.version), " ", h("code", { class: "id" }, i.id.slice(0, 10)),
          i.since ? [" since ", h("a", { href: link("version", { rev: i.since }) }, i.since)] : " (in no version)")))),
      h("dt", {}, "outputs"), h("dd", {}, h("ul", {}, st.output.map((o) =>
        h("li", {}, file(o.path, g.version), " ", h("code", { class: "id" }, o.id.slice(0, 10)))))),
    ));
}
