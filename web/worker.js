// The engine's thread: instantiates the wasm module the page compiled and
// sent (the first message, {module}), then answers the page's requests one
// at a time, so that long work (a check, a large e-graph) never blocks the
// page. Each request is {id, fn, args}; each answer {id, status, output, ms}
// (status and output as in web/wasm/src/lib.rs), or {id, status: 2, trapped,
// output: {kind: "internal", ...}} when the module traps.
import init, * as engine from './pkg/matdiff_wasm.js';

const FUNCTIONS = ['shapes', 'derive', 'verify', 'check', 'plan', 'emit'];
// Requests that come before the module wait for it.
let receive;
const ready = new Promise((resolve) => { receive = resolve; });

self.onmessage = async (event) => {
  if (event.data.module) {
    // Once instantiated, the page hears when, on its own clock (the
    // worker's performance.now() counts from the worker's start), before
    // any answer.
    receive(init({ module_or_path: event.data.module }).then(() => {
      self.postMessage({ ready: performance.timeOrigin + performance.now() });
    }));
    return;
  }
  const { id, fn, args } = event.data;
  try {
    await ready;
    if (!FUNCTIONS.includes(fn)) throw new Error(`no function ${fn}`);
    const start = performance.now();
    const answer = JSON.parse(engine[fn](...args));
    self.postMessage({ id, ms: performance.now() - start, ...answer });
  } catch (e) {
    // A trap (a panic, the stack exhausted) leaves the module unusable: the
    // page replaces this worker when it sees `trapped`.
    self.postMessage({
      id, status: 2, trapped: true,
      output: { kind: 'internal', message: `the engine stopped: ${e}`, labels: [], notes: [] },
    });
  }
};
