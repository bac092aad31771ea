// CLI manners of scripts/merge.ts: exit 2 for usage errors and 1 for failures, file-system errors
// in one line of our own, a file as --base, progress with an ETA, --verify checks everything.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createProgressReporter, MergeIOError, type MergeProgress, mergeCheckpoint, verifyMerge, writeFailure } from "../../lib/merge/mod.ts";
import { readAdapterDeltas } from "../../lib/peft/delta.ts";
import { ShardedCheckpoint } from "../../lib/safetensors/mod.ts";
import { main } from "../../scripts/merge.ts";
import { fixture, tempDir } from "../_util.ts";

const base = fixture("models", "llama");
const lora = fixture("peft", "lora_llama", "adapter");

/** Run the CLI in-process; the exit code and what it printed. */
async function cli(argv: string[]): Promise<{ code: number; err: string[]; out: string[] }> {
  const err: string[] = [];
  const out: string[] = [];
  const [e, l] = [console.error, console.log];
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  try {
    return { code: await main(argv), err, out };
  } finally {
    [console.error, console.log] = [e, l];
  }
}

describe("merge CLI exit status: 2 for usage errors, 1 for failures", () => {
  const usage: [string, (o: string) => string[]][] = [
    ["an unknown flag", (o) => ["--base", base, "--adapter", lora, "--out", o, "--frobnicate"]],
    ["a missing --out", () => ["--base", base, "--adapter", lora]],
    ["a weight that is not a number", (o) => ["--base", base, "--adapter", lora, "--out", o, "--weight", "abc"]],
    ["an empty weight", (o) => ["--base", base, "--adapter", lora, "--out", o, "--weight", ""]],
    ["more weights than adapters", (o) => ["--base", base, "--adapter", lora, "--out", o, "--weight", "1", "--weight", "2"]],
    ["an unknown --dtype", (o) => ["--base", base, "--adapter", lora, "--out", o, "--dtype", "int3"]],
    ["an integer --dtype", (o) => ["--base", base, "--adapter", lora, "--out", o, "--dtype", "i32"]],
    ["a bad --max-shard-size", (o) => ["--base", base, "--adapter", lora, "--out", o, "--max-shard-size", "lots"]],
    ["an unknown --device", (o) => ["--base", base, "--adapter", lora, "--out", o, "--device", "tpu"]],
    ["a bad --verify value", (o) => ["--base", base, "--adapter", lora, "--out", o, "--verify=most"]],
    ["an existing --out without --force", (o) => {
      mkdirSync(o);
      return ["--base", base, "--adapter", lora, "--out", o];
    }],
  ];
  for (const [name, argv] of usage) {
    it(`${name}: exit 2, one line, nothing written`, async () => {
      using t = tempDir();
      const o = join(t.dir, "o");
      const r = await cli(argv(o));
      assert.equal(r.code, 2, r.err.join("\n"));
      assert.equal(r.err.length, 1);
      assert.match(r.err[0]!, /^merge: /);
      assert.ok(readdirSync(t.dir).every((n) => n === "o" && readdirSync(o).length === 0), "nothing written");
    });
  }

  const failures: [string, (dir: string) => string[]][] = [
    ["a base that does not exist", (d) => ["--base", join(d, "nope"), "--adapter", lora, "--out", join(d, "o")]],
    ["a corrupt adapter", (d) => {
      cpSync(lora, join(d, "bad"), { recursive: true });
      writeFileSync(join(d, "bad", "adapter_model.safetensors"), "garbage");
      return ["--base", base, "--adapter", join(d, "bad"), "--out", join(d, "o")];
    }],
  ];
  for (const [name, argv] of failures) {
    it(`${name}: exit 1, one line, no output`, async () => {
      using t = tempDir();
      const r = await cli([...argv(t.dir), "--quiet"]);
      assert.equal(r.code, 1, r.err.join("\n"));
      assert.equal(r.err.length, 1);
      assert.ok(!existsSync(join(t.dir, "o")));
    });
  }
});

