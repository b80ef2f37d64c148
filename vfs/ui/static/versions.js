// Versions: the first-parent timeline of a branch, filtered and paginated by the server.
import { act, api, badges, CSRF, errorBox, h, human, lines, link, pager, put, reload, swap } from "./dom.js";

const LIMIT = 50;

export async function versionsPage(el, params) {
  const offset = params.offset || 0; // as given: the server refuses, by name, what is no number
  let data;
  try {
    data = await api("versions", { ...params, offset, limit: LIMIT });
  } catch (err) {
    put(el, h("h1", {}, "Versions"), errorBox(err, "versions", "branch"));
    return;
  }
  const go = (p) => { location.hash = link("versions", { ...params, ...p }); };
  const field = (name, label, input) => h("label", {}, label, input, input.names);
  // Past the names the server lists, a field to type any name in, offering those listed.
  const branch = data.branches_total > data.branches.length
    ? named("branch", data.branches, params.branch, `current (${data.current_branch || "detached"})`)
    : h("select", { name: "branch" },
      h("option", { value: "" }, `current (${data.current_branch || "detached"})`),
      data.branches.map((b) => h("option", { value: b, selected: b === params.branch }, b)));
  const tag = data.tags_total > data.tags.length
    ? named("tag", data.tags, params.tag, "any")
    : h("select", { name: "tag" }, h("option", { value: "" }, "any"),
      data.tags.map((t) => h("option", { value: t, selected: t === params.tag }, t)));
  const author = h("input", { name: "author", value: params.author || "", placeholder: "author" });
  const q = h("input", { name: "q", value: params.q || "", placeholder: "message, id or vN" });
  const path = h("input", { name: "path", value: params.path || "", placeholder: "changed path" });
  const form = h("form", {
    class: "filters",
    onsubmit: (e) => {
      e.preventDefault();
      go({ branch: branch.value, tag: tag.value, author: author.value, q: q.value, path: path.value, offset: 0 });
    },
  }, field("branch", "Branch ", branch), field("tag", "Tag ", tag), author, q, path,
     h("button", { type: "submit" }, "Filter"));

  const picked = [];
  const diffBtn = h("button", {
    class: "diff-selected", disabled: true,
    onclick: () => {
      const [a, b] = picked.slice(-2).sort((x, y) => x.n - y.n);
      location.hash = link("diff", { old: a.id, new: b.id });
    },
  }, "Diff selected");
  const pick = (row, box) => {
    const n = Number(row.version.slice(1));
    const i = picked.findIndex((p) => p.v === row.version);
    if (box.checked && i < 0) picked.push({ v: row.version, id: row.id, n });
    if (!box.checked && i >= 0) picked.splice(i, 1);
    while (picked.length > 2) {
      const old = picked.shift();
      const other = el.querySelector(`input[data-version="${old.v}"]`);
      if (other) other.checked = false;
    }
    diffBtn.disabled = picked.length !== 2;
  };

  const list = h("ol", { class: "timeline" }, data.versions.map((row) => {
    const box = h("input", { type: "checkbox", "data-version": row.version, title: "pick for a diff" });
    box.addEventListener("change", () => pick(row, box));
    const parent = row.parents.length ? row.parents[0] : null;
    return h("li", { class: row.parents.length > 1 ? "version merge" : "version" },
      h("div", { class: "dot" }),
      h("div", { class: "body" },
        h("div", { class: "line1" }, box,
          h("a", { class: "vlabel", href: link("version", { rev: row.id }) }, row.version),
          h("code", { class: "id" }, row.id.slice(0, 10)), badges(row),
          row.parents.length > 1 ? [h("span", { class: "badge merge" }, "merge"), " of ",
            row.parents.slice(1).map((p) => h("a", { class: "id", href: link("version", { rev: p }) }, p.slice(0, 10)))] : null),
        h("div", { class: "message" }, lines(row.message)),
        h("div", { class: "meta muted" },
          `${row.author} · ${row.created} · ${row.files.toLocaleString()} files · ${human(row.bytes)}`,
          parent ? [" · ", h("a", { href: link("diff", { old: parent, new: row.id }) }, "changes")] : null)));
  }));
  put(el, 
    h("h1", {}, "Versions", data.remote ? h("span", { class: "muted source" }, ` of ${data.source} (a remote, read-only, as of ${data.as_of})`) : null),
    data.refresh_error ? h("p", { class: "error stale" }, `Could not look for new versions: ${data.refresh_error}`) : null,
    form, CSRF ? deleteBranchForm(data) : null,
    h("div", { class: "toolbar" }, diffBtn,
      pager(data.total, data.offset, data.limit, (o) => go({ offset: o }))),
    data.versions.length ? list : h("p", { class: "muted empty" }, data.total || params.tag || params.author || params.q || params.path
      ? "No version matches." : "No versions yet: run `dvfs add PATH` and `dvfs commit -m MSG`."),
  );
}

// A text field for a branch or tag name, offering `names` (some of them: the server
// lists at most data.REFS_SHOWN) in its `names` datalist, to place beside it.
function named(name, names, value, placeholder) {
  const input = h("input", { name, value: value || "", placeholder, list: `${name}-names` });
  input.names = h("datalist", { id: `${name}-names` }, names.map((n) => h("option", { value: n })));
  return input;
}

// What the last deletion said: the page is drawn again once a branch goes, and the
// form drawn then shows it, once.
let deletedSaid = null;

// "Delete a branch" (`dvfs branch -d NAME`, never the current one), offered when the
// server allows writes; a second click confirms.
function deleteBranchForm(data) {
  const others = data.branches.filter((b) => b !== data.current_branch);
  const which = data.branches_total > data.branches.length
    ? named("delete-branch", others, "", "branch…")
    : h("select", { name: "delete-branch" }, h("option", { value: "" }, "branch…"),
      others.map((b) => h("option", { value: b }, b)));
  const button = h("button", { type: "submit", disabled: !others.length }, "Delete branch");
  const said = h("span", { class: "said", role: "status" }, deletedSaid);
  deletedSaid = null;
  let armed = null;
  which.addEventListener("change", () => { armed = null; button.textContent = "Delete branch"; });
  return h("form", {
    class: "action delete-branch-form",
    onsubmit: async (e) => {
      e.preventDefault();
      swap(said);
      if (!which.value) return;
      if (armed !== which.value) {
        armed = which.value;
        button.textContent = `Really delete ${which.value}?`;
        return;
      }
      try {
        const done = await act("delete-branch", { name: which.value });
        deletedSaid = `deleted branch ${done.deleted.name} (was ${done.deleted.version} ${done.deleted.id.slice(0, 10)})`; // as `dvfs branch -d` says it
        swap(said, deletedSaid);
        reload();
      } catch (err) {
        swap(said, errorBox(err, "versions", "branch"));
      }
    },
  }, which, which.names, button, said);
}
