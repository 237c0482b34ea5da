// Renders every display-math block (\[ ... \]) of the LaTeX snapshots with
// KaTeX, throwOnError: a block KaTeX cannot render fails the run.
// usage: node tests/katex/render.js DIR_WITH_KATEX_NODE_MODULES SNAPSHOT_DIR
const fs = require("fs");
const path = require("path");
const [modules, dir] = process.argv.slice(2);
const katex = require(path.resolve(modules, "node_modules", "katex"));
let blocks = 0;
let failed = 0;
for (const name of fs.readdirSync(dir).sort()) {
  if (!name.includes("latex") || !name.endsWith(".snap")) continue;
  const text = fs.readFileSync(path.join(dir, name), "utf8");
  const re = /\\\[([\s\S]*?)\\\]/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    blocks += 1;
    try {
      katex.renderToString(m[1], { displayMode: true, throwOnError: true });
    } catch (e) {
      failed += 1;
      console.error(`${name}: ${e.message}\n  in: ${m[1].trim().slice(0, 300)}`);
    }
  }
}
console.log(`katex: ${blocks - failed} passed, ${failed} failed`);
if (blocks === 0) {
  console.error("katex: no LaTeX blocks found");
  process.exit(1);
}
process.exit(failed ? 1 : 0);
