// report.html: one self-contained page (inline SVG and CSS, no network) with loss curves, the PostNAS heatmap, the sample.

import type { MetricRecord } from "./rundir.ts";
import type { SearchRecord } from "./postnas.ts";

/** One model in summary.json: its blocks, held-out loss and recall, and its decoding state at --context. */
export interface ModelSummary {
  readonly blocks: readonly string[];
  readonly loss: number;
  /** Recall accuracy on the held-out proxy; null where the data has no recall queries. */
  readonly recall: number | null;
  readonly stateBytes: number;
}

/** One JetBlock geometry of the hardware-aware step. */
export interface GeometrySummary {
  readonly heads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly stateBytes: number;
  readonly tokensPerSecond: number;
  readonly loss: number;
  readonly chosen: boolean;
}

/** What summary.json holds: the teacher, the all-JetBlock model and the chosen one side by side. */
export interface RunSummary {
  readonly teacher: ModelSummary;
  /** Every layer a JetBlock, through the supernet; null where the space has no jet candidate. */
  readonly allJet: ModelSummary | null;
  readonly chosen: ModelSummary;
  /** The hardware-aware geometry search's table (empty without it). */
  readonly hardware: readonly GeometrySummary[];
  /** Wall-clock seconds of the run. */
  readonly seconds: number;
}

/** Everything a report shows. */
export interface ReportInput {
  readonly title: string;
  /** Rows of the summary table. */
  readonly summary: readonly (readonly [string, string])[];
  readonly metrics: readonly MetricRecord[];
  readonly search: SearchRecord | null;
  readonly sample: { readonly prompt: string; readonly output: string; readonly ids: readonly number[] } | null;
  /** summary.json's models side by side (search and demo), their state taken at `context` tokens. */
  readonly comparison?: { readonly summary: RunSummary; readonly context: number } | null;
}

const bytesText = (n: number) =>
  n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;

/** The teacher, all-jet and chosen models side by side, and the geometry table where there is one. */
export function comparisonTable(c: RunSummary, context: number): string {
  const models: [string, ModelSummary | null][] = [["teacher", c.teacher], ["all jet", c.allJet], ["chosen", c.chosen]];
  const shown = models.filter((m): m is [string, ModelSummary] => m[1] !== null);
  const cell = (f: (m: ModelSummary) => string) => shown.map(([, m]) => `<td>${esc(f(m))}</td>`).join("");
  const state = `decoding state at ${context} tokens`;
  const table = `<table><tr><th></th>${shown.map(([name]) => `<th>${esc(name)}</th>`).join("")}</tr>
<tr><th>blocks</th>${cell((m) => m.blocks.join(", "))}</tr>
<tr><th>held-out loss</th>${cell((m) => m.loss.toFixed(3))}</tr>
<tr><th>recall accuracy</th>${cell((m) => (m.recall === null ? "n/a" : m.recall.toFixed(3)))}</tr>
<tr><th>${esc(state)}</th>${cell((m) => bytesText(m.stateBytes))}</tr></table>`;
  if (c.hardware.length === 0) return table;
  const rows = c.hardware.map((g) =>
    `<tr${g.chosen ? ' style="font-weight:bold"' : ""}><td>${g.heads}</td><td>${g.keyDim}</td><td>${g.valueDim}</td>` +
    `<td>${esc(bytesText(g.stateBytes))}</td><td>${g.tokensPerSecond.toFixed(1)}</td><td>${g.loss.toFixed(3)}</td>` +
    `<td>${g.chosen ? "✓" : ""}</td></tr>`
  ).join("\n");
  return `${table}
<h3>JetBlock geometries at equal state</h3>
${geometryPlot(c.hardware)}
<table><tr><th>heads</th><th>key dim</th><th>value dim</th><th>state</th><th>tokens/s</th><th>loss</th><th>chosen</th></tr>
${rows}</table>`;
}

const UNIFORM = Math.log(256);
const BLUE = "#2a6fdb";

/** Escapes text for HTML. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

function ticks(lo: number, hi: number, n: number): number[] {
  const step = (hi - lo) / (n - 1);
  return Array.from({ length: n }, (_, i) => lo + i * step);
}

/** One line of a loss chart: a label (shown in a legend where there are several) and its (step, loss) points. */
export interface Series {
  readonly label: string;
  readonly points: readonly (readonly [number, number])[];
}

const PALETTE = [BLUE, "#d9822b", "#3a9e4f", "#a447b8", "#c43c3c", "#6d6d6d", "#1f9aa8", "#8a6d1f"];

/**
 * An SVG line chart of logged losses, with the uniform-guess level for reference: one phase, or several phases over
 * the same steps (the hardware-aware step's geometries), each its own colour, drawn from their first step on.
 */
