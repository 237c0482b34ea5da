// The engine's thread: loads the wasm module and answers the page's
// requests one at a time, so that long work (a check, a large e-graph)
// never blocks the page. Each request is {id, fn, args}; each answer
// {id, status, output, ms} (status and output as in web/wasm/src/lib.rs),
// or {id, status: 2, output: {kind: "internal", ...}} when the module traps.
import init, * as engine from './pkg/matdiff_wasm.js';

const ready = init();
// When the module is compiled and instantiated, on the page's clock (the
// worker's performance.now() counts from the worker's own start).
ready.then(() => self.postMessage({ ready: performance.timeOrigin + performance.now() }));
const FUNCTIONS = ['shapes', 'derive', 'verify', 'check', 'plan', 'emit'];

self.onmessage = async (event) => {
  const { id, fn, args } = event.data;
  try {
    await ready;
    if (!FUNCTIONS.includes(fn)) throw new Error(`no function ${fn}`);
    const start = performance.now();
    const answer = JSON.parse(engine[fn](...args));
    self.postMessage({ id, ms: performance.now() - start, ...answer });
  } catch (e) {
    // A trap (a panic, a stack overflow) leaves the module unusable: the
    // page replaces this worker on an internal error.
    self.postMessage({
      id, status: 2, trapped: true,
      output: { kind: 'internal', message: `the engine stopped: ${e}`, labels: [], notes: [] },
    });
  }
};
