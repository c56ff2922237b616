// Scoring jobs and their results: content hashes, the supernet and held-out data as blobs, idempotent result keys.

import {
  type BlockSpec,
  decodeSafetensors,
  encodeSafetensors,
  type Evaluation,
  initSupernet,
  modelConfig,
  type ObjectiveWeights,
  pathObjective,
  randomKey,
  type Supernet,
  type ToyBatch,
} from "../../mod.ts";
import type { Cluster } from "./nats.ts";

/** One configuration to score: the blobs it reads by content hash, the objective's weights, the result's key. */
export interface Job {
  readonly version: 1;
  /** SHA-256 of the supernet blob. */
  readonly supernet: string;
  /** SHA-256 of the held-out data blob. */
  readonly data: string;
  readonly weights: { readonly loss: number; readonly accuracy: number };
  readonly config: readonly BlockSpec[];
  /** The results bucket's key: a hash of everything above, so equal jobs share one result. */
  readonly key: string;
}

/** A scored configuration as the results bucket holds it. */
export interface JobResult {
  readonly key: string;
  /** The job it answers (with these, `makeJob` gives back `key`). */
  readonly supernet: string;
  readonly data: string;
  readonly weights: Job["weights"];
  readonly config: readonly BlockSpec[];
  readonly score: number;
  readonly loss: number;
  readonly perplexity: number;
  /** Recall accuracy, null where the data has no recall answers (NaN does not survive JSON). */
  readonly accuracy: number | null;
  /** Who scored it ("coordinator" for --local-fallback) and on which delivery of the job. */
  readonly worker: string;
  readonly delivery: number;
}

/** A job that failed on a worker: stored beside the results so the coordinator can say why. */
export interface JobFailure {
  readonly key: string;
  readonly error: string;
  readonly worker: string;
}

const encoder = new TextEncoder(), decoder = new TextDecoder();

