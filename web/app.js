// The playground page: reads the inputs, asks the engine (in worker.js)
// and shows its JSON answers (docs/json.md). No framework, no network: the
// engine, KaTeX and its fonts, and the gallery come with the page.
// The engine's compiled module, its bindings and KaTeX, started by
// index.html's first script; each worker (a replaced one too) gets the
// compiled module. Marks for web/tests/first_visit.mjs (the time to the
// first answer, in parts).
performance.mark('matdiff:app');
const boot = window.matdiffBoot;
const compiled = boot.compiled;
const params = new URLSearchParams(location.search);

// KaTeX, loaded by index.html's first script beside the engine.
let katex;

const $ = (id) => document.getElementById(id);

// ---- The engine, in a Web Worker -------------------------------------------

// The engine's own limits stop any one request within seconds; this is the
// page's last resort, should one not (the worker is then replaced).
// (`?hard-limit-ms=N` lowers it: the browser test uses that to exercise it.)
const HARD_LIMIT_MS = Number(params.get('hard-limit-ms')) || 60_000;
// A live request (shapes and gradients as you type) that has run this long
// when the input changes again is abandoned: the worker is replaced.
const STALE_MS = 400;

let worker;
let engineReady; // when the engine was first ready, ms since navigation
let nextId = 1;
const pending = new Map(); // id -> {resolve, started, live}

function spawn() {
  worker = new Worker('worker.js', { type: 'module' });
  const w = worker;
  compiled.then((module) => w.postMessage({ module }));
  worker.onmessage = (event) => {
    const answer = event.data;
    if (answer.ready) {
      engineReady ??= answer.ready - performance.timeOrigin;
      return;
    }
    const job = pending.get(answer.id);
    if (!job) return;
    pending.delete(answer.id);
    clearTimeout(job.timer);
    if (answer.trapped) replace();
    job.resolve(answer);
  };
}

/** Replaces the worker; every request in flight is answered `cancelled`. */
function replace(reason) {
  worker.terminate();
  const jobs = [...pending.values()];
  pending.clear();
  spawn();
  for (const job of jobs) {
    clearTimeout(job.timer);
    job.resolve(reason ? limitAnswer(reason) : { status: -1, cancelled: true });
  }
}

function limitAnswer(reason) {
  return { status: 2, output: { kind: 'limit', message: reason, labels: [], notes: [] } };
}

/** Calls an engine function (web/wasm/src/lib.rs) with `args`; resolves to {status, output, ms}. */
function call(fn, args, live = false) {
  // (Started by the first request: see "The first answer" below.)
  if (!worker) spawn();
  return new Promise((resolve) => {
    const id = nextId++;
    const timer = setTimeout(() => {
      if (pending.has(id)) replace(`the page stopped the engine after ${HARD_LIMIT_MS / 1000} s`);
    }, HARD_LIMIT_MS);
    pending.set(id, { resolve, timer, started: performance.now(), live });
    worker.postMessage({ id, fn, args });
  });
}

/**
 * Replaces the worker when the request it is running (the oldest pending:
 * it answers in order) is a live one that has run past STALE_MS; a check,
 * a verification or a plan is left to finish.
 */
function abandonStaleLive() {
  const oldest = pending.values().next().value;
  if (oldest?.live && performance.now() - oldest.started > STALE_MS) replace();
}

// ---- The first answer, in the page's own thread ------------------------------

// A worker takes 40-100 ms to start (headless Chromium here), about as long
// as the module takes to arrive and compile; so the page's first answer (the
// shapes and the gradients without steps of the program it opens with) comes
// from the page's own instance of the same compiled module, the derivation
// within FIRST_LIMIT_MS so that no program holds the page longer, and the
// worker starts with the first request it gets (the steps, asked for once
// the gradients are shown). A program that needs longer, or a trap, is
// asked of the worker as usual, as is every later request.
// (`?first-limit-ms=0` sends the first derivation to the worker: the
// browser test exercises that path with it.)
const FIRST_LIMIT_MS = Number(params.get('first-limit-ms') ?? 100);
let localReady; // when the page's own engine was ready, ms since navigation
const local = Promise.all([boot.glue, compiled])
  .then(([engine, module]) => engine.default({ module_or_path: module }).then(() => engine))
  .then((engine) => { localReady = performance.now(); return engine; });
