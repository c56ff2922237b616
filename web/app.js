// The demo page: its controls, progress, drawings and summary around the pipeline in demo.js.

import { DEFAULTS, PHASES, runDemo } from "./demo.js";
import { COLORS, Heatmap, LossChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const OPTIONS = ["backend", "seed", "pretrain", "supernet", "tune"];

// URL parameters preset the controls (?backend=cpu&pretrain=20...); ?autorun starts at once.
function presetFromUrl() {
  const q = new URLSearchParams(location.search);
  for (const name of OPTIONS) $(name).value = q.get(name) ?? DEFAULTS[name];
  return q.has("autorun");
}

function readOptions() {
  const o = { backend: $("backend").value };
  for (const name of OPTIONS.slice(1)) {
    const v = Number($(name).value);
    if (!Number.isInteger(v) || v < (name === "seed" ? 0 : 1)) throw new Error(`${name}: expected a whole number`);
    o[name] = v;
  }
  return o;
}

function describeBackend(info) {
  if (info.name === "cpu") {
    const why = info.requested === "cpu" ? "chosen above" : "this browser offers no WebGPU adapter";
    return `Running on jetfold's CPU backend (${why}). It gives the same numbers as Deno on the CPU, bit for bit.`;
  }
  if (info.name === "wasm") {
    // Threads need a cross-origin isolated page (shared memory) and jetfold_worker.js beside the bundle.
    const why = info.requested === "wasm" ? "chosen above" : info.reason.replace(/^auto: /, "");
    const on = info.threads > 1 ? `on ${info.threads} threads` : "on one thread";
    return `Running on jetfold's Wasm SIMD backend (${why}), ${on}. Its numbers are Deno's, bit for bit.`;
  }
  const soft = info.fallbackAdapter ? ", a software adapter: expect CPU speed, not GPU speed" : "";
  return `Running on WebGPU: ${info.adapter}${soft}.`;
}

// Which adapter the page would use, before any run.
async function probeAdapter() {
  const gpu = navigator.gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (adapter === null) {
    $("adapter").textContent = gpu
      ? "This browser has WebGPU but offers no adapter: jetfold will run on its Wasm SIMD backend."
      : "This browser has no WebGPU (navigator.gpu is missing): jetfold will run on its Wasm SIMD backend.";
    return;
  }
  const i = adapter.info ?? {};
  const name = i.description || [i.vendor, i.architecture].filter(Boolean).join(" ") || "an unnamed adapter";
  $("adapter").textContent = `WebGPU adapter found: ${name}. Choose "Wasm SIMD" or "CPU" above to compare.`;
}

function markPhase(name) {
  const at = name === "end" ? PHASES.length : PHASES.indexOf(name);
  for (const li of $("phases").children) {
    const i = PHASES.indexOf(li.dataset.phase);
    li.className = i < at ? "done" : i === at ? "active" : "";
  }
}

function progress(phase, done, total, started, extra = "") {
  $("bar").style.width = `${(100 * done) / Math.max(total, 1)}%`;
  $("bar").style.background = COLORS[phase] ?? "#76b7b2";
  const secs = (performance.now() - started) / 1000, rate = done / Math.max(secs, 1e-3);
  const eta = done > 0 ? ` · ETA ${Math.ceil((total - done) / rate)} s` : "";
  $("status").textContent = `${phase}: ${done}/${total}${done > 0 ? ` · ${rate.toFixed(1)}/s` : ""}${eta}${extra}`;
}

function showSample(s) {
  const out = $("sample");
  out.replaceChildren();
  const line = document.createElement("p");
  line.className = "sample-text";
  line.append(Object.assign(document.createElement("span"), { className: "prompt", textContent: s.prompt }));
  line.append(Object.assign(document.createElement("span"), { className: "generated", textContent: s.text }));
  const wrote = s.text[0] === " " ? "a space" : `"${s.text[0]}"`;
  const verdict = s.recalled ? "recalled it" : `wrote ${wrote}: not recalled`;
  const note = Object.assign(document.createElement("p"), {
    className: s.recalled ? "verdict good" : "verdict bad",
    textContent: `The prompt ends in a query for the value of "${s.prompt.at(-1)}", which is "${s.expect}"; ` +
      `the model ${verdict}.`,
  });
  out.append(line, note);
}

function showSummary(r) {
  const rows = [
    ["configuration", r.choice.join(", ")],
    ["decoding state at 4096 tokens", `${mib(r.stateBytes.hybrid)} vs ${mib(r.stateBytes.allMha)} for all-mha`],
    ["held-out perplexity", `${r.after.perplexity.toFixed(2)} (before post-tune ${r.before.perplexity.toFixed(2)})`],
    ["recall accuracy", r.after.accuracy.toFixed(3)],
    ["parameters of the base model", r.parameters.toLocaleString("en")],
    ["backend", r.backend.adapter ? `${r.backend.name} (${r.backend.adapter})` : r.backend.name],
    ["time", `${r.seconds.toFixed(0)} s`],
  ];
  $("summary").replaceChildren(...rows.flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: v }),
  ]));
}

