// Experiments: `dvfs compare` (params and metrics per version and experiment), sortable,
// and a chart of one metric over the versions (uPlot, vendored).
import { api, errorBox, h, link, pager, put, swap, valueCell, visible } from "./dom.js";
import uPlot from "./vendor/uPlot.esm.js";

// A row's value of a parameter or metric it has, else undefined (a name such as
// "constructor" is no row's unless the row has it).
const own = (values, name) => (Object.hasOwn(values, name) ? values[name] : undefined);

// A number, or a whole number past 2**53 kept as a BigInt (dom.js api): compared as one.
const isNumber = (x) => typeof x === "number" || typeof x === "bigint";

export async function experimentsPage(el, params) {
  let d;
  try {
    d = await api("experiments", { offset: params.offset || 0 }, true);
  } catch (err) {
    put(el, h("h1", {}, "Experiments"), errorBox(err));
    return;
  }
  const cols = [
    { key: "rev", label: "rev", get: (r) => r.rev },
    { key: "created", label: "created", get: (r) => r.created },
    { key: "message", label: "message", get: (r) => r.message },
    ...d.params.map((p) => ({ key: `param:${p}`, label: p, cls: "param", get: (r) => own(r.params, p) })),
    ...d.metrics.map((m) => ({ key: `metric:${m}`, label: m, cls: "metric", get: (r) => own(r.metrics, m),
      text: (r) => (r.texts || []).includes(m) })),
  ];
  let sortKey = params.sort || null;
  let desc = params.desc === "1";
  const tbody = h("tbody");
  const head = h("tr");
  const render = () => {
    const rows = [...d.rows];
    const col = cols.find((c) => c.key === sortKey);
    if (col) {
      rows.sort((a, b) => {
        const x = col.get(a), y = col.get(b);
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        const r = isNumber(x) && isNumber(y) ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y));
        return desc ? -r : r;
      });
    }
    // (the label is a button: a column is sorted from the keyboard too, Tab then Enter)
    head.replaceChildren(...cols.map((c) => h("th", {
      class: `${c.cls || ""} sortable ${c.key === sortKey ? (desc ? "desc" : "asc") : ""}`,
      "data-col": c.key,
      "aria-sort": c.key === sortKey ? (desc ? "descending" : "ascending") : "none",
      onclick: () => {
        desc = c.key === sortKey ? !desc : false;
        sortKey = c.key;
        render();
        // the header is drawn anew: the focus stays on the column just sorted
        for (const b of head.querySelectorAll("th button.sort")) if (b.parentElement.dataset.col === c.key) b.focus();
      },
    }, h("button", { type: "button", class: "sort" }, c.label))));
    tbody.replaceChildren(...rows.map((r) => h("tr", { "data-rev": r.rev }, cols.map((c) =>
      h("td", { class: c.cls || "" }, c.key === "rev" ? h("a", { href: link("version", { rev: r.id }) }, r.rev)
        // (a parameter or metric as the CLI tells its types apart; the date and message as they are)
        : c.cls ? valueCell(c.get(r), c.text && c.text(r)) : c.get(r))))));
  };
  render();
  const plot = h("div", { class: "chart" });
  const numeric = d.metrics.filter((m) => d.rows.some((r) => isNumber(own(r.metrics, m))));
  const pickMetric = numeric.length ? h("select", {
    name: "metric", onchange: () => chart(plot, d.rows, pickMetric.value),
  }, numeric.map((m) => h("option", { value: m }, m))) : null;
  put(el, h("h1", {}, "Experiments"),
    pickMetric ? [h("label", { class: "filters" }, "chart of ", pickMetric, " over the versions"), plot] : null,
    d.rows.length ? h("div", { class: "scroll" }, h("table", { class: "data experiments" }, h("thead", {}, head), tbody))
      : h("p", { class: "muted empty" }, "No versions yet."),
    d.notes.map((n) => h("p", { class: "note" }, n)),
    h("div", { class: "toolbar" },
      pager(d.total, d.offset, d.limit, (o) => { location.hash = link("experiments", { ...params, offset: o }); })),
    h("p", { class: "muted" }, d.total > d.rows.length
      ? "Click a column to sort these rows; again to reverse." : "Click a column to sort; again to reverse."));
  if (pickMetric) chart(plot, d.rows, pickMetric.value);
  if (d.rows.length) put(el, stepsSection(d.rows, params));
}

