// The wasm bindings answer what the command line prints: for the seed, the
// gallery (examples/) and some errors, each of derive, derive --steps (and
// the page's derive_within), verify, check, plan and plan --emit is run both
// through the `matdiff` binary (--json) and through the wasm module (in
// Node), and the documents must be equal. Floating-point values that are not integers (relative
// errors, noise estimates) are compared only as numbers: the wasm build's
// libm may round a transcendental function differently in the last place.
// Exits 1 on any difference.
//
//   MATDIFF_BIN=target/debug/matdiff node web/tests/same_json.mjs [DIST]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(process.argv[2] ?? join(here, '..', 'dist'));
const bin = process.env.MATDIFF_BIN;
if (!bin) {
  console.error('set MATDIFF_BIN to the matdiff binary (cargo build; target/debug/matdiff)');
  process.exit(2);
}
const engine = await import(join(dist, 'pkg', 'matdiff_wasm.js'));
engine.initSync({ module: readFileSync(join(dist, 'pkg', 'matdiff_wasm_bg.wasm')) });

/** The command line's output and exit status. */
function cli(args) {
  try {
    return { status: 0, stdout: execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }) };
  } catch (e) {
    return { status: e.status, stdout: e.stdout };
  }
}

function same(a, b, path = '') {
  if (typeof a === 'number' && typeof b === 'number') {
    return Number.isInteger(a) && Number.isInteger(b) ? (a === b ? null : path) : null;
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b ? null : path;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = same(a[k], b[k], `${path}.${k}`);
    if (d !== null) return d;
  }
  return null;
}

/**
 * The module is 32-bit, the binary 64-bit: the e-graph's hash order differs,
 * and where two forms of a gradient tie in cost each may print the other
 * (`X + T2 - Y` against `T2 + X - Y`). Such derivations are accepted when
 * every gradient that differs is, by the command line's own `verify`,
 * equivalent to the binary's and printed as long.
 */
function sameUpToTies(program, native, wasm, what) {
  if (native.gradients?.length !== wasm.gradients?.length) return false;
  for (let k = 0; k < native.gradients.length; k += 1) {
    const [a, b] = [native.gradients[k], wasm.gradients[k]];
    if (a.wrt !== b.wrt || JSON.stringify(a.shape) !== JSON.stringify(b.shape)) return false;
    if (a.expr === b.expr) continue;
    if (a.expr.length !== b.expr.length) return false;
    const v = cli(['verify', program, '--wrt', a.wrt, '--claim', b.expr, '--json']);
    if (v.status !== 0) return false;
    console.log(`note ${what}: d/d${a.wrt} ties: ${a.expr}  |  ${b.expr}`);
  }
  return true;
}

let failures = 0;
let compared = 0;
function compare(what, args, answer, json = true) {
  compared += 1;
  const c = cli(args);
  const w = JSON.parse(answer);
  let diff;
  if (c.status !== w.status) diff = `exit status ${c.status} against ${w.status}`;
  else if (json) {
    const at = same(JSON.parse(c.stdout), w.output);
    if (at !== null && !(args[0] === 'derive' && sameUpToTies(args[1], JSON.parse(c.stdout), w.output, what))) {
      diff = `they differ at ${at || 'the top'}`;
    }
  } else if (c.stdout !== w.output) diff = 'the code differs';
  if (diff) {
    failures += 1;
    console.log(`FAIL ${what}: ${diff}\n  matdiff ${args.join(' ')}`);
  }
}

/** `answer` must be a limit error. */
function limited(what, answer) {
  compared += 1;
  const w = JSON.parse(answer);
  if (w.status !== 2 || w.output.kind !== 'limit') {
    failures += 1;
    console.log(`FAIL ${what}: status ${w.status}, ${JSON.stringify(w.output).slice(0, 120)}, not a limit error`);
  }
}

const examples = JSON.parse(readFileSync(join(dist, 'examples.json'), 'utf8'));
const programs = [
  { name: 'seed', program: 'W1*W2*W3*X', textbook: [{ wrt: 'W2', formula: 'W1^T*G*X^T*W3^T' }] },
  { name: 'quadratic form', program: 'x : n; A : n x n; x^T*A*x', textbook: [{ wrt: 'x', formula: '2*A*x' }] },
  { name: 'chain of symbolic length', program: 'prod(W[i], i=1..n) * X', textbook: [] },
  ...examples,
];
for (const { name, program, textbook } of programs) {
  compare(`${name}: derive`, ['derive', program, '--json'], engine.derive(program, '', '', false));
  compare(`${name}: derive --steps`, ['derive', program, '--steps', '--json'], engine.derive(program, '', '', true));
  // The page's first answer: the same document within a generous limit, a
  // limit error (for the page to ask its worker) within none.
  compare(`${name}: derive within 60 s`, ['derive', program, '--json'], engine.derive_within(program, '', '', 60_000));
  limited(`${name}: derive within 0 ms`, engine.derive_within(program, '', '', 0));
  for (const t of textbook) {
    compare(`${name}: verify d/d${t.wrt}`, ['verify', program, '--wrt', t.wrt, '--claim', t.formula, '--json'],
      engine.verify(program, t.wrt, t.formula, ''));
    compare(`${name}: verify d/d${t.wrt} negated`, ['verify', program, '--wrt', t.wrt, '--claim', `-(${t.formula})`, '--json'],
      engine.verify(program, t.wrt, `-(${t.formula})`, ''));
  }
  if (!program.includes('prod(')) {
    compare(`${name}: check`, ['check', program, '--seed', '3', '--json'], engine.check(program, '', '', '', 3n));
  }
  compare(`${name}: plan`, ['plan', program, '--json'], engine.plan(program, '', '', ''));
  compare(`${name}: plan with sizes`, ['plan', program, '--dims', 'n=4,d0=64', '--json'], engine.plan(program, '', '', 'n=4, d0=64'));
  for (const language of ['numpy', 'pytorch', 'jax']) {
    compare(`${name}: plan --emit ${language}`, ['plan', program, '--emit', language], engine.emit(program, '', '', '', language), false);
  }
}
// Errors without hints are the same objects.
for (const program of ['A : 3x4; B : 5x6; A*B', 'W1*(W2 + ', 'x : n; log(x)', 'tr(X) + X']) {
  compare(`error: ${program}`, ['derive', program, '--json'], engine.derive(program, '', '', false));
}
compare('derive --wrt', ['derive', 'W1*W2*W3*X', '--wrt', 'W2', '--wrt', 'X', '--upstream', 'D', '--json'],
  engine.derive('W1*W2*W3*X', 'W2, X', 'D', false));

console.log(failures ? `${failures} of ${compared} differ` : `the wasm module answers as the command line, ${compared} comparisons`);
process.exit(failures ? 1 : 0);