const mib = (b) => `${(b / 2 ** 20).toFixed(2)} MiB`;

let stopping = false;

// Clears what an earlier run drew.
function reset() {
  $("heatmap").innerHTML = '<tbody><tr><td class="empty">the search fills this in</td></tr></tbody>';
  $("sample").innerHTML = '<p class="note">The tuned model continues a held-out prompt greedily.</p>';
  $("summary").replaceChildren();
  for (const id of ["eval-before", "eval-after"]) $(id).textContent = "…";
  markPhase("pretrain");
}

async function run() {
  stopping = false;
  document.body.dataset.state = "running";
  [$("run").disabled, $("stop").disabled, $("error").hidden] = [true, false, true];
  reset();
  const chart = new LossChart($("loss"));
  let heatmap = null, total = 0, done = 0, started = performance.now();
  const api = (globalThis.jetfoldDemo = { state: "running", chart, heatmap: null, result: null, error: null });
  try {
    const result = await runDemo(readOptions(), {
      backend: (info) => ($("backend-line").textContent = describeBackend(info)),
      phase(name, steps) {
        [total, done, started] = [steps, 0, performance.now()];
        markPhase(name);
        if (name !== "search" && name !== "sample") chart.phase(name, steps);
        progress(name, 0, total, started);
      },
      step(name, _i, loss) {
        chart.add(name, loss);
        progress(name, ++done, total, started, ` · loss ${loss.toFixed(3)}`);
      },
      visit(v, ev, labels) {
        heatmap ??= api.heatmap = new Heatmap($("heatmap"), DEFAULTS.layers, labels);
        heatmap.visit(v, ev);
        progress("search", ++done, total, started, ` · layer ${v.layer}: ${labels[v.candidate]} ${v.score.toFixed(3)}`);
      },
      evaluation: (name, ev) => ($(`eval-${name}`).textContent = ev.perplexity.toFixed(2)),
      sample: showSample,
      // Yield to the browser between steps, so the drawings update (the CPU backend computes synchronously).
      tick: () =>
        new Promise((resolve, reject) => setTimeout(() => (stopping ? reject(new Error("stopped")) : resolve()), 0)),
    });
    heatmap?.choose(result.choice);
    markPhase("end");
    $("status").textContent = `done in ${result.seconds.toFixed(0)} s: ${result.choice.join(", ")}`;
    showSummary(result);
    [api.state, api.result] = ["done", result];
  } catch (e) {
    const stopped = e.message === "stopped";
    [api.state, api.error] = [stopped ? "stopped" : "error", e.message];
    $("error").hidden = stopped;
    $("error").textContent = e.message;
    $("status").textContent = stopped ? "stopped" : "failed";
  } finally {
    document.body.dataset.state = api.state;
    [$("run").disabled, $("stop").disabled] = [false, true];
  }
}

$("run").addEventListener("click", () => run());
$("stop").addEventListener("click", () => (stopping = true));
for (const [phase, color] of Object.entries(COLORS)) {
  document.querySelector(`[data-phase="${phase}"]`)?.style.setProperty("--phase", color);
}
const autorun = presetFromUrl();
await probeAdapter();
document.body.dataset.state = "idle";
if (autorun) run();
