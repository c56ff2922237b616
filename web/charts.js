// The demo page's drawings, as SVG: the loss curve of every training phase, and the PostNAS heatmap.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent?.append(node);
  return node;
}

/** Phase colors, shared with the page's legend and progress list (style.css). */
export const COLORS = Object.freeze({ pretrain: "#4e79a7", supernet: "#f28e2b", tune: "#59a14f" });

/** The loss of each training phase against the step, one after the other on one axis. */
export class LossChart {
  #svg;
  #series = new Map(); // phase -> { start, points: number[] }
  #total = 0;
  #size = { w: 640, h: 260, left: 44, right: 12, top: 12, bottom: 28 };

  constructor(svg) {
    this.#svg = svg;
    svg.setAttribute("viewBox", `0 0 ${this.#size.w} ${this.#size.h}`);
    this.#draw();
  }

  /** Declares that a phase of `steps` steps comes next (its part of the x axis). */
  phase(name, steps) {
    this.#series.set(name, { start: this.#total, points: [] });
    this.#total += steps;
    this.#draw();
  }

  /** Adds one step's loss. */
  add(name, loss) {
    this.#series.get(name).points.push(loss);
    this.#draw();
  }

  /** Number of points drawn (for tests). */
  get points() {
    return [...this.#series.values()].reduce((n, s) => n + s.points.length, 0);
  }

  #draw() {
    const { w, h, left, right, top, bottom } = this.#size;
    const svg = this.#svg;
    svg.replaceChildren();
    const all = [...this.#series.values()].flatMap((s) => s.points).filter(Number.isFinite);
    const hi = all.length ? Math.max(...all) : 6, lo = all.length ? Math.min(...all) : 0;
    // Whole-number ticks, or halves when the range is small.
    const unit = hi - lo > 3 ? 1 : 0.5;
    const [y0, y1] = [Math.max(0, Math.floor(lo / unit) * unit), Math.max(Math.ceil(hi / unit) * unit, unit)];
    const x = (i) => left + (i / Math.max(this.#total - 1, 1)) * (w - left - right);
    const y = (v) => top + (1 - (v - y0) / Math.max(y1 - y0, 1e-9)) * (h - top - bottom);
    const axis = el("g", { class: "axis" }, svg);
    const every = Math.ceil((y1 - y0) / unit / 6) * unit; // at most about 6 lines
    for (let v = y0; v <= y1 + 1e-9; v += every) {
      el("line", { x1: left, x2: w - right, y1: y(v), y2: y(v), class: "grid" }, axis);
      el("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, axis).textContent = String(v);
    }
    el("text", { x: w - right, y: h - 8, "text-anchor": "end" }, axis).textContent = `${this.#total} steps`;
    for (const [name, s] of this.#series) {
      if (s.start > 0) el("line", { x1: x(s.start), x2: x(s.start), y1: top, y2: h - bottom, class: "split" }, axis);
      el("text", { x: x(s.start) + 4, y: h - 8, class: "phase-name" }, axis).textContent = name;
      if (s.points.length === 0) continue;
      const d = s.points.map((v, i) => `${i ? "L" : "M"}${x(s.start + i).toFixed(1)},${y(v).toFixed(1)}`).join("");
      el("path", { d, fill: "none", stroke: COLORS[name] ?? "#888", "stroke-width": 2 }, svg);
      const last = s.points.length - 1;
      el("circle", { cx: x(s.start + last), cy: y(s.points[last]), r: 3, fill: COLORS[name] ?? "#888" }, svg);
    }
  }
}

/** Layers x candidates: each cell the best score PostNAS found with that block in that layer. */
export class Heatmap {
  #labels;
  #cells = []; // [layer][candidate] -> { td, best }

  constructor(table, layers, labels) {
    this.#labels = labels;
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    head.append(Object.assign(document.createElement("th"), { textContent: "layer" }));
    for (const l of labels) head.append(Object.assign(document.createElement("th"), { textContent: l }));
    const body = table.createTBody();
    for (let i = 0; i < layers; i++) {
      const row = body.insertRow();
      row.append(Object.assign(document.createElement("th"), { textContent: String(i) }));
      this.#cells.push(labels.map(() => ({ td: row.insertCell(), best: null })));
    }
    for (const row of this.#cells) for (const c of row) c.td.className = "empty";
  }

  /** A scored configuration: keeps the cell's best (feasible first) and recolors every cell. */
  visit(v, ev) {
    const cell = this.#cells[v.layer][v.candidate];
    const better = cell.best === null || (v.feasible && !cell.best.feasible) ||
      (v.feasible === cell.best.feasible && v.score < cell.best.score);
    if (better) cell.best = { score: v.score, feasible: v.feasible, loss: ev?.loss, accuracy: ev?.accuracy };
    this.#paint();
  }

  /** Marks the chosen block of every layer, by label. */
  choose(choice) {
    choice.forEach((c, layer) => this.#cells[layer][this.#labels.indexOf(c)]?.td.classList.add("chosen"));
  }

  /** Cells scored so far (for tests). */
  get filled() {
    return this.#cells.flat().filter((c) => c.best !== null).length;
  }

  #paint() {
    const scores = this.#cells.flat().filter((c) => c.best?.feasible).map((c) => c.best.score);
    const [lo, hi] = [Math.min(...scores), Math.max(...scores)];
    for (const c of this.#cells.flat()) {
      if (c.best === null) continue;
      const t = hi > lo ? (c.best.score - lo) / (hi - lo) : 0;
      const chosen = c.td.classList.contains("chosen");
      c.td.className = c.best.feasible ? "scored" : "scored over";
      if (chosen) c.td.classList.add("chosen");
      // Low scores (better) green, high ones red.
      c.td.style.background = c.best.feasible ? `hsl(${(1 - t) * 120}, 55%, ${72 - 10 * (1 - t)}%)` : "";
      const recall = Number.isFinite(c.best.accuracy) ? ` · recall ${c.best.accuracy.toFixed(2)}` : "";
      c.td.innerHTML = `<b>${c.best.score.toFixed(3)}</b><small>loss ${c.best.loss?.toFixed(3)}${recall}</small>`;
      c.td.title = c.best.feasible ? "" : "over the budget of one mha layer";
    }
  }
}
