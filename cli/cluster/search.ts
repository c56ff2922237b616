// `search --nats`: the coordinator's connection, its scorer for the PostNAS phase and the cluster's status lines.

import type { BlockSpec } from "../../mod.ts";
import type { MakeScorer, Scorer } from "../postnas.ts";
import { type Out, paint, say } from "../progress.ts";
import { type ClusterStatus, type RemoteObjective, remoteObjective } from "./coordinator.ts";
import { ClusterError, connectCluster } from "./nats.ts";

/** The options of search that shape scale-out. */
export interface ScaleOutOptions {
  readonly natsRetry: number;
  readonly ackWait: number;
  readonly localFallback: boolean;
}

/** A coordinator's connection: the scorer the search uses, and closing it. */
export interface ScaleOut {
  readonly scorer: MakeScorer;
  close(): Promise<void>;
}

/** "2 workers, 3 queued, 1 running, 4/9 done" and what to do about no workers. */
export function statusLine(s: ClusterStatus, url: string, localFallback: boolean): string {
  const counts = `${s.workers} worker${s.workers === 1 ? "" : "s"}, ${s.queued} queued, ${s.running} running, ` +
    `${s.done}/${s.total} done`;
  if (s.workers > 0) return counts;
  return counts +
    (localFallback
      ? "; scoring here (--local-fallback) until a worker starts"
      : `; waiting for a worker (deno run -A cli.ts worker --nats ${url}), or give --local-fallback`);
}

/** Connects the coordinator to `url` (retrying) and returns the remote scorer of the search. */
export async function scaleOut(out: Out, url: string, o: ScaleOutOptions): Promise<ScaleOut> {
  const cluster = await connectCluster(url, {
    retrySeconds: o.natsRetry,
    name: "jetfold search",
    ackWaitSeconds: o.ackWait,
    onNotice: (line) => say(out, `  ${line}`),
  });
  say(out, `${paint(out, "dim", "scale-out:")} jobs go to the workers of ${url}`);
  const scorer: MakeScorer = async (sn, batches, weights) => {
    const remote = await remoteObjective(cluster, sn, batches, {
      weights,
      localFallback: o.localFallback,
      onStatus: (s) => say(out, `  cluster: ${statusLine(s, url, o.localFallback)}`),
    });
    return wrap(cluster, remote);
  };
  return { scorer, close: () => cluster.close() };
}

// A NATS error after the connection was lost is reported as the lost connection, in one line.
function wrap(cluster: { lost: string | null }, remote: RemoteObjective): Scorer {
  const said = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (cluster.lost !== null && !(e instanceof ClusterError)) throw new ClusterError(cluster.lost);
      throw e;
    }
  };
  const f = (config: readonly BlockSpec[]) => said(() => remote(config));
  return Object.assign(f, {
    evaluation: remote.evaluation,
    many: (configs: readonly (readonly BlockSpec[])[], tick: () => Promise<void>) =>
      said(() => remote.many(configs, tick)),
  });
}