export function lossChart(title: string, series: readonly Series[]): string {
  const W = 360, H = 200, left = 44, right = 10, top = 24, bottom = 30;
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = series.length > 1 ? Math.min(...xs) : Math.min(...xs, 0), x1 = Math.max(...xs, x0 + 1);
  const y0 = Math.min(0, ...ys), y1 = Math.max(UNIFORM * 1.05, ...ys);
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * (W - left - right);
  const sy = (y: number) => top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom);
  const lines = series.map((s, k) => {
    const c = PALETTE[k % PALETTE.length];
    const d = s.points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    const dots = s.points.length === 1
      ? `<circle cx="${sx(s.points[0][0])}" cy="${sy(s.points[0][1])}" r="3" fill="${c}"/>`
      : "";
    const legend = series.length > 1
      ? `<text x="${W - right}" y="${top + 14 + 13 * k}" text-anchor="end" fill="${c}">${esc(s.label)}</text>`
      : "";
    return `<path d="${d}" stroke="${c}" stroke-width="2" fill="none"/>${dots}${legend}`;
  });
  const yTicks = ticks(y0, y1, 5).map((y) =>
    `<line x1="${left}" x2="${W - right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#e4e4e4"/>` +
    `<text x="${left - 4}" y="${sy(y) + 4}" text-anchor="end">${fmt(y)}</text>`
  );
  const xTicks = ticks(x0, x1, 5).map((x) =>
    `<text x="${sx(x)}" y="${H - bottom + 16}" text-anchor="middle">${Math.round(x)}</text>`
  );
  const last = series.length === 1 && ys.length ? ` (last ${fmt(ys[ys.length - 1])})` : "";
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${
    esc(title)
  } loss" font-family="sans-serif" font-size="11">