describe("merge CLI file-system errors", () => {
  it("a read-only output file system gives one line of our own, exit 1, nothing left", async (t) => {
    using tmp = tempDir();
    const mnt = join(tmp.dir, "ro");
    mkdirSync(mnt);
    // Needs root (CI and developers run as root); a read-only tmpfs gives EROFS on the first write.
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mnt]);
    if (m.status !== 0) return t.skip(`cannot mount a read-only tmpfs: ${String(m.stderr).trim() || "mount failed"}`);
    try {
      const r = await cli(["--base", base, "--adapter", lora, "--out", join(mnt, "o"), "--quiet"]);
      assert.equal(r.code, 1);
      assert.equal(r.err.length, 1);
      assert.match(r.err[0]!, /^merge: Cannot write ".+": the file system is read-only; choose another --out$/);
      assert.doesNotMatch(r.err[0]!, /EROFS/);
      assert.deepEqual(readdirSync(mnt), []);
    } finally {
      spawnSync("umount", [mnt]);
    }
  });
});

describe("merge CLI with a file as --base", () => {
  it("takes config and tokenizer files from the file's folder, so transformers can load the output", async () => {
    using t = tempDir();
    const o = join(t.dir, "o");
    const r = await cli(["--base", join(base, "model.safetensors"), "--adapter", lora, "--out", o, "--quiet"]);
    assert.equal(r.code, 0, r.err.join("\n"));
    for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]) {
      assert.ok(existsSync(join(o, f)), `output lacks ${f}`);
    }
  });

  it("warns when the base folder has no config.json", async () => {
    using t = tempDir();
    mkdirSync(join(t.dir, "b"));
    cpSync(join(base, "model.safetensors"), join(t.dir, "b", "model.safetensors"));
    const r = await cli(["--base", join(t.dir, "b"), "--adapter", lora, "--out", join(t.dir, "o"), "--quiet"]);
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.equal(r.err.length, 1);
    assert.match(r.err[0]!, /^merge: warning: ".+" has no config\.json: .*transformers cannot load it/);
  });

  it("refuses one shard of a sharded checkpoint, naming the folder to pass", async () => {
    using t = tempDir();
    const sharded = join(t.dir, "sharded");
    await mergeCheckpoint({ base, adapters: [lora], out: sharded, maxShardSize: 100_000 });
    const shard = readdirSync(sharded).find((n) => n.startsWith("model-00001"))!;
    const r = await cli(["--base", join(sharded, shard), "--adapter", lora, "--out", join(t.dir, "o"), "--quiet"]);
    assert.equal(r.code, 2);
    assert.match(r.err[0]!, /it is one shard of the checkpoint indexed by ".+"; pass the folder/);
  });
});

describe("merge progress for people", () => {
  const p = (phase: MergeProgress["phase"], done: number, total: number): MergeProgress => ({
    phase, tensorsDone: done, tensorsTotal: total, bytesDone: done * 1e8, bytesTotal: total * 1e8, name: `t${done}`,
  });

  it("non-TTY lines carry an ETA and come at least every few seconds, in each phase", () => {
    let clock = 0;
    const lines: string[] = [];
    const r = createProgressReporter({ tty: false, write: (l) => lines.push(l), now: () => clock });
    // 1000 tensors, 1 s each: 1% per 10 s, so only the time rule makes lines between the 10% steps.
    for (let i = 1; i <= 30; i++) {
      clock += 1000;
      r.update(p("merge", i, 1000));
    }
    assert.ok(lines.length >= 5, `${lines.length} lines in 30 s`);
    assert.match(lines[0]!, /^merge: 0% 6\/1000 tensors, 0.60\/100.00 GB, 120 MB\/s, ETA 13:48\n$/);
    clock += 1000;
    r.update(p("verify", 1, 2));
    r.update(p("verify", 2, 2));
    r.stop();
    assert.match(lines.at(-1)!, /^verify: 100% 2\/2 tensors, .*ETA 0:00\n$/);
  });

  it("a TTY bar redraws one line and ends it on stop", () => {
    let clock = 0;
    const out: string[] = [];
    const r = createProgressReporter({ tty: true, write: (l) => out.push(l), now: () => clock });
    for (let i = 1; i <= 4; i++) {
      clock += 500;
      r.update(p("merge", i, 4));
    }
    r.stop();
    assert.ok(out.slice(0, -1).every((l) => l.startsWith("\r")));
    assert.match(out.at(-2)!, /100% 4\/4 tensors/);
    assert.equal(out.at(-1), "\n");
  });

  it("the CLI prints progress lines with an ETA while merging and verifying", async () => {
    using t = tempDir();
    const lines: string[] = [];
    const write = process.stderr.write;
    (process.stderr as { write: unknown }).write = (s: string) => (lines.push(String(s)), true);
    try {
      const r = await cli(["--base", base, "--adapter", lora, "--out", join(t.dir, "o"), "--verify"]);
      assert.equal(r.code, 0);
    } finally {
      (process.stderr as { write: unknown }).write = write;
    }
    const text = lines.join("");
    assert.match(text, /merge: 100% .*ETA 0:00/);
    assert.match(text, /verify: 100% .*ETA 0:00/);
  });
});

