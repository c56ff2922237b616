// The tuners' keep rule: a challenger replaces the built-in variant only when timing both again in turn confirms it
// is at most `margin` of the built-in's time, so a cold first timing of the built-in cannot crown a slower variant.

import assert from "node:assert/strict";
import { confirmChoice } from "../../../core/webgpu/tune_time.ts";

// A fake clock: each variant's true time, plus a cold start on the first timing of each.
function timer(truth: Record<string, number>, firstExtra: Record<string, number> = {}) {
  const calls: string[] = [];
  const time = (v: string) => {
    const first = !calls.includes(v);
    calls.push(v);
    return Promise.resolve(truth[v] + (first ? firstExtra[v] ?? 0 : 0));
  };
  return { time, calls };
}

Deno.test("a challenger that won only because the built-in ran cold is not kept", async () => {
  // The built-in is 10 ms but its first timing took 14 ms; the challenger is really 12 ms (slower).
  const t = timer({ builtIn: 10, other: 12 }, { builtIn: 4 });
  const first = { builtIn: await t.time("builtIn"), other: await t.time("other") };
  assert.ok(first.other <= 0.9 * first.builtIn, "the first pass alone would pick the slower challenger");
  const kept = await confirmChoice(
    { variant: "builtIn", ms: first.builtIn },
    { variant: "other", ms: first.other },
    t.time,
    0.9,
  );
  assert.equal(kept, "builtIn");
  assert.deepEqual(t.calls, ["builtIn", "other", "builtIn", "other", "builtIn", "other"]);
});

Deno.test("a challenger that is truly faster is kept, and a close or rejected one is not", async () => {
  const faster = timer({ builtIn: 10, other: 6 });
  assert.equal(
    await confirmChoice({ variant: "builtIn", ms: 10 }, { variant: "other", ms: 6 }, faster.time, 0.9),
    "other",
  );
  const close = timer({ builtIn: 10, other: 9.5 });
  // Not within the margin at the first pass: nothing is timed again.
  assert.equal(
    await confirmChoice({ variant: "builtIn", ms: 10 }, { variant: "other", ms: 9.5 }, close.time, 0.9),
    "builtIn",
  );
  assert.deepEqual(close.calls, []);
  const rejected = timer({ builtIn: 10, other: Infinity });
  assert.equal(
    await confirmChoice({ variant: "builtIn", ms: 10 }, { variant: "other", ms: Infinity }, rejected.time, 0.9),
    "builtIn",
  );
  // The built-in as the best of the first pass is kept without more timing.
  const same = timer({ builtIn: 10 });
  assert.equal(
    await confirmChoice({ variant: "builtIn", ms: 10 }, { variant: "builtIn", ms: 10 }, same.time, 0.9),
    "builtIn",
  );
  assert.deepEqual(same.calls, []);
});
