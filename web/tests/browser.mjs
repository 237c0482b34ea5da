// The playground in a real browser: serves web/dist on localhost, drives
// Chromium (headless, through playwright-core) through the page, and exits
// non-zero when any check fails. Also measures the load (BENCHMARKS.md) and
// saves a screenshot.
//
//   node web/tests/browser.mjs [DIST] [ARTIFACTS]
//
// DIST defaults to web/dist (built by web/build), ARTIFACTS to
// web/tests/artifacts; CHROMIUM names the browser (default /usr/bin/chromium).
import { readFile, mkdir, writeFile, stat } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(process.argv[2] ?? join(here, '..', 'dist'));
const artifacts = resolve(process.argv[3] ?? join(here, 'artifacts'));
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

const { origin, server } = await serve(dist);

// ---- Checks -------------------------------------------------------------------

let failures = 0;
function expect(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}`);
  if (!ok) failures += 1;
}

const browser = await chromium.launch({ executablePath, headless: true });
const context = await browser.newContext({ viewport: { width: 1100, height: 1000 }, deviceScaleFactor: 1 });
const problems = [];
context.on('request', (r) => {
  if (!r.url().startsWith(origin) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) {
    problems.push(`request outside the page: ${r.url()}`);
  }
});
const page = await context.newPage();
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });

/** The gradient cards: [{wrt, expr}] once `count` are shown. */
async function gradients(p, count) {
  await p.waitForFunction((n) => document.querySelectorAll('#gradients .gradient').length === n, count, { timeout: 20_000 });
  return p.$$eval('#gradients .gradient', (cards) => cards.map((c) => ({ wrt: c.dataset.wrt, expr: c.dataset.expr })));
}

async function typeProgram(p, text) {
  await p.fill('#program', '');
  await p.type('#program', text);
  await p.press('#program', 'Enter');
}

try {
  // Load, and the time to the first answer (the page derives the seed on load).
  const t0 = Date.now();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.matdiffTiming?.readableMs, null, { timeout: 20_000 });
  const timing = await page.evaluate(() => ({
    ...window.matdiffTiming,
    domContentLoadedMs: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
    loadMs: performance.getEntriesByType('navigation')[0].loadEventEnd,
  }));
  const wallMs = Date.now() - t0;
  // Again, five times, in the warm browser (a second visit: files cached,
  // processes up); the medians.
  const visits = [];
  for (let i = 0; i < 5; i += 1) {
    await page.reload();
    await page.waitForFunction(() => window.matdiffTiming, null, { timeout: 20_000 });
    visits.push(await page.evaluate(() => ({ ...window.matdiffTiming, loadMs: performance.getEntriesByType('navigation')[0].loadEventEnd })));
  }
  const median = (f) => visits.map(f).sort((a, b) => a - b)[2];
  const again = {
    firstAnswerMs: median((v) => v.firstAnswerMs),
    engineReadyMs: median((v) => v.engineReadyMs),
    afterReadyMs: median((v) => v.firstAnswerMs - v.engineReadyMs),
    afterLoadMs: median((v) => v.firstAnswerMs - v.loadMs),
  };

  // 1. The seed expression, typed: its four gradients, typeset.
  await typeProgram(page, 'W1*W2*W3*X');
  const seed = await gradients(page, 4);
  const want = {
    W1: 'G * X^T * W3^T * W2^T',
    W2: 'W1^T * G * X^T * W3^T',
    W3: 'W2^T * W1^T * G * X^T',
    X: 'W3^T * W2^T * W1^T * G',
  };
  expect(seed.length === 4 && seed.every((g) => want[g.wrt] === g.expr), 'the seed W1*W2*W3*X has its four gradients',
    seed.map((g) => `d/d${g.wrt} = ${g.expr}`).join('; '));
  // The first answer comes from the page's own engine (its worker starts
  // after it); past the page's limit for it (here none), from the worker.
  for (const [limit, by] of [[60_000, 'page'], [0, 'worker']]) {
    const p = await context.newPage();
    await p.goto(`${origin}/?first-limit-ms=${limit}#e=W1*W2*W3*X`);
    await p.waitForFunction(() => window.matdiffTiming, null, { timeout: 20_000 });
    const first = await gradients(p, 4);
    const answered = await p.evaluate(() => window.matdiffTiming.by);
    expect(answered === by && first.every((g) => want[g.wrt] === g.expr),
      `with a limit of ${limit} ms for the first answer, the ${by === 'page' ? "page's own engine" : 'worker'} gives it`,
      `${answered}: ${first.map((g) => g.expr).join('; ')}`);
    await p.close();
  }
  const typeset = await page.$$eval('#gradients .gradient .formula .katex', (k) => k.length);
  expect(typeset === 4, 'each gradient is typeset by KaTeX', `${typeset} typeset`);
  const shapes = await page.textContent('#shapes');
  expect(/W1\s*d0 × d1/.test(shapes) && /d0 × d4/.test(shapes), 'live shapes show the variables and the result', shapes);
  // A warm derivation: from Enter to the gradients on the page.
  await page.fill('#program', 'W1*W2*W3*X + W1*W2*W3*X');
  const warm = await page.evaluate(async () => {
    const start = performance.now();
    document.getElementById('program').value = 'W1*W2*W3*X';
    document.getElementById('program').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    await new Promise((ok) => {
      const poll = () => (document.querySelectorAll('#gradients .gradient').length === 4
        && document.querySelector('#gradients .gradient').dataset.expr === 'G * X^T * W3^T * W2^T' ? ok() : requestAnimationFrame(poll));
      poll();
    });
    return performance.now() - start;
  });

  // The steps of d/dW2 unfold.
  await page.click('.gradient[data-wrt="W2"] details summary');
  await page.waitForSelector('.gradient[data-wrt="W2"] details[open] .shape-check');
  const steps = await page.$$eval('.gradient[data-wrt="W2"] details[open] tr', (rows) => rows.length);
  expect(steps >= 4, 'the derivation steps of d/dW2 unfold', `${steps} steps`);
  const check = await page.textContent('.gradient[data-wrt="W2"] .shape-check');
  expect(/d1 x d2/.test(check ?? ''), 'the steps end in the shape check', check);

  // The screenshot of the seed derivation with its steps.
  await mkdir(artifacts, { recursive: true });
  const shot = join(artifacts, 'playground.png');
  await page.screenshot({ path: shot, fullPage: false });
  console.log(`screenshot: ${shot}`);

  // 2. A false claim is rejected, the right one accepted.
  await page.fill('#verify-wrt', 'W2');
  await page.fill('#claim', '-W1^T*G*X^T*W3^T');
  await page.click('#verify');
  await page.waitForSelector('#verdict .verdict');
  const wrong = await page.textContent('#verdict .verdict');
  expect(/^NOT EQUIVALENT/.test(wrong), 'a false claim is rejected', wrong);
  await page.fill('#claim', 'W1^T*G*X^T*W3^T');
  await page.click('#verify');
  await page.waitForFunction(() => /^EQUIVALENT/.test(document.querySelector('#verdict .verdict')?.textContent ?? ''), null, { timeout: 20_000 });
  expect(true, 'the right claim is accepted');

  // 3. Finite differences agree.
  await page.click('#check');
  await page.waitForSelector('#check-result .verdict');
  const checked = await page.textContent('#check-result .verdict');
  expect(/^ok/.test(checked), 'check: every gradient agrees with finite differences', checked);

  // 4. The plan with sizes, and the emitted code.
  await page.fill('#plan-dims', 'd0=64, d1=64, d2=64, d3=64, d4=65536');
  await page.click('#plan');
  await page.waitForSelector('#plan-result table');
  await page.waitForFunction(() => document.getElementById('code').textContent.length > 0, null, { timeout: 20_000 });
  const planRows = await page.$$eval('#plan-result table tr', (r) => r.length - 1);
  const total = await page.textContent('#plan-result p');
  expect(planRows > 0 && /[0-9,]+ multiply-adds/.test(total), 'the plan is a table with multiply-adds', `${planRows} steps, ${total}`);
  const numpy = await page.textContent('#code');
  expect(/def value_and_grads\(/.test(numpy) && /import numpy/.test(numpy), 'NumPy code is emitted');
  await page.click('.tabs [data-lang="pytorch"]');
  await page.waitForFunction(() => /torch\.autograd\.Function/.test(document.getElementById('code').textContent), null, { timeout: 20_000 });
  expect(true, 'PyTorch code is emitted');
  await page.click('.tabs [data-lang="jax"]');
  await page.waitForFunction(() => /custom_vjp/.test(document.getElementById('code').textContent), null, { timeout: 20_000 });
  expect(true, 'JAX code is emitted');
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  await page.click('#copy-code');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied === await page.textContent('#code') && /custom_vjp/.test(copied), 'the copy button copies the code');
  await page.click('#share');
  const shared = await page.evaluate(() => navigator.clipboard.readText());
  expect(shared === page.url() && shared.includes('#e=W1*W2*W3*X'), 'the link button copies the permalink', shared);
  const full = join(artifacts, 'playground-full.png');
  await page.screenshot({ path: full, fullPage: true });
  console.log(`screenshot: ${full}`);

  // 5. A shape error shows its caret under the offending operator.
  const bad = 'A : 3x4; B : 5x6; A*B';
  await typeProgram(page, bad);
  await page.waitForSelector('#diagnostic:not([hidden])');
  const diagnostic = await page.textContent('#diagnostic');
  const lines = diagnostic.split('\n');
  const at = lines.findIndex((l) => l.endsWith(bad));
  const caret = at >= 0 ? lines[at + 1].indexOf('^') : -1;
  const column = at >= 0 ? lines[at].length - bad.length + bad.indexOf('*', 12) : -2;
  expect(/^shape error: cannot multiply 3x4 by 5x6/.test(diagnostic) && caret === column,
    'a shape error shows its caret under the `*`', `\n${diagnostic}`);
  const parse = 'W1*(W2 + ';
  await typeProgram(page, parse);
  await page.waitForFunction(() => /^parse error/.test(document.getElementById('diagnostic').textContent), null, { timeout: 20_000 });
  expect(/\^/.test(await page.textContent('#diagnostic')), 'a parse error shows its caret');

  // 6. A permalink reproduces the result.
  await typeProgram(page, 'x : n; A : n x n; x^T*A*x');
  await page.fill('#wrt', 'x');
  await page.press('#wrt', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('#gradients .gradient').length === 1, null, { timeout: 20_000 });
  const before = await gradients(page, 1);
  await page.fill('#verify-wrt', 'x');
  await page.fill('#claim', '2*A*x');
  await page.click('#verify');
  await page.waitForSelector('#verdict .verdict.bad');
  const link = page.url();
  const other = await context.newPage();
  await other.goto(link);
  const after = await gradients(other, 1);
  expect(link.includes('#e=') && JSON.stringify(before) === JSON.stringify(after) && before[0].expr === '(A + A^T) * x',
    'a permalink reproduces the derivation', `${link} -> d/d${after[0].wrt} = ${after[0].expr}`);
  const claim = await other.inputValue('#claim');
  await other.click('#verify');
  await other.waitForSelector('#verdict .verdict');
  const verdict = await other.textContent('#verdict .verdict');
  expect(claim === '2*A*x' && /^NOT EQUIVALENT/.test(verdict), 'the link carries the claim, rejected again', `${claim}: ${verdict.slice(0, 40)}`);
  await other.close();

  // The page's last resort: a request past its hard limit (lowered here to
  // 300 ms) replaces the worker and says so; the page answers again.
  // (The check of a three-layer tanh network at widths 128 takes seconds.)
  const heavy = 'W1 : n x n; W2 : n x n; W3 : n x n; X : n x n; Y : n x n; norm(W3*tanh(W2*tanh(W1*X)) - Y)^2';
  const heavyLink = `${origin}/?hard-limit-ms=300#e=${encodeURIComponent(heavy)}&cdims=n%3D128`;
  const limited = await context.newPage();
  await limited.goto(heavyLink);
  await gradients(limited, 5);
  await limited.click('#check');
  await limited.waitForFunction(() => /limit reached: the page stopped the engine after 0.3 s/.test(document.getElementById('check-result').textContent), null, { timeout: 20_000 });
  await typeProgram(limited, 'W1*W2*W3*X');
  const revived = await gradients(limited, 4);
  expect(revived.length === 4, 'past its hard limit the worker is replaced, and the page answers again');
  await limited.close();

  // 7. An example from the gallery is one click away.
  await page.click('#examples [data-example="mlp"]');
  const mlp = await gradients(page, 6);
  expect(mlp.some((g) => g.wrt === 'W1'), 'the gallery example mlp derives', mlp.map((g) => g.wrt).join(' '));

  // 8. Deep input: a chain of 150 factors derives in the browser; past the
  // browser's depth limit, a limit error by name, not a trap.
  await typeProgram(page, Array.from({ length: 150 }, (_, i) => `W${i}`).join('*'));
  const chain = await gradients(page, 150);
  expect(chain[149].expr.split('*').length === 150, 'a chain of 150 factors derives', chain[149].expr.slice(0, 40));
  await typeProgram(page, `${'-'.repeat(300)}tr(X)`);
  await page.waitForFunction(() => /^limit reached/.test(document.getElementById('diagnostic').textContent), null, { timeout: 20_000 });
  expect(true, 'input past the depth limit is refused by name');
  await typeProgram(page, 'W1*W2*W3*X');
  await gradients(page, 4);
  expect(true, 'the page answers again after the refusal');

  // 9. Offline once loaded: with the network cut, a new program still derives,
  // with formulas that need further fonts (\mathbb, \operatorname), and verifies.
  await page.waitForFunction(() => [...document.fonts].filter((f) => f.family.startsWith('KaTeX')).every((f) => f.status === 'loaded'), null, { timeout: 20_000 });
  await context.setOffline(true);
  await typeProgram(page, 'X : n x n; y : n; logdet(X) + y^T*inv(X)*y');
  const offline = await gradients(page, 2);
  await page.fill('#verify-wrt', 'y');
  await page.fill('#claim', '(inv(X) + inv(X)^T)*y');
  await page.click('#verify');
  await page.waitForFunction(() => /^EQUIVALENT/.test(document.querySelector('#verdict .verdict')?.textContent ?? ''), null, { timeout: 20_000 });
  expect(offline.length === 2, 'offline once loaded: derives and verifies', offline.map((g) => `d/d${g.wrt} = ${g.expr}`).join('; '));
  await context.setOffline(false);

  // The load, for BENCHMARKS.md.
  const wasm = await readFile(join(dist, 'pkg', 'matdiff_wasm_bg.wasm'));
  const measured = {
    wasm_bytes: (await stat(join(dist, 'pkg', 'matdiff_wasm_bg.wasm'))).size,
    wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
    first_answer_by: timing.by,
    first_answer_after_navigation_ms: Math.round(timing.firstAnswerMs),
    first_answer_after_load_ms: Math.round(timing.firstAnswerMs - timing.loadMs),
    first_answer_readable_after_navigation_ms: Math.round(timing.readableMs),
    engine_ready_after_navigation_ms: Math.round(timing.engineReadyMs),
    first_answer_after_engine_ready_ms: Math.round(timing.firstAnswerMs - timing.engineReadyMs),
    reload_median_first_answer_after_navigation_ms: Math.round(again.firstAnswerMs),
    reload_median_first_answer_after_load_ms: Math.round(again.afterLoadMs),
    reload_median_engine_ready_after_navigation_ms: Math.round(again.engineReadyMs),
    reload_median_first_answer_after_engine_ready_ms: Math.round(again.afterReadyMs),
    dom_content_loaded_ms: Math.round(timing.domContentLoadedMs),
    first_derive_in_engine_ms: Number(timing.deriveMs.toFixed(1)),
    warm_derive_enter_to_page_ms: Number(warm.toFixed(1)),
    wall_goto_to_first_answer_readable_ms: wallMs,
  };
  console.log(`timing: ${JSON.stringify(measured)}`);
  await writeFile(join(artifacts, 'timing.json'), `${JSON.stringify(measured, null, 2)}\n`);
  expect(measured.wasm_gzip_bytes < 1 << 20, 'the wasm is under 1 MB gzipped', `${measured.wasm_gzip_bytes} bytes`);
} catch (e) {
  expect(false, 'the browser test ran to the end', e.stack ?? String(e));
} finally {
  for (const p of problems) expect(false, p);
  await browser.close();
  server.close();
}
console.log(failures ? `${failures} check(s) failed` : 'every browser check passed');
process.exit(failures ? 1 : 0);
