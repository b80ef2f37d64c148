// Store: `dvfs du` figures and the audit log with `dvfs audit verify`'s verdict.
import { api, errorBox, h, human, link, pager, put, shellQuote, swap } from "./dom.js";

export async function storePage(el, params) {
  const offset = params.offset || 0; // as given: the server refuses, by name, what is no number
  let st, log;
  try {
    [st, log] = await Promise.all([api("store"), api("audit", { offset, limit: 100 })]);
  } catch (err) {
    put(el, h("h1", {}, "Store"), errorBox(err));
    return;
  }
  const du = st.du, v = st.verify;
  put(el, 
    h("h1", {}, "Store"),
    h("dl", { class: "fields" },
      h("dt", {}, "logical"), h("dd", {}, `${human(du.logical)} (every file of every version)`),
      h("dt", {}, "distinct"), h("dd", {}, `${human(du.distinct)} after dedup (${du.dedup_ratio}x)`),
      h("dt", {}, "stored"), h("dd", {}, `${human(du.stored)} in the local store (compression ${du.compression_ratio}x)`),
      du.not_local ? [h("dt", {}, "not local"), h("dd", {}, human(du.not_local))] : null),
    h("h2", {}, "Unique to each version"),
    h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", {}, "version"), h("th", {}, "logical"), h("th", {}, "unique"))),
      h("tbody", {}, du.versions.map((x) => h("tr", {},
        h("td", {}, h("a", { href: link("version", { rev: x.id }) }, x.revision)),
        h("td", { class: "num" }, human(x.logical)), h("td", { class: "num" }, human(x.unique)))))),
    du.biggest.length ? [h("h2", {}, "Biggest files"), h("table", { class: "data" },
      h("tbody", {}, du.biggest.map((b) => h("tr", {}, h("td", { class: "num" }, human(b.size)), h("td", {}, b.path), h("td", {}, b.revision)))))] : null,
    h("h2", {}, "Audit log ", h("span", { class: `badge ${v.intact ? "ok" : "bad"}` }, v.intact ? `intact (${v.entries} entries)` : "NOT intact")),
    v.problems.map((p) => h("p", { class: "error" }, p)),
    h("table", { class: "data audit" },
      h("thead", {}, h("tr", {}, ["#", "time", "who", "op", "ref", "old → new", "command"].map((t) => h("th", {}, t)))),
      h("tbody", {}, log.entries.map((e) => h("tr", {},
        h("td", {}, e.seq), h("td", {}, e.time_ns ? new Date(e.time_ns / 1e6).toISOString().slice(0, 19) + "Z" : ""), h("td", {}, `${e.user}@${e.host}`), h("td", {}, e.op), h("td", {}, e.ref),
        h("td", {}, `${(e.old || "-").slice(0, 10)} → ${(e.new || "-").slice(0, 10)}`),
        h("td", {}, h("code", {}, (e.cmd || []).map(shellQuote).join(" "))))))),
    pager(log.total, log.offset, log.limit, (o) => { location.hash = link("store", { offset: o }); }),
  );
}