describe("--verify checks every merged tensor unless --verify=sample", () => {
  it("full mode checks every element of every merged tensor and says so", async () => {
    using t = tempDir();
    const o = join(t.dir, "o");
    const r = await cli(["--base", base, "--adapter", lora, "--out", o, "--verify", "--quiet"]);
    assert.equal(r.code, 0);
    assert.match(r.out.join("\n"), /verify: ok: all 6 merged tensors, \d+ elements/);
    using out = ShardedCheckpoint.open(o);
    using a = readAdapterDeltas(lora);
    const merged = [...a.deltas.keys()].map((k) => out.info(k).shape.reduce((x, y) => x * y, 1)).reduce((x, y) => x + y, 0);
    assert.equal(Number(/(\d+) elements/.exec(r.out.join("\n"))![1]), merged);
  });

  it("sample mode says it sampled", async () => {
    using t = tempDir();
    const r = await cli(["--base", base, "--adapter", lora, "--out", join(t.dir, "o"), "--verify=sample", "--quiet"]);
    assert.equal(r.code, 0);
    assert.match(r.out.join("\n"), /verify: ok: a sample: 6 of 6 merged tensors/);
  });

  it("full mode finds one wrong element that sampled rows miss", async () => {
    using t = tempDir();
    const o = join(t.dir, "o");
    const res = await mergeCheckpoint({ base, adapters: [lora], out: o });
    // Flip one element in row 1 of the first merged tensor (the sample reads rows 0, ⅓, ⅔ and last).
    const name = res.plan.tensors.find((x) => x.deltas.length > 0)!.name;
    const file = join(o, "model.safetensors");
    const bytes = new Uint8Array(readFileSync(file));
    using ck = ShardedCheckpoint.open(o);
    const info = ck.info(name);
    const start = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true)) + info.begin + info.shape[1]! * 4 + 8;
    new DataView(bytes.buffer).setFloat32(start, 1234.5, true);
    ck[Symbol.dispose]();
    rmSync(file);
    writeFileSync(file, bytes);
    using b = ShardedCheckpoint.open(base);
    using a = readAdapterDeltas(lora);
    assert.equal((await verifyMerge(res.plan, o, b, [a], { mode: "sample" })).ok, true);
    const full = await verifyMerge(res.plan, o, b, [a]);
    assert.equal(full.ok, false);
    assert.match(full.firstMismatch!, new RegExp(`^${name.replace(/\./g, "\\.")}\\[1, 2\\]`));
  });
});

describe("file-system errors in one line of our own", () => {
  // Root (CI, developers) is never refused permission, so the mapping itself is pinned here.
  const cases: [string, RegExp][] = [
    ["EROFS", /the file system is read-only; choose another --out$/],
    ["EACCES", /permission denied; check the folder's permissions or choose another --out$/],
    ["EPERM", /operation not permitted; check the folder's permissions/],
    ["ENOSPC", /the output disk is full; free space or choose another --out$/],
    ["EDQUOT", /the disk quota is exhausted/],
  ];
  for (const [code, re] of cases) {
    it(`${code} names the path and what to do`, () => {
      const raw = Object.assign(new Error(`${code}: raw node text, open '/x/y'`), { code, path: "/x/y" });
      const e = writeFailure(raw, "/fallback") as MergeIOError;
      assert.ok(e instanceof MergeIOError);
      assert.equal(e.code, code);
      assert.equal(e.path, "/x/y");
      assert.match(e.message, new RegExp(`^Cannot write "/x/y": `));
      assert.match(e.message, re);
      assert.ok(!e.message.includes("raw node text"));
    });
  }
  it("leaves other errors alone", () => {
    const other = new RangeError("something else");
    assert.equal(writeFailure(other, "/o"), other);
  });
});