// (Unused rejections are not errors: the worker answers instead.)
local.catch(() => {});

/**
 * Calls `fn` of the page's own engine; resolves to {status, output, ms}, or
 * to null where the worker must answer instead: the engine could not load,
 * trapped, or stopped at a limit.
 */
async function locally(fn, args) {
  try {
    const engine = await local;
    const start = performance.now();
    const answer = JSON.parse(engine[fn](...args));
    if (answer.status === 2 && answer.output.kind === 'limit') return null;
    return { ms: performance.now() - start, by: 'page', ...answer };
  } catch {
    return null;
  }
}

// ---- Rendering helpers ---------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function tex(latex, display = false) {
  const span = el('span', { class: display ? 'math display' : 'math' });
  try {
    katex.render(latex, span, { displayMode: display, throwOnError: true, output: 'html' });
  } catch (e) {
    span.textContent = latex;
  }
  return span;
}

const dim = (d) => String(d);
const shapeText = (s) => (s ? `${dim(s[0])} × ${dim(s[1])}` : '?');

/** A variable's name as LaTeX: `W2` → `W_{2}`, `W[j-1]` → `W_{j-1}`. */
function varLatex(name) {
  let m = /^([A-Za-z]+)\[(.*)\]$/.exec(name);
  if (m) return `${m[1]}_{${m[2]}}`;
  m = /^([A-Za-z]+?)_?(\d+)$/.exec(name);
  if (m) return `${m[1]}_{${m[2]}}`;
  return name.length > 1 ? `\\mathit{${name}}` : name;
}

const TITLES = {
  parse: 'parse error',
  shape: 'shape error',
  unsupported: 'not supported',
  usage: 'usage error',
  limit: 'limit reached',
  internal: 'internal error (a bug in matdiff)',
};

/**
 * An error object (docs/json.md, Errors) as text: the message, then each
 * labelled span's source line with a caret under it, then the notes.
 * Spans are byte offsets into the UTF-8 source.
 */
export function diagnostic(error, source) {
  const lines = [`${TITLES[error.kind] ?? error.kind}: ${error.message}`];
  const bytes = new TextEncoder().encode(source);
  const decode = (a, b) => new TextDecoder().decode(bytes.slice(a, b));
  for (const label of error.labels ?? []) {
    if (label.start > bytes.length || label.end > bytes.length) {
      lines.push(`  ${label.message}`);
      continue;
    }
    const before = decode(0, label.start);
    const lineStart = before.lastIndexOf('\n') + 1;
    const lineNo = before.slice(0, lineStart).split('\n').length;
    const rest = source.slice(before.length);
    const lineEnd = rest.indexOf('\n') === -1 ? source.length : before.length + rest.indexOf('\n');
    const line = source.slice(lineStart, lineEnd);
    const column = [...before.slice(lineStart)].length;
    const width = Math.max(1, Math.min([...decode(label.start, label.end)].length, [...line].length - column || 1));
    const gutter = `${lineNo} | `;
    lines.push(`${gutter}${line}`);
    lines.push(`${' '.repeat(gutter.length + column)}${'^'.repeat(width)} ${label.message}`);
  }
  for (const note of error.notes ?? []) lines.push(`  = note: ${note}`);
  return lines.join('\n');
}

function cancelled(target) {
  target.replaceChildren(el('p', { class: 'note', text: 'cancelled: the engine was restarted; run it again' }));
}

function showError(target, answer, source) {
  target.replaceChildren(el('pre', { class: 'error', text: diagnostic(answer.output, source) }));
}

