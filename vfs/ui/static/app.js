// The dashboard: a hash router (#/route?query) over the pages, each a module.
import { h, queryParams } from "./dom.js";
// Each page's module is loaded when first shown (the versions page needs no chart code).
const PAGES = {
  versions: () => import("./versions.js").then((m) => m.versionsPage),
  version: () => import("./version.js").then((m) => m.versionPage),
  diff: () => import("./diff.js").then((m) => m.diffPage),
  lineage: () => import("./lineage.js").then((m) => m.lineagePage),
  experiments: () => import("./experiments.js").then((m) => m.experimentsPage),
  store: () => import("./store.js").then((m) => m.storePage),
  mounts: () => import("./mounts.js").then((m) => m.mountsPage),
};

let shown = 0; // the newest navigation: an older page finishing late is dropped

async function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "versions";
  const [name, query] = hash.split("?", 2);
  const params = queryParams(query);
  const load = Object.hasOwn(PAGES, name) ? PAGES[name] : null;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.nav === name);
  }
  const main = document.getElementById("main");
  const mine = ++shown;
  const target = h("div", { class: "page", "data-page": name });
  if (!load) {
    target.append(h("div", { class: "error" }, `No page called ${name}.`));
  } else {
    await (await load())(target, params);
  }
  if (mine === shown) {
    main.replaceChildren(target);
    performance.mark("dvfs:shown"); // the benchmark reads it: the page's content is in
  }
}

window.addEventListener("hashchange", route);
route();
