// `worker`: scores PostNAS configurations for searches run with --nats, until stopped.

import { COMMON, InputError, int, str } from "../args.ts";
import { checkNatsUrl, ClusterError, connectCluster } from "../cluster/nats.ts";
import { serveJobs } from "../cluster/worker.ts";
import { interrupts } from "../interrupt.ts";
import { blockLabel } from "../options.ts";
import { makeOut, say } from "../progress.ts";
import { defineCommand, startBackend } from "../session.ts";

/** Options the worker shares with `search --nats`. */
export const NATS = {
  nats: str(null, "the NATS server (with JetStream: nats-server -js) that carries the jobs", { meta: "URL" }),
  natsRetry: int(10, "seconds to keep retrying an unreachable or lost NATS server, with backoff", { min: 1 }),
} as const;

const specs = {
  nats: NATS.nats,
  natsRetry: NATS.natsRetry,
  backend: COMMON.backend,
  config: COMMON.config,
  quiet: COMMON.quiet,
};

/** A name for this worker: host and process id, in the characters NATS keys allow. */
function workerId(): string {
  let host = "worker";
  try {
    host = Deno.hostname();
  } catch { /* no sys permission: a generic name */ }
  return `${host}-${Deno.pid}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

/** Reads --nats (required or not), as an InputError naming the flag. */
export function natsUrl(text: string | null, required: boolean): string | null {
  if (text === null) {
    if (required) throw new InputError("--nats URL is required: the NATS server to take jobs from");
    return null;
  }
  try {
    return checkNatsUrl(text, "--nats");
  } catch (e) {
    throw new InputError((e as Error).message);
  }
}

/** The worker command. */
export const workerCommand = defineCommand({
  name: "worker",
  summary: "score PostNAS configurations for searches run with --nats (scale-out), until stopped",
  description: "Connects to the NATS server at --nats, pulls scoring jobs (configurations of a search run\n" +
    "with search --nats), scores each on the supernet and held-out data the job names and stores the\n" +
    "result. Start one per GPU or machine; they share the work. Ctrl-C or SIGTERM finishes the current\n" +
    "job (a job arriving after the signal is handed back) and exits with status 0.",
  specs,
  prepare(o) {
    const url = natsUrl(o.nats, true)!;
    return async () => {
      const out = makeOut(o.quiet);
      const info = await startBackend(out, o.backend);
      interrupts.hold("finishing the current job, then stopping");
      const id = workerId();
      const cluster = await connectCluster(url, {
        retrySeconds: o.natsRetry,
        name: `jetfold worker ${id}`,
        onNotice: (line) => say(out, line),
      });
      try {
        await serveJobs(cluster, {
          id,
          stopping: () => interrupts.requested,
          log: (line) => say(out, line),
          describe: (config) => config.map(blockLabel).join(", "),
          backend: info.name,
        });
      } catch (e) {
        if (cluster.lost !== null) throw new ClusterError(cluster.lost);
        throw e;
      } finally {
        await cluster.close();
      }
    };
  },
});
