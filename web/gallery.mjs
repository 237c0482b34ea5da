// Build step: the gallery (examples/*.matdiff) as examples.json for the
// page, each program on one line (`;`-separated), with its title (the first
// comment line) and its textbook gradients (`# textbook d/dV: FORMULA`).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, out] = process.argv.slice(2);
const examples = readdirSync(dir).filter((f) => f.endsWith('.matdiff')).sort().map((file) => {
  const lines = readFileSync(join(dir, file), 'utf8').split('\n');
  const comments = lines.filter((l) => l.trim().startsWith('#')).map((l) => l.trim().replace(/^#\s?/, ''));
  const textbook = comments
    .map((c) => /^textbook d\/d(\S+):\s*(.+)$/.exec(c))
    .filter(Boolean)
    .map((m) => ({ wrt: m[1], formula: m[2].trim() }));
  const title = comments.filter((c) => !c.startsWith('textbook')).join(' ');
  const program = lines.map((l) => l.replace(/#.*/, '').trim()).filter((l) => l).join('; ');
  return { name: file.replace(/\.matdiff$/, ''), title, program, textbook };
});
writeFileSync(out, JSON.stringify(examples, null, 1));
console.log(`${examples.length} examples`);
