// --eval FILE: its JSONL is checked before any work, drives search's objective, and is reported by tune.

import { assert, cli, DATA, makeFixtures, MODEL, ok, refused } from "./helpers.ts";

const SEARCH = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", "1"];

Deno.test("--eval refuses malformed JSONL, naming the line", async () => {
  const fx = await makeFixtures("jetfold-eval-");
  try {
    const file = (name: string, body: string) =>
      Deno.writeTextFile(`${fx.dir}/${name}`, body).then(() => `${fx.dir}/${name}`);
    const cases: [string, string][] = [
      ['{"prompt": "a", "answer": "b"}\n{"prompt": "a"', ":2: not valid JSON"],
      ['{"prompt": "a", "answer": "b"}\n\n[1]', ":3: expected an object"],
      ['{"prompt": "a", "answer": ""}', ':1: "answer" must be a non-empty string'],
      ['{"prompt": 3, "answer": "b"}', ':1: "prompt" must be a non-empty string'],
      ['{"prompt": "a", "answer": "b", "id": 1}', ':1: unknown field "id"'],
      ["\n\n", "no items"],
    ];
    for (const [i, [body, message]] of cases.entries()) {
      const path = await file(`bad${i}.jsonl`, body);
      await refused(["tune", "--run", fx.run, "--eval", path], message);
      await refused(["search", ...SEARCH, "--eval", path], message);
    }
    await refused(["tune", "--run", fx.run, "--eval", fx.missing], fx.missing);
  } finally {
    await Deno.remove(fx.dir, { recursive: true });
  }
});

Deno.test("search scores --eval's answers, and tune reports them before and after", async () => {
  const fx = await makeFixtures("jetfold-eval-");
  try {
    const evalFile = `${fx.dir}/qa.jsonl`;
    await Deno.writeTextFile(
      evalFile,
      '{"prompt": "A1 B2 ?A", "answer": "1"}\n{"prompt": "hello", "answer": " world"}\n',
    );
    const out = `${fx.dir}/search`;
    const r = ok(await cli("search", ...SEARCH, "--steps", "2", "--eval", evalFile, "--out", out), "search --eval");
    assert(r.stdout.includes("score = --eval answer loss - 1 * exact match"), r.stdout);
    const record = JSON.parse(await Deno.readTextFile(`${out}/search.json`));
    assert(record.objective === "--eval answer loss - 1 * exact match", record.objective);
    // Two items: each scored configuration's exact match is 0, 0.5 or 1.
    const accs = record.trace.map((v: { accuracy: number }) => v.accuracy);
    assert(accs.every((a: number) => [0, 0.5, 1].includes(a)), `exact-match values ${accs}`);
    const t = ok(
      await cli(
        "tune",
        "--backend",
        "cpu",
        "--run",
        out,
        "--steps",
        "1",
        "--eval",
        evalFile,
        "--eval-batch",
        "4",
        "--tokens",
        "2",
        "--out",
        `${fx.dir}/tune`,
      ),
      "tune --eval",
    );
    for (const when of ["before", "after"]) {
      assert(
        new RegExp(`${when}: +--eval answer loss \\d+\\.\\d+, exact match \\d\\.\\d+ \\(2 items\\)`).test(t.stdout),
        t.stdout,
      );
    }
  } finally {
    await Deno.remove(fx.dir, { recursive: true });
  }
});
