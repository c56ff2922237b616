// Shared by the scale-out tests: a real nats-server on a free loopback port, and CLI processes whose output is watched.

import { command } from "../helpers.ts";

const CANDIDATES = ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];

async function findServer(): Promise<string | null> {
  for (const bin of CANDIDATES) {
    try {
      const r = await new Deno.Command(bin, { args: ["--version"], stdout: "null", stderr: "null" }).output();
      if (r.success) return bin;
    } catch { /* not there */ }
  }
  return null;
}

/** The nats-server binary, or null where it is not installed. */
export const NATS_SERVER: string | null = await findServer();
/** `.ci/run` sets JETFOLD_REQUIRE_NATS=1 once it installed nats-server: then a missing server fails the tests. */
export const REQUIRED = Deno.env.get("JETFOLD_REQUIRE_NATS") === "1";
/** Whether the tests that need a server are ignored here. */
export const IGNORE = NATS_SERVER === null && !REQUIRED;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A process whose stdout and stderr are collected as they come, so a test can wait for a line. */
export class Watched {
  stdout = "";
  stderr = "";
  readonly status: Promise<Deno.CommandStatus>;
  readonly #done: Promise<unknown>;
  #exited = false;

  /** Every process is killed after `limitMs`, so no test waits on one forever. */
  constructor(readonly child: Deno.ChildProcess, readonly name: string, limitMs = 90_000) {
    const guard = setTimeout(() => this.kill("SIGKILL"), limitMs);
    const pump = async (stream: ReadableStream<Uint8Array>, to: "stdout" | "stderr") => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) this[to] += chunk;
    };
    this.#done = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
    this.status = child.status.then(async (s) => {
      this.#exited = true;
      clearTimeout(guard);
      await this.#done;
      return s;
    });
  }

  /** Waits until stdout matches `pattern` (bounded), returning the match. */
  async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const m = this.stdout.match(pattern);
      if (m) return m;
      if (this.#exited) break;
      await sleep(5);
    }
    const m = this.stdout.match(pattern);
    if (m) return m;
    throw new Error(`${this.name}: no ${pattern} in its output\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
  }

  /** Sends a signal unless it has exited. */
  kill(signal: Deno.Signal): void {
    if (this.#exited) return;
    try {
      this.child.kill(signal);
    } catch { /* it has just exited */ }
  }

  /** Kills it (by its PID) if it still runs and waits for it. */
  async stop(): Promise<Deno.CommandStatus> {
    this.kill("SIGKILL");
    return await this.status;
  }
}

/** Starts `deno run -A cli.ts ...args` with its output watched. */
export function watchCli(name: string, ...args: string[]): Watched {
  const child = command(args).spawn();
  return new Watched(child, name);
}

/** A running nats-server with JetStream, its store in a temporary directory. */
export interface Server {
  readonly url: string;
  readonly process: Watched;
  /** Stops it (SIGTERM, then SIGKILL) and removes its store. */
  close(): Promise<void>;
}

/** Starts `nats-server -js` on a free loopback port and waits until it accepts connections. */
export async function startServer(): Promise<Server> {
  if (NATS_SERVER === null) throw new Error("nats-server is not installed (JETFOLD_REQUIRE_NATS=1 requires it)");
  const dir = await Deno.makeTempDir({ prefix: "jetfold-nats-" });
  const port = freePort();
  const child = new Deno.Command(NATS_SERVER, {
    args: ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const process = new Watched(child, "nats-server");
  const close = async () => {
    process.kill("SIGTERM");
    const timer = setTimeout(() => process.kill("SIGKILL"), 5000);
    await process.status;
    clearTimeout(timer);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const end = Date.now() + 15_000;
  while (true) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return { url: `nats://127.0.0.1:${port}`, process, close };
    } catch (e) {
      if (Date.now() > end) {
        await close();
        throw new Error(`nats-server did not start on port ${port}: ${(e as Error).message}\n${process.stderr}`);
      }
      await sleep(20);
    }
  }
}
