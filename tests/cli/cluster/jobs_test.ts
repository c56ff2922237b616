// Scoring jobs without a server: blobs round-trip bit for bit, job keys, and the options that need --nats.

import { block, initSupernet, modelConfig, pathObjective, randomKey, toyBatch } from "../../../mod.ts";
import {
  makeJob,
  packBatches,
  packSupernet,
  readJob,
  scoreJob,
  sha256,
  unpackBatches,
  unpackSupernet,
} from "../../../cli/cluster/jobs.ts";
import { statusLine } from "../../../cli/cluster/search.ts";
import { assert, rejection } from "../helpers.ts";

const cfg = modelConfig({ vocab: 256, width: 16, heads: 2, blocks: [block("mha"), block("mha")] });
const space = cfg.blocks.map(() => [block("mha"), block("swa", { window: 8 }), block("jet", { conv: true })]);

Deno.test("a job scored on unpacked blobs gives the local objective's score and metrics, bit for bit", async () => {
  const sn = initSupernet(randomKey(3), cfg, space);
  const batches = [toyBatch(randomKey(4), { batch: 2, seqLen: 32 })];
  const [snBytes, dataBytes] = [await packSupernet(sn), await packBatches(batches)];
  const weights = { loss: 1, accuracy: 1 };
  const local = pathObjective(sn, batches, weights);
  for (const config of [[space[0][2], space[1][1]], [space[0][0], space[1][2]]]) {
    const job = await makeJob(await sha256(snBytes), await sha256(dataBytes), weights, config);
    const remote = await scoreJob(job, unpackSupernet(snBytes), unpackBatches(dataBytes));
    const want = await local(config);
    assert(Object.is(remote.score, want), `score ${remote.score} vs local ${want}`);
    const ev = local.evaluation(config)!;
    assert(JSON.stringify(remote.evaluation) === JSON.stringify(ev), "the metrics differ");
  }
});

Deno.test("a job's key depends on everything it scores and not on the key order of its specs", async () => {
  const config = [block("mha"), block("jet")];
  const reordered = config.map((b) => Object.fromEntries(Object.entries(b).reverse())) as unknown as typeof config;
  const w = { loss: 1, accuracy: 0 };
  const key = (await makeJob("a", "b", w, config)).key;
  assert((await makeJob("a", "b", w, reordered)).key === key, "the key changed with the specs' key order");
  const others = [
    await makeJob("x", "b", w, config),
    await makeJob("a", "x", w, config),
    await makeJob("a", "b", { loss: 1, accuracy: 1 }, config),
    await makeJob("a", "b", w, [block("jet"), block("jet")]),
  ];
  assert(others.every((j) => j.key !== key), "two different jobs share a key");
  const job = await makeJob("a", "b", w, config);
  assert(readJob(new TextEncoder().encode(JSON.stringify(job))).key === key, "a job does not read back");
  for (const bad of ["{}", '{"version":1,"key":"../x","config":[]}', "[1]"]) {
    let thrown = false;
    try {
      readJob(new TextEncoder().encode(bad));
    } catch {
      thrown = true;
    }
    assert(thrown, `${bad} was read as a job`);
  }
});

Deno.test("the cluster status says what no worker means and how to start one", () => {
  const s = { workers: 0, queued: 3, running: 0, done: 1, total: 4 };
  const url = "nats://10.0.0.5:4222";
  const line = statusLine(s, url, false);
  assert(line.startsWith("0 workers, 3 queued, 0 running, 1/4 done"), line);
  assert(line.includes(`worker --nats ${url}`) && line.includes("--local-fallback"), line);
  assert(statusLine(s, url, true).includes("scoring here"), statusLine(s, url, true));
  assert(statusLine({ ...s, workers: 1 }, url, false) === "1 worker, 3 queued, 0 running, 1/4 done", "one worker");
});

Deno.test("worker and search --nats options are checked before any work", async () => {
  const cases: [string[], string][] = [
    [["worker"], "--nats URL is required"],
    [["worker", "--nats", "http://127.0.0.1:4222"], "is not a NATS URL"],
    [["worker", "--nats", "127.0.0.1:4222", "--nats-retry", "0"], "--nats-retry must be an integer >= 1"],
    [["search", "--local-fallback"], "--local-fallback has no effect without --nats"],
    [["search", "--ack-wait", "5"], "--ack-wait has no effect without --nats"],
    [["search", "--nats", "nats://"], "is not a NATS URL"],
  ];
  for (const [args, message] of cases) {
    const got = await rejection(args);
    assert(got.includes(message), `${args.join(" ")}: ${JSON.stringify(got)} lacks ${JSON.stringify(message)}`);
  }
  assert((await rejection(["worker", "--nats", "127.0.0.1:4222"])) === "", "a good worker command was refused");
  assert((await rejection(["search", "--nats", "nats://h:4222", "--local-fallback"])) === "", "search --nats refused");
});
