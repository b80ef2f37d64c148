// The dashboard: a hash router (#/route?query) over the pages, each a module.
import { h } from "./dom.js";
import { versionsPage } from "./versions.js";
import { versionPage } from "./version.js";
import { diffPage } from "./diff.js";
import { lineagePage } from "./lineage.js";
import { experimentsPage } from "./experiments.js";
import { storePage } from "./store.js";

const PAGES = {
  versions: versionsPage,
  version: versionPage,
  diff: diffPage,
  lineage: lineagePage,
  experiments: experimentsPage,
  store: storePage,
};

let shown = 0; // the newest navigation: an older page finishing late is dropped

async function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "versions";
  const [name, query] = hash.split("?", 2);
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  const page = PAGES[name];
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.nav === name);
  }
  const main = document.getElementById("main");
  const mine = ++shown;
  const target = h("div", { class: "page", "data-page": name });
  if (!page) {
    target.append(h("div", { class: "error" }, `No page called ${name}.`));
  } else {
    await page(target, params);
  }
  if (mine === shown) main.replaceChildren(target);
}

window.addEventListener("hashchange", route);
route();