// Per-step metrics of one version (its `*.steps.jsonl`, as `vfs.track` logs them).
function stepsSection(rows, params) {
  const newest = [...rows].sort((a, b) => b.created.localeCompare(a.created));
  const pick = h("select", { name: "steps-of" },
    newest.map((r) => h("option", { value: r.id, selected: r.rev === params.steps }, r.rev)));
  const box = h("div", { class: "steps" });
  const show = async () => {
    let s;
    try {
      s = await api("steps", { rev: pick.value });
    } catch (err) {
      swap(box, errorBox(err));
      return;
    }
    swap(box);
    if (!s.files.length) {
      put(box, h("p", { class: "muted empty" }, `${s.version} has no per-step metrics.`));
      return;
    }
    for (const f of s.files) {
      const fileBox = h("div", { class: "steps-file", "data-path": f.path });
      put(box, fileBox);
      stepsFile(fileBox, s, f);
    }
    if (s.more) {
      put(box, h("p", { class: "muted" },
        `and ${s.more} more metrics files' histories, not read: the first ${s.files.length} are shown.`));
    }
  };
  pick.addEventListener("change", show);
  show();
  return h("section", { class: "per-step" }, h("h2", {}, "Metrics per step"),
    h("label", { class: "filters" }, "version ", pick), box);
}

// One history file's chart: a page of its steps (the latest, at first), and buttons for
// the pages before and after it when it has more steps than one page holds.
function stepsFile(el, s, f) {
  const chartBox = h("div", { class: "chart steps-chart", "data-path": f.path });
  const go = async (offset) => {
    let g;
    try {
      g = await api("steps", { rev: s.id, path: f.path, offset, limit: f.limit });
    } catch (err) {
      swap(el, errorBox(err));
      return;
    }
    stepsFile(el, g, g.files[0]);
  };
  swap(el, chartBox,
    f.total > f.rows.length ? pager(f.total, f.offset, f.limit, go) : null,
    f.note ? h("p", { class: "note" }, f.note) : null,
    f.skipped ? h("p", { class: "note" }, `${f.skipped} lines that are not JSON objects left out`) : null);
  if (f.metrics.length) stepChart(chartBox, s.version, f);
}

const COLOURS = ["#2f5fd0", "#d0542f", "#2f9d4f", "#8a4fc4", "#c49a1f", "#1f9dc4"];

function stepChart(box, version, f) {
  // uPlot wants x ascending: lines by step (a line without one: by its place)
  const rows = f.rows.map((r, i) => [r.step === null ? i : r.step, r]).sort((a, b) => a[0] - b[0]);
  const xs = rows.map(([x]) => x);
  const series = f.metrics.map((m) => rows.map(([, r]) => own(r, m) ?? null));
  new uPlot({
    title: visible(`${f.path} of ${version}`), // uPlot sets its text as given: escaped here
    width: Math.min(900, Math.max(360, box.clientWidth || 720)),
    height: 260,
    scales: { x: { time: false } },
    series: [{ label: "step" }, ...f.metrics.map((m, i) => ({
      label: visible(m), stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: f.rows.length <= 200 },
    }))],
  }, [xs, ...series], box);
}

// One metric over the versions and experiments, oldest first; a row without it is a gap.
function chart(box, rows, metric) {
  const ordered = [...rows].sort((a, b) => a.created.localeCompare(b.created));
  const xs = ordered.map((_, i) => i);
  const ys = ordered.map((r) => (isNumber(own(r.metrics, metric)) ? Number(r.metrics[metric]) : null));
  swap(box);
  new uPlot({
    title: visible(`${metric} over versions`),
    width: Math.min(900, Math.max(360, box.clientWidth || 720)),
    height: 260,
    scales: { x: { time: false } },
    series: [
      { label: "version", value: (u, i) => (i === null || !ordered[i] ? "-" : visible(ordered[i].rev)) },
      { label: visible(metric), stroke: "#2f5fd0", width: 2, points: { show: true, size: 7 } },
    ],
    axes: [
      { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], values: (u, splits) => splits.map((i) => (Number.isInteger(i) && ordered[i] ? ordered[i].rev : "")) },
      {},
    ],
  }, [xs, ys], box);
}