// ---- The program and its shapes -------------------------------------------

const program = () => $('program').value;
const wrt = () => $('wrt').value.trim();
const upstream = () => $('upstream').value.trim();

let generation = 0;

async function update() {
  const gen = ++generation;
  writeUrl();
  const source = program();
  if (!source.trim()) {
    $('shapes').replaceChildren();
    $('diagnostic').hidden = true;
    $('gradients').replaceChildren();
    return;
  }
  abandonStaleLive();
  // The gradients first, without their steps: on a first visit the engine's
  // code is compiled as it first runs, and the steps' (explain, LaTeX) then
  // need not stand between the page and its first answer. The steps follow.
  const derivation = [source, wrt(), upstream()];
  let shapesP;
  let derivedP;
  if (!firstAsked) {
    // The first answer: see above.
    firstAsked = true;
    shapesP = locally('shapes', [source]).then((a) => a ?? call('shapes', [source], true));
    derivedP = shapesP.then(() => locally('derive_within', [...derivation, FIRST_LIMIT_MS]))
      .then((a) => a ?? call('derive', [...derivation, false], true));
  } else {
    // Both at once: the worker answers in turn, without a round trip between.
    shapesP = call('shapes', [source], true);
    derivedP = call('derive', [...derivation, false], true);
  }
  const shapes = await shapesP;
  performance.mark('matdiff:shapes');
  if (gen !== generation || shapes.cancelled) return;
  if (shapes.status !== 0) {
    $('shapes').replaceChildren();
    $('diagnostic').textContent = diagnostic(shapes.output, source);
    $('diagnostic').hidden = false;
    $('gradients').replaceChildren();
    setStatus('');
    return;
  }
  $('diagnostic').hidden = true;
  renderShapes(shapes.output);
  const derived = await derivedP;
  performance.mark('matdiff:gradients');
  if (gen !== generation || derived.cancelled) return;
  if (derived.status !== 0) {
    showError($('gradients'), derived, source);
    setStatus('');
    return;
  }
  katex ??= await boot.katex;
  if (gen !== generation) return;
  // Asked for now, in the worker's turn after this answer; shown when unfolded.
  const stepsP = call('derive', [...derivation, true], true);
  renderGradients(derived.output, stepsP, gen);
  setStatus(`derived in ${derived.ms.toFixed(1)} ms`);
  if (!$('verify-wrt').value && derived.output.gradients.length) {
    $('verify-wrt').placeholder = derived.output.gradients[0].wrt;
  }
  if (!firstAnswer) {
    firstAnswer = performance.now();
    // Which engine answered, and when it was ready.
    const by = derived.by ?? 'worker';
    const timing = {
      firstAnswerMs: firstAnswer, by, engineReadyMs: by === 'page' ? localReady : engineReady, deriveMs: derived.ms,
    };
    window.matdiffTiming = timing;
    // When it can be read: laid out, the fonts that asks for loaded, painted.
    // Then the other fonts, once the page has loaded too (asked for before
    // the load event, they would hold it back).
    requestAnimationFrame(() => document.fonts.ready.then(() => requestAnimationFrame(() => {
      timing.readableMs = performance.now();
      if (document.readyState === 'complete') loadAllFonts();
      else window.addEventListener('load', () => setTimeout(loadAllFonts, 0), { once: true });
    })));
  }
}
let firstAsked = false;
let firstAnswer = 0;

function setStatus(text) {
  $('status').textContent = text;
}

function renderShapes(s) {
  const items = s.variables.map((v) =>
    el('span', { class: 'var' }, el('code', { text: v.name }), ` ${shapeText(v.shape)}`));
  $('shapes').replaceChildren(
    el('span', { class: 'var result' }, el('code', { text: s.expr }), ` : ${shapeText(s.shape)}`),
    ...items,
  );
}

