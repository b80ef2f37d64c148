// Syntax highlighting of a text preview with the vendored highlight.js (vendor/highlight/,
// scripts/ui-vendor.sh): the core and one grammar, loaded when a file of that kind is
// first shown. The language comes from the file's name only (never guessed from the
// content). highlight.js escapes the text it is given and wraps its pieces in <span
// class="hljs-...">: that markup, and nothing else, is the HTML this puts in the page.

const BY_SUFFIX = {
  py: "python", pyi: "python", json: "json", ipynb: "json", yaml: "yaml", yml: "yaml",
  sh: "bash", bash: "bash", zsh: "bash", js: "javascript", mjs: "javascript", ts: "typescript",
  sql: "sql", ini: "ini", cfg: "ini", toml: "ini", conf: "ini", xml: "xml", html: "xml",
  svg: "xml", md: "markdown", r: "r", c: "c", h: "c", cc: "cpp", cpp: "cpp", hpp: "cpp",
  go: "go", rs: "rust", java: "java",
};
const BY_NAME = { dockerfile: "dockerfile", makefile: "makefile", "dvfs.yaml": "yaml" };

export function languageOf(path) {
  const name = path.split("/").pop().toLowerCase();
  if (Object.hasOwn(BY_NAME, name)) return BY_NAME[name];
  const dot = name.lastIndexOf(".");
  const suffix = dot > 0 ? name.slice(dot + 1) : "";
  return Object.hasOwn(BY_SUFFIX, suffix) ? BY_SUFFIX[suffix] : null;
}

let core = null;
const loaded = new Set();

// Highlight the text of `code` (a <code> element holding only text) as the language of
// `path`; nothing happens for a file of another kind.
export async function highlight(code, path) {
  const lang = languageOf(path);
  if (!lang) return false;
  core = core || import("./vendor/highlight/core.min.js").then((m) => m.default);
  const hljs = await core;
  if (!loaded.has(lang)) {
    const grammar = (await import(`./vendor/highlight/languages/${lang}.min.js`)).default;
    hljs.registerLanguage(lang, grammar);
    loaded.add(lang);
  }
  const out = hljs.highlight(code.textContent, { language: lang, ignoreIllegals: true });
  code.innerHTML = out.value;
  code.classList.add("hljs", `language-${lang}`);
  return true;
}
