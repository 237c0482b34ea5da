// Where a first visit's time goes before the first answer (BENCHMARKS.md):
// serves web/dist on localhost, opens the page in a fresh browser context
// (nothing cached) several times, and prints per visit, in ms after
// navigation, when the module was fetched and compiled, the engine ready,
// the shapes and the gradients answered, the first answer on the page and
// readable (laid out, its fonts loaded, painted), the page's `load` event,
// and which engine gave the first answer (the page's own or the worker's).
// A measurement, not a test: CI does not run it.
//
//   node web/tests/first_visit.mjs [DIST] [VISITS]
//
// DIST defaults to web/dist (built by web/build), VISITS to 3; CHROMIUM
// names the browser (default /usr/bin/chromium).
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(process.argv[2] ?? join(here, '..', 'dist'));
const visits = Number(process.argv[3] ?? 3);

const { origin, server } = await serve(dist);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' });
try {
  for (let i = 0; i < visits; i += 1) {
    const context = await browser.newContext();
    const page = await context.newPage();
    // When the page's compileStreaming (index.html) resolves.
    await page.addInitScript(() => {
      const compile = WebAssembly.compileStreaming;
      WebAssembly.compileStreaming = (...args) => compile(...args).then((m) => {
        performance.mark('matdiff:compiled');
        return m;
      });
    });
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.matdiffTiming?.readableMs, null, { timeout: 20_000 });
    const visit = await page.evaluate(() => {
      const ms = (x) => Math.round(x);
      const navigation = performance.getEntriesByType('navigation')[0];
      const wasm = performance.getEntriesByType('resource').find((e) => e.name.endsWith('.wasm'));
      const mark = (name) => ms(performance.getEntriesByName(`matdiff:${name}`)[0]?.startTime ?? NaN);
      return {
        wasm_fetched: ms(wasm.responseEnd),
        compiled: mark('compiled'),
        engine_ready: ms(window.matdiffTiming.engineReadyMs),
        shapes: mark('shapes'),
        gradients: mark('gradients'),
        first_answer: ms(window.matdiffTiming.firstAnswerMs),
        readable: ms(window.matdiffTiming.readableMs),
        load: ms(navigation.loadEventEnd),
        by: window.matdiffTiming.by, first_derive_in_engine: Number(window.matdiffTiming.deriveMs.toFixed(1)),
      };
    });
    console.log(JSON.stringify(visit));
    await context.close();
  }
} finally {
  await browser.close();
  server.close();
}