/**
 * The gradients of a derivation `d` (without steps) as cards; each card's
 * steps come from `stepsP` (the same derivation with steps, asked for in
 * generation `gen`) and are typeset when first unfolded.
 */
function renderGradients(d, stepsP, gen) {
  const out = [];
  if (d.upstream) {
    out.push(el('p', { class: 'note' }, tex(`${d.upstream} = \\partial \\mathcal{L} / \\partial Z`),
      ` is the upstream gradient, of the shape of the expression (${shapeText(d.shape)}).`));
  }
  if (d.definitions) {
    const defs = el('div', { class: 'definitions' });
    for (const def of d.definitions) defs.append(tex(`${varLatex(def.name)} = ${def.latex}`, true));
    out.push(defs);
  }
  const details = new Map(); // wrt -> the card's <details>
  for (const g of d.gradients) {
    const lhs = `\\frac{\\partial \\mathcal{L}}{\\partial ${varLatex(g.wrt)}}`;
    const card = el('div', { class: 'gradient', 'data-wrt': g.wrt, 'data-expr': g.expr });
    card.append(
      el('div', { class: 'formula' }, tex(`${lhs} = ${g.shared_latex ?? g.latex}`, true)),
      el('div', { class: 'meta' },
        el('code', { class: 'expr', text: `d/d${g.wrt} = ${g.shared_expr ?? g.expr}` }),
        el('span', { class: 'shape', text: shapeText(g.shape) + (g.condition ? `  for ${g.condition}` : '') }),
        g.saturated ? '' : el('span', { class: 'warn', text: 'simplification stopped at a limit: right, but maybe not simplest' })),
    );
    const box = el('details', { class: 'steps' }, el('summary', { text: 'Derivation steps' }));
    details.set(g.wrt, box);
    card.append(box);
    out.push(card);
  }
  $('gradients').replaceChildren(...out);
  const withSteps = stepsP.then((a) => (gen === generation && a.status === 0 ? a.output : null));
  withSteps.then((explained) => {
    for (const g of explained?.gradients ?? []) {
      const box = details.get(g.wrt);
      if (box) box.querySelector('summary').textContent = `Derivation steps (${g.steps.length})`;
    }
  });
  for (const [wrt, box] of details) {
    // Typeset when first unfolded: the gradients show sooner.
    box.addEventListener('toggle', async () => {
      if (!box.open || box.dataset.filled) return;
      box.dataset.filled = 'yes';
      const g = (await withSteps)?.gradients.find((x) => x.wrt === wrt);
      if (!g) {
        box.append(el('p', { class: 'note', text: 'the steps are not available: derive again' }));
        return;
      }
      const table = el('table');
      g.steps.forEach((step, i) => {
        table.append(el('tr', {},
          el('td', { class: 'eq' }, tex(i === 0 ? `\\mathrm{d}\\mathcal{L} = ${step.latex}` : `= ${step.latex}`)),
          el('td', { class: 'why' }, tex(step.why_latex))));
      });
      box.append(table);
      for (const line of g.shape_check ?? []) box.append(el('p', { class: 'shape-check', text: `Shape check: ${line}` }));
    });
  }
}

// ---- Verify, check, plan, code ---------------------------------------------

async function runVerify() {
  writeUrl();
  const source = program();
  const v = $('verify-wrt').value.trim() || $('verify-wrt').placeholder;
  $('verdict').replaceChildren(el('p', { class: 'busy', text: 'verifying…' }));
  const a = await call('verify', [source, v, $('claim').value, upstream()]);
  if (a.cancelled) return cancelled($('verdict'));
  if (a.status === 2) return showError($('verdict'), a, source);
  const r = a.output;
  const evidence = r.evidence
    ? ` ${r.evidence.decided} of ${r.evidence.instances} random instances decided (largest relative difference ${Number(r.evidence.worst_rel_err).toExponential(1)}).`
    : '';
  $('verdict').replaceChildren(el('p', { class: `verdict ${r.equivalent ? 'ok' : 'bad'}` },
    el('strong', { text: r.outcome.toUpperCase() }), ` (${r.method}): ${r.detail}.${evidence}`),
  el('p', { class: 'note' }, 'matdiff: ', el('code', { text: `d/d${v} = ${r.derived}` })));
}

