// The coordinator's side: a PostNAS objective whose configurations are scored by workers over JetStream.

import {
  type BlockSpec,
  type Evaluation,
  type ObjectiveWeights,
  pathObjective,
  type Supernet,
  type ToyBatch,
} from "../../mod.ts";
import {
  clearFailure,
  evaluationOf,
  getFailure,
  getResult,
  type Job,
  type JobResult,
  jobWeights,
  makeJob,
  packBatches,
  packSupernet,
  putBlob,
  putResult,
  resultOf,
} from "./jobs.ts";
import { type Cluster, ClusterError, NAMES, pause } from "./nats.ts";

/** What the cluster is doing, as progress shows it. */
export interface ClusterStatus {
  /** Workers whose heartbeat is fresh. */
  readonly workers: number;
  /** Jobs in the queue not yet delivered, and delivered but not yet acked (the whole queue, all searches). */
  readonly queued: number;
  readonly running: number;
  /** Configurations of this call scored, of `total`. */
  readonly done: number;
  readonly total: number;
}

/** Options of `remoteObjective`. */
export interface RemoteOptions {
  /** The objective's weights (loss and accuracy terms). */
  readonly weights: ObjectiveWeights;
  /** With no worker alive, score the waiting configurations here (results are the same). */
  readonly localFallback?: boolean;
  /** Called while waiting, when the status changes. */
  readonly onStatus?: (status: ClusterStatus) => void;
}

/** An objective over configurations scored remotely, usable as postnas's `evaluate` and `evaluateMany`. */
export interface RemoteObjective {
  (config: readonly BlockSpec[]): Promise<number>;
  /**
   * Scores configurations on the workers, in parallel; `tick` runs between polls (it may throw, e.g.
   * to stop at a signal). Scores come back in the order of `configs`.
   */
  many(configs: readonly (readonly BlockSpec[])[], tick?: () => Promise<void>): Promise<number[]>;
  /** The metrics of a configuration scored so far, else undefined. */
  evaluation(config: readonly BlockSpec[]): Evaluation | undefined;
  /** The stored result of each configuration scored so far, by job key. */
  readonly results: ReadonlyMap<string, JobResult>;
}

const STATUS_EVERY_MS = 500;
const STATUS_LIMIT_MS = 5000;

// The promise's value, or null when it takes longer than `ms`.
async function bounded<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Uploads the supernet and the held-out batches to the object store (once: they are named by
 * content hash) and returns an objective that publishes one job per configuration and waits for
 * the workers' results. Results already stored (an earlier run, a duplicate) are used as they are.
 */
export async function remoteObjective(
  cluster: Cluster,
  sn: Supernet,
  batches: readonly ToyBatch[],
  o: RemoteOptions,
): Promise<RemoteObjective> {
  const weights = jobWeights(o.weights);
  const [snHash, dataHash] = await Promise.all([
    packSupernet(sn).then((b) => putBlob(cluster, "supernet", b)),
    packBatches(batches).then((b) => putBlob(cluster, "data", b)),
  ]);
  let local: ReturnType<typeof pathObjective> | null = null;
  const nonce = crypto.randomUUID();
  const results = new Map<string, JobResult>();
  const keyOf = new Map<string, string>(); // configuration JSON -> job key

  const many = async (configs: readonly (readonly BlockSpec[])[], tick?: () => Promise<void>) => {
    const jobs = await Promise.all(configs.map((c) => makeJob(snHash, dataHash, weights, c)));
    jobs.forEach((j, i) => keyOf.set(JSON.stringify(configs[i]), j.key));
    const pending = new Map<string, Job>();
    for (const job of jobs) {
      const r = results.get(job.key) ?? (await getResult(cluster, job.key));
      if (r === null) pending.set(job.key, job);
      else results.set(job.key, r);
    }
    // A failure recorded by an earlier search is tried again. The message id makes a publish that the
    // client retries count once; jobs equal to another search's still go out (their result decides).
    for (const job of pending.values()) {
      await clearFailure(cluster, job.key);
      await cluster.js.publish(NAMES.subject, JSON.stringify(job), { msgID: `${job.key}.${nonce}` });
    }
    let shown = "", lastStatus = -Infinity;
    while (pending.size > 0) {
      await tick?.();
      cluster.check();
      for (const [key, job] of pending) {
        const r = await getResult(cluster, key);
        if (r !== null) {
          results.set(key, r);
          pending.delete(key);
          continue;
        }
        const f = await getFailure(cluster, key);
        if (f !== null) {
          throw new ClusterError(`worker ${f.worker} could not score ${JSON.stringify(job.config)}: ${f.error}`);
        }
      }
      if (pending.size === 0) break;
      const now = performance.now();
      if (now - lastStatus < STATUS_EVERY_MS) {
        await pause(cluster, 50);
        continue;
      }
      lastStatus = now;
      // The status is only shown: a server slow to answer it must not hold up the results.
      const status = await bounded(statusOf(cluster, jobs.length - pending.size, jobs.length), STATUS_LIMIT_MS);
      if (status === null) continue;
      const text = JSON.stringify(status);
      if (text !== shown) o.onStatus?.(status);
      shown = text;
      if (status.workers === 0 && o.localFallback) {
        // No one to send work to: score one waiting configuration here, then look again.
        const job = pending.values().next().value!;
        local ??= pathObjective(sn, batches, o.weights);
        const score = await local(job.config);
        const r = resultOf(job, { score, evaluation: local.evaluation(job.config)! }, "coordinator", 0);
        await putResult(cluster, r);
        lastStatus = -Infinity;
        continue;
      }
      await pause(cluster, 50);
    }
    return jobs.map((j) => results.get(j.key)!.score);
  };
  const f = async (config: readonly BlockSpec[]) => (await many([config]))[0];
  const evaluation = (config: readonly BlockSpec[]) => {
    const key = keyOf.get(JSON.stringify(config));
    const r = key === undefined ? undefined : results.get(key);
    return r === undefined ? undefined : evaluationOf(r);
  };
  return Object.assign(f, { many, evaluation, results });
}

/** Workers with a fresh heartbeat, and the job queue's counts. */
export async function statusOf(cluster: Cluster, done: number, total: number): Promise<ClusterStatus> {
  // The bucket's subjects, read from the stream's state: listing keys (kv.keys) can wait forever when
  // a heartbeat expires while it runs. A stopped worker leaves a delete marker, so each entry is read.
  const prefix = `$KV.${NAMES.workers}.`;
  const state = await cluster.jsm.streams.info(`KV_${NAMES.workers}`, { subjects_filter: `${prefix}>` });
  const keys = Object.keys(state.state.subjects ?? {}).map((s) => s.slice(prefix.length));
  const entries = await Promise.all(keys.map((k) => cluster.workers.get(k).catch(() => null)));
  const workers = entries.filter((e) => e !== null && e.operation === "PUT").length;
  const info = await cluster.jsm.consumers.info(NAMES.stream, NAMES.consumer);
  return { workers, queued: info.num_pending, running: info.num_ack_pending, done, total };
}
