// A scoring worker: pulls jobs from the work queue, scores them as a local search would, stores results once.

import type { BlockSpec, Supernet, ToyBatch } from "../../mod.ts";
import type { JsMsg } from "@nats-io/jetstream";
import {
  getBlob,
  getResult,
  type Job,
  putFailure,
  putResult,
  readJob,
  resultOf,
  scoreJob,
  unpackBatches,
  unpackSupernet,
} from "./jobs.ts";
import { type Cluster, ClusterError, pause } from "./nats.ts";

/** Options of `serveJobs`. */
export interface WorkerOptions {
  /** This worker's name in results and heartbeats (letters, digits, `-_.`). */
  readonly id: string;
  /** Asked before each job: true once a signal asked the worker to stop. */
  readonly stopping: () => boolean;
  /** One line per event (connected, job started, job done). */
  readonly log: (line: string) => void;
  /** How a configuration is shown in the log. */
  readonly describe?: (config: readonly BlockSpec[]) => string;
  /** What the heartbeat says the worker computes on (e.g. "cpu"). */
  readonly backend?: string;
}

const HEARTBEAT_MS = 2000;
const FETCH_MS = 1000;
// A pull that outlives its own expiry this long is given up on: a message it may still bring is
// never acked, so the server hands it out again after the ack wait.
const FETCH_LIMIT_MS = 10_000;

async function fetchJob(cluster: Cluster): Promise<JsMsg | null | "late"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), FETCH_LIMIT_MS));
  try {
    return await Promise.race([cluster.consumer.next({ expires: FETCH_MS }), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keeps the last few decoded blobs: a search sends every job of a layer with the same two. */
class BlobCache<T> {
  readonly #items = new Map<string, T>();
  constructor(readonly load: (hash: string) => Promise<T>, readonly keep = 2) {}
  async get(hash: string): Promise<T> {
    const hit = this.#items.get(hash);
    if (hit !== undefined) return hit;
    const value = await this.load(hash);
    this.#items.set(hash, value);
    if (this.#items.size > this.keep) this.#items.delete(this.#items.keys().next().value!);
    return value;
  }
}

/**
 * Serves scoring jobs until `stopping()` says to stop: each job is scored with `pathObjective` on the
 * supernet and held-out data its hashes name, the result stored unless one is there (so a duplicate
 * delivery changes nothing), then acked. A job that fails to score is recorded as failed; one that
 * arrives after a stop was asked is handed back (nak). Returns the number of jobs scored.
 */
export async function serveJobs(cluster: Cluster, o: WorkerOptions): Promise<number> {
  const supernets = new BlobCache<Supernet>(async (h) => unpackSupernet(await getBlob(cluster, "supernet", h)));
  const datasets = new BlobCache<ToyBatch[]>(async (h) => unpackBatches(await getBlob(cluster, "data", h)));
  const ackWaitMs = ((await cluster.consumer.info()).config.ack_wait ?? 60e9) / 1e6;
  let scored = 0, state = "idle";
  const beat = () =>
    cluster.workers.put(o.id, JSON.stringify({ id: o.id, state, scored, backend: o.backend ?? null }))
      .catch(() => {});
  await beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS);
  const describe = o.describe ?? ((c: readonly BlockSpec[]) => c.map((b) => b.attn).join(","));
  o.log(`worker ${o.id}: waiting for jobs on ${cluster.url} (ack wait ${ackWaitMs / 1000} s)`);
  try {
    while (!o.stopping()) {
      cluster.check();
      let msg: JsMsg | null;
      try {
        const got = await fetchJob(cluster);
        if (got === "late") {
          o.log(`worker ${o.id}: a fetch did not return in ${FETCH_LIMIT_MS / 1000} s; fetching again`);
          continue;
        }
        msg = got;
      } catch (e) {
        cluster.check();
        if (cluster.nc.isClosed()) throw new ClusterError(`the connection to ${cluster.url} closed`);
        o.log(`worker ${o.id}: could not fetch a job (${(e as Error).message}); retrying`);
        await pause(cluster, 500);
        continue;
      }
      if (msg === null) continue;
      if (o.stopping()) {
        msg.nak();
        break;
      }
      state = "busy";
      await beat();
      if (await handle(cluster, msg, { ...o, describe, ackWaitMs, supernets, datasets })) scored++;
      state = "idle";
      await beat();
    }
  } finally {
    clearInterval(heartbeat);
    if (cluster.lost === null) await cluster.workers.delete(o.id).catch(() => {});
  }
  o.log(`worker ${o.id}: stopped after ${scored} job${scored === 1 ? "" : "s"}`);
  return scored;
}

interface Handling extends WorkerOptions {
  readonly describe: (config: readonly BlockSpec[]) => string;
  readonly ackWaitMs: number;
  readonly supernets: BlobCache<Supernet>;
  readonly datasets: BlobCache<ToyBatch[]>;
}

// One job; true when this worker scored it.
async function handle(cluster: Cluster, msg: JsMsg, h: Handling): Promise<boolean> {
  let job: Job;
  try {
    job = readJob(msg.data);
  } catch (e) {
    h.log(`worker ${h.id}: dropped a message that is not a job (${(e as Error).message})`);
    msg.term();
    return false;
  }
  const name = `job ${job.key.slice(0, 12)}`, delivery = msg.info.deliveryCount;
  if ((await getResult(cluster, job.key)) !== null) {
    msg.ack();
    h.log(`${name}: already scored; skipped (delivery ${delivery})`);
    return false;
  }
  let inputs: [Supernet, ToyBatch[]];
  try {
    inputs = await Promise.all([h.supernets.get(job.supernet), h.datasets.get(job.data)]);
  } catch (e) {
    return fail(cluster, msg, job, h, `cannot read its inputs: ${(e as Error).message}`);
  }
  msg.working();
  // Long jobs tell the server they are alive (ack progress), so only a dead worker's job is redelivered.
  const progress = setInterval(() => msg.working(), Math.max(h.ackWaitMs / 3, 100));
  h.log(`${name} started: ${h.describe(job.config)} (delivery ${delivery})`);
  const t0 = performance.now();
  let score;
  try {
    score = await scoreJob(job, ...inputs);
  } catch (e) {
    return fail(cluster, msg, job, h, (e as Error).message);
  } finally {
    clearInterval(progress);
  }
  let stored;
  try {
    stored = await putResult(cluster, resultOf(job, score, h.id, delivery));
  } catch (e) {
    cluster.check();
    // The store did not answer: hand the job back to be scored again rather than lose it.
    msg.nak(1000);
    h.log(`${name}: could not store its result (${(e as Error).message}); handed back`);
    return false;
  }
  msg.ack();
  const secs = ((performance.now() - t0) / 1000).toFixed(2);
  h.log(`${name} done: score ${score.score} in ${secs} s${stored ? "" : " (a result was stored already; it stays)"}`);
  return true;
}

async function fail(cluster: Cluster, msg: JsMsg, job: Job, h: Handling, error: string): Promise<false> {
  await putFailure(cluster, { key: job.key, error, worker: h.id });
  msg.term();
  h.log(`job ${job.key.slice(0, 12)} failed: ${error}`);
  return false;
}
