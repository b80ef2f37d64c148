// Mounts: `dvfs mounts` of this repository (or remote), with each working tree's
// pending changes as `dvfs status MNT` reports them.
import { act, api, CSRF, errorBox, h, human, put, reload, swap } from "./dom.js";

const KINDS = ["added", "modified", "deleted", "renamed"];

export async function mountsPage(el) {
  let data;
  try {
    data = await api("mounts");
  } catch (err) {
    put(el, h("h1", {}, "Mounts"), errorBox(err));
    return;
  }
  const shown = recordedSaid;
  recordedSaid = null;
  put(el, h("h1", {}, "Mounts"));
  if (!data.mounts.length) {
    put(el, h("p", { class: "muted empty" }, `No mount of ${data.source}: \`dvfs mount\` makes one.`));
    return;
  }
  put(el, h("table", { class: "mounts" },
    h("thead", {}, h("tr", {}, ["mount point", "branch", "state", "cache", "pending changes"].map((t) => h("th", {}, t)))),
    h("tbody", {}, data.mounts.map((m) => h("tr", { "data-mount": m.mountpoint },
      h("td", {}, h("code", {}, m.mountpoint)),
      h("td", {}, m.branch),
      h("td", { class: m.state === "mounted" ? "" : "bad" }, m.state, m.pid ? h("span", { class: "muted" }, ` pid ${m.pid}`) : null),
      h("td", { class: "num" }, m.cache_size ? `${human(m.cache_used)} of ${human(m.cache_size)}` : "-"),
      h("td", { class: "pending" }, pending(m), saidOf(m, shown && shown.mountpoint === m.mountpoint ? shown.text : null)))))));
}

// The Snapshot form of a mount with changes (a clean one has nothing to record: its
// pending cell says so); else what its last snapshot said, if any.
function saidOf(m, text) {
  if (CSRF && m.pending && changes(m.pending)) return snapshotForm(m, text);
  return text ? h("div", { class: "action" }, h("span", { class: "said", role: "status" }, text)) : null;
}

// What the last snapshot said, and of which mount: the page is drawn again once it is
// recorded (the mount clean, its form gone), and the row drawn then shows it, once.
let recordedSaid = null;

// "Snapshot" (`dvfs snapshot MNT -m MSG`) of a writable mount, when the server allows writes.
function snapshotForm(m, text) {
  const message = h("input", { name: "message", placeholder: "message", required: true });
  const said = h("span", { class: "said", role: "status" }, text);
  return h("form", {
    class: "action snapshot-form",
    onsubmit: async (e) => {
      e.preventDefault();
      swap(said);
      try {
        const done = await act("snapshot", { mountpoint: m.mountpoint, message: message.value });
        recordedSaid = { mountpoint: m.mountpoint, text: `recorded ${done.snapshot.version} on ${done.snapshot.branch}` };
        swap(said, recordedSaid.text);
        reload();
      } catch (err) {
        swap(said, errorBox(err));
      }
    },
  }, message, h("button", { type: "submit" }, "Snapshot"), said);
}

// How many changes `dvfs status MNT` counts, of every kind.
function changes(p) {
  return KINDS.reduce((n, k) => n + p[k], 0);
}

function pending(m) {
  if (m.pending_error) return h("span", { class: "error" }, m.pending_error);
  const p = m.pending;
  if (!p) return h("span", { class: "muted" }, m.work_dir ? "-" : "read-only");
  if (!changes(p)) return h("span", { class: "muted" }, "none: the working tree is clean");
  return [
    h("div", { class: "counts" }, KINDS.filter((k) => p[k]).map((k) => `${p[k]} ${k}`).join(", ")),
    h("ul", { class: "paths" }, KINDS.flatMap((k) => p.paths[k].map((x) =>
      h("li", {}, `${k}: `, h("code", {}, Array.isArray(x) ? `${x[0]} → ${x[1]}` : x))))),
  ];
}
