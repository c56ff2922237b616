// Scale-out end to end: a real nats-server, worker processes and search --nats against the local search.

import { connectCluster } from "../../../cli/cluster/nats.ts";
import { getFailure, getResult, type JobResult, makeJob, putResult } from "../../../cli/cluster/jobs.ts";
import { assert, cli, DATA, MODEL, ok } from "../helpers.ts";
import { IGNORE, startServer, watchCli, type Watched } from "./nats_helpers.ts";

const TMP = await Deno.makeTempDir({ prefix: "jetfold-scale-out-" });
let runs = 0;
const out = () => `${TMP}/run-${runs++}`;

// The tiny search of the CLI tests (two steps per phase), on the CPU backend so scores are bit for bit.
const SEARCH = ["search", "--backend", "cpu", ...MODEL, ...DATA, "--log-every", "1", "--steps", "2"];

async function searchRecord(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(`${dir}/search.json`));
}

function assertSameSearch(got: Record<string, unknown>, want: Record<string, unknown>, what: string): void {
  assert(Array.isArray(want.trace) && want.trace.length > 0, `${what}: the local search scored nothing`);
  const a = JSON.stringify(got), b = JSON.stringify(want);
  assert(a === b, `${what}: the distributed search differs from the local one\n${a}\n${b}`);
}

// Configurations scored afresh in a trace: the jobs a search sends out.
const fresh = (rec: Record<string, unknown>) => (rec.trace as { cached: boolean }[]).filter((v) => !v.cached).length;
const count = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].length;

async function startWorkers(url: string, n: number, extra: string[] = []): Promise<Watched[]> {
  const ws = Array.from(
    { length: n },
    (_, i) => watchCli(`worker ${i}`, "worker", "--nats", url, "--backend", "cpu", ...extra),
  );
  await Promise.all(ws.map((w) => w.waitFor(/waiting for jobs/)));
  return ws;
}

Deno.test({
  name: "a search on two workers equals the local search, and duplicate results and deliveries change nothing",
  ignore: IGNORE,
  async fn(t) {
    const server = await startServer();
    let workers: Watched[] = [];
    try {
      workers = await startWorkers(server.url, 2);
      const [localDir, distDir] = [out(), out()];
      const [local, dist] = await Promise.all([
        cli(...SEARCH, "--out", localDir),
        cli(...SEARCH, "--nats", server.url, "--out", distDir),
      ]);
      ok(local, "local search");
      ok(dist, "distributed search");
      const want = await searchRecord(localDir);

      await t.step("the same choice and the same score for every configuration", async () => {
        assertSameSearch(await searchRecord(distDir), want, "search --nats");
        const done = workers.reduce((n, w) => n + count(w.stdout, / done: score /g), 0);
        assert(done === fresh(want), `the workers scored ${done} jobs; the search has ${fresh(want)} configurations`);
      });

      await t.step("a duplicate result and a duplicate delivery leave the stored result as it was", async () => {
        const cluster = await connectCluster(server.url, { retrySeconds: 2, name: "test" });
        try {
          const keys: string[] = [];
          for await (const k of await cluster.results.keys()) if (k.startsWith("r.")) keys.push(k.slice(2));
          assert(keys.length === fresh(want), `${keys.length} results stored for ${fresh(want)} configurations`);
          const stored = (await getResult(cluster, keys[0]))!;
          const job = await makeJob(stored.supernet, stored.data, stored.weights, stored.config);
          assert(job.key === stored.key, "a result's job does not hash to the result's key");
          const impostor: JobResult = { ...stored, score: stored.score + 1, worker: "impostor" };
          assert(!(await putResult(cluster, impostor)), "a second result for a key was stored");
          // The same job again, as a redelivery or a second coordinator would send it.
          const started = workers.map((w) => count(w.stdout, / started: /g));
          await cluster.js.publish("jetfold.jobs", JSON.stringify(job), { msgID: crypto.randomUUID() });
          await Promise.race(workers.map((w) => w.waitFor(new RegExp(`job ${job.key.slice(0, 12)}: already scored`))));
          assert(
            JSON.stringify(await getResult(cluster, job.key)) === JSON.stringify(stored),
            "the stored result changed",
          );
          assert(
            workers.every((w, i) => count(w.stdout, / started: /g) === started[i]),
            "a scored job was scored again",
          );
          // A job whose supernet is not in the object store is recorded as failed, with the reason, not retried.
          const lost = await makeJob("0".repeat(64), stored.data, stored.weights, stored.config);
          await cluster.js.publish("jetfold.jobs", JSON.stringify(lost), { msgID: crypto.randomUUID() });
          await Promise.race(workers.map((w) => w.waitFor(new RegExp(`job ${lost.key.slice(0, 12)} failed: `))));
          const failure = await getFailure(cluster, lost.key);
          assert(
            failure !== null && /supernet blob 0{12} is not in the object store/.test(failure.error),
            "no failure",
          );
        } finally {
          await cluster.close();
        }
        // A second search with the same options and seed finds every result stored: nothing is scored again.
        const again = out();
        ok(await cli(...SEARCH, "--nats", server.url, "--out", again), "repeated search");
        assertSameSearch(await searchRecord(again), want, "repeated search --nats");
        const done = workers.reduce((n, w) => n + count(w.stdout, / done: score /g), 0);
        assert(done === fresh(want), `the repeated search made the workers score again (${done} jobs)`);
      });

      await t.step("SIGTERM stops an idle worker with status 0", async () => {
        workers.forEach((w) => w.kill("SIGTERM"));
        for (const w of workers) {
          const s = await w.status;
          assert(s.code === 0, `${w.name} exited with ${s.code} after SIGTERM\n${w.stderr}`);
          assert(/stopped after \d+ jobs?/.test(w.stdout), `${w.name} did not say it stopped:\n${w.stdout}`);
        }
      });
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await server.close();
    }
  },
});

