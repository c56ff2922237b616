// Starting kernel workers (node:worker_threads under Deno and Node) for the Wasm backend's threads:
// the matmul's (threads.ts) and the other kernels' pool (pool.ts).

const NODE_WORKERS = "node:worker_threads";

/** What is used of node:worker_threads' Worker. */
export interface NodeWorker {
  postMessage(message: unknown): void;
  once(event: "message" | "error", listener: (value: unknown) => void): void;
  on(event: "error", listener: (value: unknown) => void): void;
  unref(): void;
  terminate(): void;
}

/**
 * Starts `count - 1` workers of `url` (unreferenced, so they never keep the process alive), sending
 * worker i `message(i)`, and waits up to `timeoutMs` for each to answer once (ready) or fail; late
 * ones keep starting. Null where there are no workers or shared memory (a browser: there the
 * failed import of node:worker_threads would be logged as an error, so it is not tried).
 */
export async function spawnWorkers(
  url: URL,
  count: number,
  message: (index: number) => unknown,
  timeoutMs: number,
): Promise<NodeWorker[] | null> {
  if (count < 2 || typeof SharedArrayBuffer === "undefined") return null;
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (g.Deno === undefined && typeof g.process?.versions?.node !== "string") return null;
  let Worker: new (url: URL) => NodeWorker;
  try {
    // Named through a variable: bundlers for browsers (where workers come from elsewhere) leave it alone.
    ({ Worker } = (await import(NODE_WORKERS)) as { Worker: new (url: URL) => NodeWorker });
  } catch {
    return null;
  }
  const workers: NodeWorker[] = [];
  const ready: Promise<unknown>[] = [];
  for (let i = 1; i < count; i++) {
    try {
      const w = new Worker(url);
      // A worker that fails only stops helping; the listener keeps its error from being thrown here.
      ready.push(new Promise((ok) => (w.once("message", ok), w.on("error", ok))));
      w.postMessage(message(i));
      w.unref();
      workers.push(w);
    } catch {
      break;
    }
  }
  if (workers.length === 0) return null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((ok) => (timer = setTimeout(ok, timeoutMs)));
  await Promise.race([Promise.all(ready), late]);
  clearTimeout(timer);
  return workers;
}
