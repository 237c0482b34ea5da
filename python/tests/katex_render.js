// Renders display-math bodies with KaTeX (throwOnError) for test_latex.py.
// usage: node katex_render.js DIR_WITH_KATEX_NODE_MODULES < bodies.json
// Prints a JSON array: null for a body that renders, else KaTeX's message.
const path = require("path");
const katex = require(path.resolve(process.argv[2], "node_modules", "katex"));
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const errors = JSON.parse(input).map((body) => {
    try {
      katex.renderToString(body, { displayMode: true, throwOnError: true });
      return null;
    } catch (e) {
      return e.message;
    }
  });
  console.log(JSON.stringify(errors));
});