// Held-out data big enough that a job takes a good while on the CPU backend, so the kill lands mid-job.
const SLOW = [
  ...SEARCH.filter((a, i, all) => a !== "--eval-batch" && all[i - 1] !== "--eval-batch"),
  "--eval-batch",
  "48",
];

Deno.test({
  name:
    "a search waits with 0 workers, and a worker killed mid-job has its job redelivered without changing the result",
  ignore: IGNORE,
  async fn() {
    const server = await startServer();
    const procs: Watched[] = [];
    try {
      const [localDir, distDir] = [out(), out()];
      const local = cli(...SLOW, "--out", localDir);
      const search = watchCli("search", ...SLOW, "--nats", server.url, "--ack-wait", "2", "--out", distDir);
      procs.push(search);
      await search.waitFor(/cluster: 0 workers, \d+ queued, 0 running, 0\/\d+ done; waiting for a worker/);
      const doomed = watchCli("worker A", "worker", "--nats", server.url, "--backend", "cpu");
      procs.push(doomed);
      const [, key] = await doomed.waitFor(/job ([0-9a-f]{12}) started: /);
      doomed.kill("SIGKILL");
      assert((await doomed.status).signal === "SIGKILL", "worker A was not killed");
      const [rescuer] = await startWorkers(server.url, 1);
      procs.push(rescuer);
      const s = await search.status;
      assert(s.code === 0, `search --nats exited with ${s.code}`);
      ok(await local, "local search");
      assertSameSearch(await searchRecord(distDir), await searchRecord(localDir), "search --nats with a killed worker");
      assert(
        new RegExp(`job ${key} started: .* \\(delivery [2-9]\\)`).test(rescuer.stdout),
        `the killed worker's job ${key} was not redelivered:\n${rescuer.stdout}`,
      );
    } catch (e) {
      throw new Error(
        `${(e as Error).message}\n${procs.map((p) => `--- ${p.name}:\n${p.stdout}${p.stderr}`).join("\n")}`,
      );
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
      await server.close();
    }
  },
});

Deno.test({
  name: "with no worker, --local-fallback scores here and gives the local search's result",
  ignore: IGNORE,
  async fn() {
    const server = await startServer();
    try {
      const [localDir, distDir] = [out(), out()];
      const args = [...SEARCH, "--seed", "5"];
      const [local, dist] = await Promise.all([
        cli(...args, "--out", localDir),
        cli(...args, "--nats", server.url, "--local-fallback", "--out", distDir),
      ]);
      ok(local, "local search");
      ok(dist, "search --nats --local-fallback");
      assert(/cluster: 0 workers, .*; scoring here \(--local-fallback\)/.test(dist.stdout), dist.stdout);
      assertSameSearch(await searchRecord(distDir), await searchRecord(localDir), "search --local-fallback");
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a stopped server is reported in one line, after retrying, by a worker and by a search",
  ignore: IGNORE,
  async fn() {
    const server = await startServer();
    const worker = watchCli("worker", "worker", "--nats", server.url, "--backend", "cpu", "--nats-retry", "1");
    try {
      await worker.waitFor(/waiting for jobs/);
      await server.close();
      const s = await worker.status;
      const lines = worker.stderr.trim().split("\n");
      assert(s.code === 1, `the worker exited with ${s.code}\n${worker.stderr}`);
      assert(
        lines.length === 1 &&
          lines[0].startsWith(`jetfold worker: lost the connection to the NATS server at ${server.url}`),
        `the worker's stderr: ${JSON.stringify(worker.stderr)}`,
      );
      assert(/retrying for 1 s/.test(worker.stdout), `the worker did not say it retries:\n${worker.stdout}`);
      // With the server gone, a search fails before any work, in one line.
      const r = await cli(...SEARCH, "--nats", server.url, "--nats-retry", "1", "--out", out());
      const err = r.stderr.trim().split("\n");
      assert(r.code === 1, `search exited with ${r.code}\n${r.stderr}`);
      assert(
        err.length === 1 && err[0].startsWith(`jetfold search: no NATS server answers at ${server.url}`),
        `search's stderr: ${JSON.stringify(r.stderr)}`,
      );
    } finally {
      await worker.stop();
      await server.close();
    }
  },
});

globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