// JSON with sorted record keys: equal jobs hash alike whatever the key order of their specs.
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const rec = value as Record<string, unknown>;
    return `{${Object.keys(rec).sort().map((k) => `${JSON.stringify(k)}:${canonical(rec[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Hex SHA-256 of bytes. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The supernet as safetensors bytes, its sizes and candidates in the metadata. */
export function packSupernet(sn: Supernet): Promise<Uint8Array> {
  const meta = JSON.stringify({ config: sn.config, space: sn.space });
  return encodeSafetensors(sn.params, { metadata: { "jetfold.supernet": meta } });
}

/** The supernet back from `packSupernet`'s bytes (checked against a template of the same sizes). */
export function unpackSupernet(bytes: Uint8Array): Supernet {
  const head = decodeSafetensors(bytes).metadata["jetfold.supernet"];
  if (head === undefined) throw new Error("the supernet blob has no jetfold.supernet metadata");
  const { config: raw, space } = JSON.parse(head);
  const config = modelConfig(raw);
  // The template only gives the tree its structure; initializing is lazy, so nothing is computed.
  const like = initSupernet(randomKey(0), config, space).params;
  return { config, space, params: decodeSafetensors(bytes, { like }).tree };
}

/** Held-out batches as safetensors bytes. */
export function packBatches(batches: readonly ToyBatch[]): Promise<Uint8Array> {
  return encodeSafetensors({ batches: batches.map((b) => ({ ...b })) });
}

/** Held-out batches back from `packBatches`'s bytes. */
export function unpackBatches(bytes: Uint8Array): ToyBatch[] {
  const tree = decodeSafetensors(bytes).tree as { batches?: ToyBatch[] };
  const batches = tree.batches;
  if (!Array.isArray(batches) || batches.some((b) => !b.inputs || !b.targets || !b.answers)) {
    throw new Error("the data blob holds no held-out batches");
  }
  return batches;
}

/** The job of one configuration. */
export async function makeJob(
  supernet: string,
  data: string,
  weights: Job["weights"],
  config: readonly BlockSpec[],
): Promise<Job> {
  const key = await sha256(encoder.encode(canonical({ supernet, data, weights, config })));
  return { version: 1, supernet, data, weights, config, key };
}

/** A job from a message's bytes (a malformed one is an error naming what is wrong). */
export function readJob(bytes: Uint8Array): Job {
  const j = JSON.parse(decoder.decode(bytes));
  if (j?.version !== 1 || typeof j.key !== "string" || !/^[0-9a-f]{64}$/.test(j.key) || !Array.isArray(j.config)) {
    throw new Error("not a jetfold scoring job (version 1)");
  }
  return j as Job;
}

/** The objective weights a search's objective uses, in the form jobs carry. */
export function jobWeights(w: ObjectiveWeights): Job["weights"] {
  if (w.stateMiB || w.latencyMs) throw new Error("remote scoring supports the loss and accuracy terms only");
  return { loss: w.loss ?? 1, accuracy: w.accuracy ?? 0 };
}

/** Scores a job's configuration: `pathObjective` exactly as a local search runs it. */
export async function scoreJob(
  job: Job,
  sn: Supernet,
  batches: readonly ToyBatch[],
): Promise<{ score: number; evaluation: Evaluation }> {
  const objective = pathObjective(sn, batches, job.weights);
  const score = await objective(job.config);
  return { score, evaluation: objective.evaluation(job.config)! };
}

/** The result record of a score. */
export function resultOf(
  job: Job,
  s: { score: number; evaluation: Evaluation },
  worker: string,
  delivery: number,
): JobResult {
  const { loss, perplexity, accuracy } = s.evaluation;
  return {
    key: job.key,
    supernet: job.supernet,
    data: job.data,
    weights: job.weights,
    config: job.config,
    score: s.score,
    loss,
    perplexity,
    accuracy: Number.isNaN(accuracy) ? null : accuracy,
    worker,
    delivery,
  };
}

/** The evaluation a result records. */
export function evaluationOf(r: JobResult): Evaluation {
  return { loss: r.loss, perplexity: r.perplexity, accuracy: r.accuracy ?? NaN };
}

const resultKey = (key: string) => `r.${key}`;
const failureKey = (key: string) => `e.${key}`;

/**
 * Stores a result unless one is there already: the first write wins and a duplicate (a redelivered
 * job, a second worker) changes nothing. Returns whether this write stored it.
 */
export async function putResult(cluster: Cluster, r: JobResult): Promise<boolean> {
  try {
    await cluster.results.create(resultKey(r.key), JSON.stringify(r));
    return true;
  } catch (e) {
    if (await getResult(cluster, r.key) !== null) return false;
    throw e;
  }
}

/** The stored result of a job key, or null. */
export async function getResult(cluster: Cluster, key: string): Promise<JobResult | null> {
  const e = await cluster.results.get(resultKey(key));
  return e === null || e.operation !== "PUT" ? null : e.json<JobResult>();
}

/** Records that a job failed (the first failure is kept). */
export async function putFailure(cluster: Cluster, f: JobFailure): Promise<void> {
  await cluster.results.create(failureKey(f.key), JSON.stringify(f)).catch(() => {});
}

/** Forgets a job's recorded failure, so that it can be tried again (a new search after a fix). */
export async function clearFailure(cluster: Cluster, key: string): Promise<void> {
  if ((await getFailure(cluster, key)) !== null) await cluster.results.purge(failureKey(key));
}

/** The recorded failure of a job key, or null. */
export async function getFailure(cluster: Cluster, key: string): Promise<JobFailure | null> {
  const e = await cluster.results.get(failureKey(key));
  return e === null || e.operation !== "PUT" ? null : e.json<JobFailure>();
}

/** Uploads a blob under its content hash unless it is there already; returns the hash. */
export async function putBlob(cluster: Cluster, kind: "supernet" | "data", bytes: Uint8Array): Promise<string> {
  const hash = await sha256(bytes);
  const name = `${kind}-${hash}`;
  if ((await cluster.blobs.info(name)) === null) await cluster.blobs.putBlob({ name }, bytes);
  return hash;
}

/** Downloads a blob by content hash and checks the bytes hash to it. */
export async function getBlob(cluster: Cluster, kind: "supernet" | "data", hash: string): Promise<Uint8Array> {
  const bytes = await cluster.blobs.getBlob(`${kind}-${hash}`);
  if (bytes === null) throw new Error(`the ${kind} blob ${hash.slice(0, 12)} is not in the object store`);
  if ((await sha256(bytes)) !== hash) throw new Error(`the ${kind} blob ${hash.slice(0, 12)} does not match its hash`);
  // A plain Uint8Array of its own: the client hands out Node Buffers, whose slice() is a view, not a copy.
  return new Uint8Array(bytes);
}
