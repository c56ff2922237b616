// The connection to NATS JetStream: the client loaded on first use, retries with backoff, the stream and buckets.

import type { NatsConnection } from "@nats-io/transport-node";
import type { Consumer, JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { ObjectStore } from "@nats-io/obj";

/** A cluster problem said in one sentence (no server, a lost connection, a failed job): the CLI prints it alone. */
export class ClusterError extends Error {}

/** The work-queue stream of scoring jobs, its subject and the durable consumer every worker pulls from. */
export const NAMES = {
  stream: "JETFOLD_JOBS",
  subject: "jetfold.jobs",
  consumer: "jetfold-workers",
  results: "jetfold-results",
  workers: "jetfold-workers",
  blobs: "jetfold-blobs",
} as const;

/** How long a worker's heartbeat stays in the workers bucket: a worker silent this long is gone. */
export const HEARTBEAT_TTL_MS = 6000;

/** Options of `connectCluster`. */
export interface ConnectOptions {
  /** Seconds to keep retrying an unreachable or lost server before giving up. */
  readonly retrySeconds: number;
  /** The connection's name, as the server's monitoring shows it. */
  readonly name: string;
  /** Set the consumer's ack wait (the coordinator does; a worker only creates the consumer when missing). */
  readonly ackWaitSeconds?: number;
  /** Told about a lost connection and its reconnection, one line each. */
  readonly onNotice?: (line: string) => void;
}

/** A connection with JetStream, the job consumer, the results and workers buckets and the blob store. */
export interface Cluster {
  readonly url: string;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly consumer: Consumer;
  readonly results: KV;
  readonly workers: KV;
  readonly blobs: ObjectStore;
  /** Set once the connection is lost for good: the sentence saying so. */
  readonly lost: string | null;
  /** Throws the lost connection's ClusterError, if it was lost. */
  check(): void;
  close(): Promise<void>;
}

/** Loads the NATS client modules (npm packages), only when a command needs them. */
async function client() {
  const [transport, jetstream, kv, obj] = await Promise.all([
    import("@nats-io/transport-node"),
    import("@nats-io/jetstream"),
    import("@nats-io/kv"),
    import("@nats-io/obj"),
  ]);
  return { connect: transport.connect, ...jetstream, Kvm: kv.Kvm, Objm: obj.Objm };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const reason = (e: unknown) => ((e as Error)?.message ?? String(e)).split("\n")[0];

/**
 * Connects to the NATS server at `url`, retrying with backoff for `retrySeconds`, and makes sure the
 * job stream, its consumer and the buckets exist. Once connected, a lost connection is retried the
 * same way; when that fails too, `lost` says so and `check()` throws it.
 */
export async function connectCluster(url: string, o: ConnectOptions): Promise<Cluster> {
  const nats = await client();
  const deadline = performance.now() + o.retrySeconds * 1000;
  let backoff = 100, tries = 0, last: unknown = null, nc: NatsConnection | null = null;
  while (nc === null) {
    tries++;
    try {
      let attempt = 0;
      nc = await nats.connect({
        servers: url,
        name: o.name,
        timeout: 2000,
        maxReconnectAttempts: -1,
        reconnectDelayHandler: () => Math.min(2000, 100 * 2 ** attempt++),
        pingInterval: 2000,
        maxPingOut: 2,
      });
      void (async () => {
        for await (const s of nc!.status()) if (s.type === "reconnect") attempt = 0;
      })().catch(() => {});
    } catch (e) {
      last = e;
      if (performance.now() + backoff > deadline) {
        throw new ClusterError(
          `no NATS server answers at ${url} (tried ${tries} time${tries === 1 ? "" : "s"} over ` +
            `${o.retrySeconds} s: ${reason(last)}); start one with: nats-server -js`,
        );
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2000);
    }
  }
  try {
    return await open(nats, nc, url, o);
  } catch (e) {
    await nc.close().catch(() => {});
    if (e instanceof ClusterError) throw e;
    throw new ClusterError(`NATS server at ${url}: ${reason(e)} (is JetStream on? run nats-server -js)`);
  }
}

type Client = Awaited<ReturnType<typeof client>>;

async function open(nats: Client, nc: NatsConnection, url: string, o: ConnectOptions): Promise<Cluster> {
  const jsm = await nats.jetstreamManager(nc);
  const js = nats.jetstream(nc);
  await jsm.streams.add({
    name: NAMES.stream,
    subjects: [NAMES.subject],
    retention: nats.RetentionPolicy.Workqueue,
    storage: nats.StorageType.File,
  }).catch(async (e) => {
    // Another process made it first: the same stream is there.
    if (!(await jsm.streams.info(NAMES.stream).then(() => true, () => false))) throw e;
  });
  const ackWait = (o.ackWaitSeconds ?? 60) * 1e9;
  const exists = await jsm.consumers.info(NAMES.stream, NAMES.consumer).then(() => true, () => false);
  if (!exists) {
    await jsm.consumers.add(NAMES.stream, {
      durable_name: NAMES.consumer,
      ack_policy: nats.AckPolicy.Explicit,
      ack_wait: ackWait,
      max_deliver: -1,
    }).catch(async (e) => {
      if (!(await jsm.consumers.info(NAMES.stream, NAMES.consumer).then(() => true, () => false))) throw e;
    });
  }
  if (o.ackWaitSeconds !== undefined) await jsm.consumers.update(NAMES.stream, NAMES.consumer, { ack_wait: ackWait });
  const consumer = await js.consumers.get(NAMES.stream, NAMES.consumer);
  const kvm = new nats.Kvm(js);
  const results = await kvm.create(NAMES.results, { history: 1 });
  const workers = await kvm.create(NAMES.workers, { history: 1, ttl: HEARTBEAT_TTL_MS });
  const blobs = await new nats.Objm(js).create(NAMES.blobs);

  let lost: string | null = null, down: number | null = null;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" && down === null) {
        down = performance.now();
        o.onNotice?.(`lost the connection to the NATS server at ${url}; retrying for ${o.retrySeconds} s`);
      } else if (s.type === "reconnect") {
        if (down !== null) o.onNotice?.(`reconnected to the NATS server at ${url}`);
        down = null;
      }
    }
  })().catch(() => {});
  const watch = setInterval(() => {
    if (down !== null && performance.now() - down > o.retrySeconds * 1000 && lost === null) {
      lost = `lost the connection to the NATS server at ${url} (retried for ${o.retrySeconds} s)`;
      nc.close().catch(() => {});
    }
  }, 100);
  const check = () => {
    if (lost !== null) throw new ClusterError(lost);
  };
  return {
    url,
    nc,
    js,
    jsm,
    consumer,
    results,
    workers,
    blobs,
    get lost() {
      return lost;
    },
    check,
    async close() {
      clearInterval(watch);
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close().catch(() => {}));
    },
  };
}

/** Waits `ms`, failing early with the lost connection's error; a long wait polls it. */
export async function pause(cluster: Cluster, ms: number): Promise<void> {
  cluster.check();
  await sleep(ms);
  cluster.check();
}

/** Reads a NATS URL (`nats://host:port`, `host:port` or `host`); an error names the flag. */
export function checkNatsUrl(text: string, where: string): string {
  const full = /^[a-z]+:\/\//i.test(text) ? text : `nats://${text}`;
  let u: URL;
  try {
    u = new URL(full);
  } catch {
    throw new Error(`${where}: ${JSON.stringify(text)} is not a NATS URL (e.g. nats://127.0.0.1:4222)`);
  }
  if (!["nats:", "tls:"].includes(u.protocol) || u.hostname === "") {
    throw new Error(`${where}: ${JSON.stringify(text)} is not a NATS URL (e.g. nats://127.0.0.1:4222)`);
  }
  return full;
}