<text x="${left}" y="14" font-weight="bold">${esc(title)}: loss by step${last}</text>
${yTicks.join("\n")}
${xTicks.join("\n")}
<line x1="${left}" x2="${W - right}" y1="${sy(UNIFORM)}" y2="${sy(UNIFORM)}" stroke="#c55" stroke-dasharray="4 3"/>
<text x="${W - right}" y="${sy(UNIFORM) - 4}" text-anchor="end" fill="#777">uniform guess ln 256</text>
${lines.join("\n")}
</svg>`;
}

/**
 * The hardware-aware step as a plot: each JetBlock geometry (all of equal decoding state) at its measured decode
 * tokens/s (x) and held-out loss (y, lower is better), the kept one filled and outlined.
 */
export function geometryPlot(rows: readonly GeometrySummary[]): string {
  const W = 460, H = 260, left = 54, right = 20, top = 28, bottom = 44;
  const xs = rows.map((g) => g.tokensPerSecond), ys = rows.map((g) => g.loss);
  const pad = (lo: number, hi: number) => (hi > lo ? (hi - lo) * 0.12 : Math.max(Math.abs(hi) * 0.05, 1e-3));
  const xPad = pad(Math.min(...xs), Math.max(...xs)), yPad = pad(Math.min(...ys), Math.max(...ys));
  const x0 = Math.max(0, Math.min(...xs) - xPad), x1 = Math.max(...xs) + xPad;
  const y0 = Math.min(...ys) - yPad, y1 = Math.max(...ys) + yPad;
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * (W - left - right);
  const sy = (y: number) => top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom);
  // Enough decimals that the five loss ticks read apart (losses of close geometries differ in the 4th place).
  const decimals = Math.min(6, Math.max(2, Math.ceil(-Math.log10((y1 - y0) / 4)) + 1));
  const grid = ticks(y0, y1, 5).map((y) =>
    `<line x1="${left}" x2="${W - right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#e4e4e4"/>` +
    `<text x="${left - 4}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(decimals)}</text>`
  );
  const xTicks = ticks(x0, x1, 5).map((x) =>
    `<text x="${sx(x)}" y="${H - bottom + 16}" text-anchor="middle">${fmt(x)}</text>`
  );
  const points = rows.map((g) => {
    const name = `${g.heads}x${g.keyDim}x${g.valueDim}`, x = sx(g.tokensPerSecond), y = sy(g.loss);
    const tip = `${name}: ${g.tokensPerSecond.toFixed(1)} tokens/s, loss ${g.loss.toFixed(4)}${
      g.chosen ? ", kept" : ""
    }`;
    const dot = g.chosen
      ? `<circle cx="${x}" cy="${y}" r="6" fill="#3a9e4f" stroke="#111" stroke-width="2"/>`
      : `<circle cx="${x}" cy="${y}" r="4.5" fill="#fff" stroke="${BLUE}" stroke-width="2"/>`;
    return `<g class="geometry"><title>${esc(tip)}</title>${dot}` +
      `<text x="${x + 8}" y="${y - 7}"${g.chosen ? ' font-weight="bold"' : ""}>${esc(name)}${
        g.chosen ? " ✓" : ""
      }</text></g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="JetBlock geometries" font-family="sans-serif" font-size="11">
<text x="8" y="14" font-weight="bold">JetBlock geometries (heads x key x value) at equal state: speed and loss</text>
${grid.join("\n")}
${xTicks.join("\n")}
<text x="${(left + W - right) / 2}" y="${
    H - 8
  }" text-anchor="middle" fill="#555">decode tokens/s (right is faster)</text>
<text x="12" y="${(top + H - bottom) / 2}" text-anchor="middle" fill="#555" transform="rotate(-90 12 ${
    (top + H - bottom) / 2
  })">held-out loss</text>
${points.join("\n")}
</svg>`;
}

// Lower scores are better: green for the best, through yellow, to red for the worst.
function color(t: number): string {
  return `hsl(${Math.round(120 * (1 - t))}, 65%, ${Math.round(72 - 10 * (1 - t))}%)`;
}

/** The layer x candidate heatmap of PostNAS scores, the chosen block of each layer outlined. */
export function heatmap(search: SearchRecord): string {
  const cw = 92, ch = 34, left = 64, top = 40, n = search.candidates.length, L = search.layers.length;
  const W = Math.max(left + n * cw + 10, 400), H = top + L * ch + 46;
  const scores = search.layers.flatMap((l) => l.cells.map((c) => c.score)).filter((s): s is number => s !== null);
  const lo = Math.min(...scores), hi = Math.max(...scores);
  const cells = search.layers.flatMap(({ layer, chosen, cells }) =>
    cells.map((c, j) => {
      const x = left + j * cw, y = top + layer * ch;
      const fill = c.score === null
        ? "#eee"
        : !c.feasible
        ? "url(#over)"
        : color(hi > lo ? (c.score - lo) / (hi - lo) : 0);
      const tip = c.score === null ? "not scored" : `score ${c.score.toFixed(4)}, loss ${c.loss?.toFixed(4)}` +
        (c.accuracy === null ? "" : `, recall ${c.accuracy.toFixed(3)}`) + (c.feasible ? "" : " (over budget)");
      const mark = c.candidate === chosen;
      return `<g><title>layer ${layer}, ${esc(c.candidate)}: ${esc(tip)}</title>` +
        `<rect x="${x + 2}" y="${y + 2}" width="${cw - 4}" height="${ch - 4}" fill="${fill}"` +
        (mark ? ` stroke="#111" stroke-width="3"` : "") + `/>` +
        `<text x="${x + cw / 2}" y="${y + ch / 2 + 4}" text-anchor="middle">${mark ? "✓ " : ""}${
          c.score === null ? "–" : c.score.toFixed(3)
        }</text></g>`;
    })
  );
  const heads = search.candidates.map((c, j) =>
    `<text x="${left + j * cw + cw / 2}" y="${top - 8}" text-anchor="middle" font-weight="bold">${esc(c)}</text>`
  );
  const rows = search.layers.map(({ layer }) =>
    `<text x="${left - 8}" y="${
      top + layer * ch + ch / 2 + 4
    }" text-anchor="end" font-weight="bold">layer ${layer}</text>`
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="PostNAS scores" font-family="sans-serif" font-size="11">
<defs><pattern id="over" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="6" height="6" fill="#ddd"/><line x1="0" y1="0" x2="0" y2="6" stroke="#aaa" stroke-width="3"/></pattern></defs>
<text x="8" y="14" font-weight="bold">PostNAS scores per layer and candidate (lower is better)</text>
${heads.join("\n")}
${rows.join("\n")}
${cells.join("\n")}
<text x="8" y="${H - 24}" fill="#555">✓ chosen; hatched: scored only in over-budget configurations</text>
<text x="8" y="${H - 8}" fill="#555">score = ${esc(search.objective)}</text>
</svg>`;
}

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse}
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
svg{margin:.3em .6em .3em 0}
pre{background:#f6f6f6;padding:.8em;white-space:pre-wrap;word-break:break-all}.gen{background:#d9ecff}`;

/** The whole page. */
export function renderReport(r: ReportInput): string {
  // The hardware-aware step's geometries train over the same steps: one chart, a line each.
  const phases = [...new Set(r.metrics.map((m) => m.phase))];
  const seriesOf = (p: string): Series => ({
    label: p.replace(/^geometry /, ""),
    points: r.metrics.filter((m) => m.phase === p).map((m) => [m.step, m.loss] as const),
  });
  const geometries = phases.filter((p) => p.startsWith("geometry "));
  const charts = [
    ...phases.filter((p) => !geometries.includes(p)).map((p) => lossChart(p, [seriesOf(p)])),
    ...(geometries.length ? [lossChart("geometries", geometries.map(seriesOf))] : []),
  ];
  const rows = r.summary.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("\n");
  const sample = r.sample === null ? "" : `<h2>Generated sample</h2>
<p>Greedy continuation; the highlighted part is generated.</p>
<pre>${esc(r.sample.prompt)}<span class="gen">${esc(r.sample.output)}</span></pre>
<p>Token ids: <code>${r.sample.ids.join(" ")}</code></p>`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>
<body><h1>${esc(r.title)}</h1>
<table>${rows}</table>
<h2>Loss curves</h2>
${charts.length ? charts.join("\n") : "<p>No steps were logged.</p>"}
${
    r.comparison
      ? `<h2>Teacher, all-jet and chosen</h2>\n${comparisonTable(r.comparison.summary, r.comparison.context)}`
      : ""
  }
${r.search ? `<h2>PostNAS search</h2>\n${heatmap(r.search)}` : ""}
${sample}
</body></html>
`;
}