async function runCheck() {
  writeUrl();
  const source = program();
  $('check-result').replaceChildren(el('p', { class: 'busy', text: 'checking…' }));
  const a = await call('check', [source, wrt(), upstream(), $('check-dims').value, BigInt($('seed').value || 1)]);
  if (a.cancelled) return cancelled($('check-result'));
  if (a.status === 2) return showError($('check-result'), a, source);
  const r = a.output;
  const sizes = Object.entries(r.sizes).map(([k, v]) => `${k}=${v}`).join(' ') || 'all fixed';
  const table = el('table', { class: 'grid' }, el('tr', {}, el('th', { text: 'gradient' }), el('th', { text: 'max rel. error' }), el('th', { text: 'compared' }), el('th', { text: 'verdict' })));
  for (const c of r.results) {
    table.append(el('tr', { class: c.ok ? 'ok' : 'bad' },
      el('td', {}, el('code', { text: `d/d${c.wrt}` })),
      el('td', { text: c.max_rel_err == null ? 'not measured' : Number(c.max_rel_err).toExponential(1) }),
      el('td', { text: c.compared === 'entries' ? 'every entry' : `${c.directions} directions` }),
      el('td', { text: c.outcome + (c.reason ? ` (${c.reason})` : '') })));
  }
  $('check-result').replaceChildren(el('p', { text: `sizes ${sizes} (seed ${r.seed}), ${r.instances} random instances` }), table,
    el('p', { class: `verdict ${r.ok ? 'ok' : 'bad'}`, text: r.ok ? `ok: every gradient agrees with finite differences (tolerance ${r.tolerance})` : 'not every gradient agrees' }));
}

const madds = (m) => (typeof m === 'number' ? m.toLocaleString('en-US') : String(m));

async function runPlan() {
  writeUrl();
  const source = program();
  $('plan-result').replaceChildren(el('p', { class: 'busy', text: 'planning…' }));
  const a = await call('plan', [source, wrt(), upstream(), $('plan-dims').value]);
  if (a.cancelled) return cancelled($('plan-result'));
  if (a.status === 2) return showError($('plan-result'), a, source);
  const p = a.output;
  const table = el('table', { class: 'grid plan' }, el('tr', {}, el('th', { text: 'step' }), el('th', { text: 'operation' }), el('th', { text: 'shape' }), el('th', { text: 'multiply-adds' })));
  for (const s of p.steps) {
    table.append(el('tr', {},
      el('td', {}, el('code', { text: s.out })),
      el('td', {}, el('code', { text: s.op + (s.range ? `   for ${s.range}` : '') })),
      el('td', { text: shapeText(s.shape) }),
      el('td', { class: 'num', text: madds(s.madds) })));
  }
  const rows = [el('p', {}, el('strong', { text: 'total: ' }), `${madds(p.total_madds)} multiply-adds`,
    p.symbolic ? '' : `, ${p.products} matrix products`)];
  rows.push(el('p', { text: `each gradient separately: ${madds(p.separate_madds)}` }));
  if (p.forward_madds !== undefined) rows.push(el('p', { text: `the forward value alone: ${madds(p.forward_madds)}` }));
  if (p.outputs) {
    const outs = p.outputs.map((o) => `${o.wrt ? `d/d${o.wrt}` : 'value'} = ${o.value}`).join(';  ');
    rows.push(el('p', {}, 'outputs: ', el('code', { text: outs })));
  }
  $('plan-result').replaceChildren(table, ...rows);
  await runEmit();
}

let language = 'numpy';

async function runEmit() {
  const source = program();
  const a = await call('emit', [source, wrt(), upstream(), $('plan-dims').value, language]);
  if (a.cancelled) return;
  if (a.status === 2) {
    $('code').textContent = diagnostic(a.output, source);
    return;
  }
  $('code').textContent = a.output;
}

// ---- The URL: the program and the options, shareable ------------------------

// The fields a link carries besides the program, by parameter.
const LINKED = { wrt: 'wrt', upstream: 'upstream', claim: 'claim', 'verify-wrt': 'vwrt', 'check-dims': 'cdims', 'plan-dims': 'pdims' };

function writeUrl() {
  const params = new URLSearchParams();
  params.set('e', program());
  for (const [id, key] of Object.entries(LINKED)) if ($(id).value.trim()) params.set(key, $(id).value.trim());
  history.replaceState(null, '', `#${params.toString()}`);
}

function readUrl() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has('e')) return false;
  $('program').value = params.get('e');
  for (const [id, key] of Object.entries(LINKED)) $(id).value = params.get(key) ?? '';
  return true;
}

// ---- Examples (the gallery, examples/ in the repository) ---------------------

async function loadExamples() {
  const examples = await (await fetch('examples.json')).json();
  const bar = $('examples');
  const seed = { name: 'layer', title: 'The layer Z = W1 W2 W3 X and its upstream gradient G', program: 'W1*W2*W3*X', textbook: [{ wrt: 'W2', formula: 'W1^T*G*X^T*W3^T' }] };
  for (const ex of [seed, ...examples]) {
    const b = el('button', { type: 'button', title: ex.title, 'data-example': ex.name, text: ex.name.replaceAll('_', ' ') });
    b.onclick = () => {
      $('program').value = ex.program;
      $('wrt').value = '';
      $('upstream').value = '';
      const t = ex.textbook[0];
      $('verify-wrt').value = t ? t.wrt : '';
      $('claim').value = t ? t.formula : '';
      $('verdict').replaceChildren();
      $('check-result').replaceChildren();
      $('plan-result').replaceChildren();
      $('code').textContent = '';
      update();
    };
    bar.append(b);
  }
}

// ---- Wiring ------------------------------------------------------------------

let debounce;
function scheduleUpdate() {
  clearTimeout(debounce);
  debounce = setTimeout(update, 120);
}

for (const id of ['program', 'wrt', 'upstream']) $(id).addEventListener('input', scheduleUpdate);
$('program').addEventListener('keydown', (e) => {
  // Enter derives at once; Shift+Enter is a new line.
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    clearTimeout(debounce);
    update();
  }
});
$('verify').onclick = runVerify;
$('claim').addEventListener('keydown', (e) => { if (e.key === 'Enter') runVerify(); });
$('check').onclick = runCheck;
$('plan').onclick = runPlan;
for (const b of document.querySelectorAll('.tabs [data-lang]')) {
  b.onclick = () => {
    language = b.dataset.lang;
    for (const o of document.querySelectorAll('.tabs [data-lang]')) o.classList.toggle('active', o === b);
    runEmit();
  };
}
$('copy-code').onclick = async () => {
  await navigator.clipboard.writeText($('code').textContent);
  $('copy-code').textContent = 'Copied';
  setTimeout(() => { $('copy-code').textContent = 'Copy'; }, 1200);
};
$('share').onclick = async () => {
  writeUrl();
  await navigator.clipboard.writeText(location.href);
  $('share').textContent = 'Link copied';
  setTimeout(() => { $('share').textContent = 'Copy link'; }, 1200);
};
window.addEventListener('hashchange', () => { if (readUrl()) update(); });

// Every KaTeX font once the first answer is shown (not before: they would
// compete with the engine's files), not when a formula first needs it: the
// page then works offline once loaded.
function loadAllFonts() {
  for (const face of document.fonts) if (face.family.startsWith('KaTeX')) face.load().catch(() => {});
}

loadExamples();
if (!readUrl()) $('program').value = 'W1*W2*W3*X';
update();
