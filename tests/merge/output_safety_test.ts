// Inputs are never destroyed: an --out that is, holds or lies inside an input is refused with or
// without --force (after resolving symlinks); --force replaces only a previous merge output; the
// stale-partial cleanup removes only folders the library made. Every case works on copies.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { cleanStalePartials, mergeCheckpoint, MergeOptionsError } from "../../lib/merge/mod.ts";
import { main } from "../../scripts/merge.ts";
import { fixture, tempDir } from "../_util.ts";

/** Every file under `dir` with its SHA-256 (the inputs must read back identical). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash("sha256").update(readFileSync(p)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

/** A work folder with copies of a base model and an adapter. */
function inputs(tmp: string): { base: string; lora: string } {
  const base = join(tmp, "base");
  const lora = join(tmp, "lora");
  cpSync(fixture("models", "llama"), base, { recursive: true });
  cpSync(fixture("peft", "lora_llama", "adapter"), lora, { recursive: true });
  return { base, lora };
}

/** Run the CLI in-process; returns the exit code and what it printed on stderr. */
async function cli(argv: string[]): Promise<{ code: number; err: string[] }> {
  const err: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    return { code: await main([...argv, "--quiet"]), err };
  } finally {
    console.error = orig;
  }
}

const refused = (e: unknown) => e instanceof MergeOptionsError && e.option === "out" && !e.message.includes("\n");

describe("an --out that overlaps an input is refused, with or without --force", () => {
  const cases: [string, (w: { tmp: string; base: string; lora: string }) => string][] = [
    ["--out equal to --base", (w) => w.base],
    ["--out equal to an --adapter", (w) => w.lora],
    ["--out holding the base and the adapter", (w) => w.tmp],
    ["--out equal to base/model.safetensors", (w) => join(w.base, "model.safetensors")],
    ["--out inside --base", (w) => join(w.base, "merged")],
    ["--out inside an --adapter", (w) => join(w.lora, "merged")],
    ["--out a symlink to --base", (w) => {
      symlinkSync(w.base, join(w.tmp, "link"));
      return join(w.tmp, "link");
    }],
    ["--out under a symlinked folder that is the adapter", (w) => {
      symlinkSync(w.lora, join(w.tmp, "alias"));
      return join(w.tmp, "alias", "sub");
    }],
    // The kernel follows "lnk" before "..": lnk/../base is the base beside the link's target.
    ["--out lnk/../base through a symlink to a sibling of the base", (w) => {
      mkdirSync(join(w.tmp, "t"));
      mkdirSync(join(w.tmp, "sib"));
      symlinkSync(join(w.tmp, "sib"), join(w.tmp, "t", "lnk"));
      return `${join(w.tmp, "t", "lnk")}/../base`; // as text: t/base; as the kernel resolves it: the base
    }],
    ["--out inside --base under a name starting with two dots", (w) => join(w.base, "..merged")],
  ];
  for (const [name, outOf] of cases) {
    for (const force of [false, true]) {
      it(`${name}${force ? " (--force)" : ""}: mergeCheckpoint throws MergeOptionsError, inputs byte-identical`, async () => {
        using t = tempDir();
        const w = { tmp: t.dir, ...inputs(t.dir) };
        const before = { base: snapshot(w.base), lora: snapshot(w.lora) };
        const out = outOf(w);
        await assert.rejects(mergeCheckpoint({ base: w.base, adapters: [w.lora], out, force }), refused);
        assert.deepEqual({ base: snapshot(w.base), lora: snapshot(w.lora) }, before);
      });
    }
    it(`${name}: the CLI exits 2 with one line and leaves the inputs alone`, async () => {
      using t = tempDir();
      const w = { tmp: t.dir, ...inputs(t.dir) };
      const before = { base: snapshot(w.base), lora: snapshot(w.lora) };
      const r = await cli(["--base", w.base, "--adapter", w.lora, "--out", outOf(w), "--force"]);
      assert.equal(r.code, 2);
      assert.equal(r.err.length, 1);
      assert.match(r.err[0]!, /^merge: Cannot write the merge to ".+": it (is|lies inside|contains) .+; the inputs are never replaced/);
      assert.deepEqual({ base: snapshot(w.base), lora: snapshot(w.lora) }, before);
    });
  }

  it("a base given as its model.safetensors file protects the file and its folder's side files", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const before = snapshot(w.base);
    await assert.rejects(mergeCheckpoint({ base: join(w.base, "model.safetensors"), adapters: [w.lora], out: w.base, force: true }), refused);
    await assert.rejects(mergeCheckpoint({ base: join(w.base, "model.safetensors"), adapters: [w.lora], out: join(w.base, "config.json"), force: true }), refused);
    assert.deepEqual(snapshot(w.base), before);
  });
});

describe("--force replaces only a previous merge output", () => {
  it("another model folder (shards and side files, but no merge marker) is refused and kept", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const other = join(t.dir, "other");
    cpSync(fixture("models", "llama"), other, { recursive: true });
    for (const n of readdirSync(other)) if (n.startsWith("expected") || n.startsWith("tokenizer_expected")) rmSync(join(other, n));
    const before = snapshot(other);
    await assert.rejects(mergeCheckpoint({ base: w.base, adapters: [w.lora], out: other, force: true }), (e: unknown) =>
      refused(e) && /has no \.graft-merge marker, so it is not a previous merge output/.test((e as Error).message));
    assert.deepEqual(snapshot(other), before);
  });

  it("a previous output with a folder inside is refused (only files are replaced)", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const out = join(t.dir, "o");
    await mergeCheckpoint({ base: w.base, adapters: [w.lora], out });
    rmSync(join(out, "config.json"));
    mkdirSync(join(out, "config.json"));
    writeFileSync(join(out, "config.json", "keep"), "x");
    await assert.rejects(mergeCheckpoint({ base: w.base, adapters: [w.lora], out, force: true }), refused);
    assert.equal(readFileSync(join(out, "config.json", "keep"), "utf8"), "x");
  });

  it("a previous output holding a file a merge does not write is refused and kept", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const out = join(t.dir, "o");
    await mergeCheckpoint({ base: w.base, adapters: [w.lora], out });
    writeFileSync(join(out, "notes.txt"), "mine");
    await assert.rejects(mergeCheckpoint({ base: w.base, adapters: [w.lora], out, force: true }), (e: unknown) =>
      refused(e) && /holds "notes\.txt", which a merge does not write/.test((e as Error).message));
    assert.equal(readFileSync(join(out, "notes.txt"), "utf8"), "mine");
  });

  it("a folder without the merge marker is refused and kept", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const out = join(t.dir, "o");
    mkdirSync(out);
    writeFileSync(join(out, "notes.txt"), "mine");
    await assert.rejects(mergeCheckpoint({ base: w.base, adapters: [w.lora], out, force: true }), refused);
    assert.equal(readFileSync(join(out, "notes.txt"), "utf8"), "mine");
  });

  it("a file is refused and kept", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const out = join(t.dir, "o");
    writeFileSync(out, "mine");
    await assert.rejects(mergeCheckpoint({ base: w.base, adapters: [w.lora], out, force: true }), refused);
    assert.equal(readFileSync(out, "utf8"), "mine");
  });

  it("a previous sharded output is replaced", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const out = join(t.dir, "o");
    await mergeCheckpoint({ base: w.base, adapters: [w.lora], out, maxShardSize: 100_000 });
    assert.ok(readdirSync(out).some((n) => /^model-00001-of-\d{5}\.safetensors$/.test(n)));
    await mergeCheckpoint({ base: w.base, adapters: [w.lora], out, force: true });
    assert.ok(existsSync(join(out, "model.safetensors")));
    assert.ok(!readdirSync(out).some((n) => n.startsWith("model-0")));
  });
});

describe("an --out spelled with a trailing slash", () => {
  it("writes the folder and replaces it under --force, leaving nothing else", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const out = join(t.dir, "merged") + "/";
    await mergeCheckpoint({ base: w.base, adapters: [w.lora], out });
    await mergeCheckpoint({ base: w.base, adapters: [w.lora], out, force: true });
    assert.deepEqual(readdirSync(t.dir).sort(), ["base", "lora", "merged"]);
    assert.ok(existsSync(join(t.dir, "merged", "model.safetensors")));
    assert.ok(existsSync(join(t.dir, "merged", ".graft-merge")));
  });
});

describe("the stale-partial cleanup removes only folders this library made", () => {
  it("keeps look-alike siblings, live runs and folders without a matching marker", () => {
    using t = tempDir();
    const out = join(t.dir, "o");
    const mk = (name: string, marker?: unknown) => {
      mkdirSync(join(t.dir, name));
      writeFileSync(join(t.dir, name, "data.bin"), name);
      if (marker !== undefined) writeFileSync(join(t.dir, name, ".graft-merge-partial"), JSON.stringify(marker));
    };
    mk("o.partial-notes");
    mk("o.partial-2024backup");
    mk("o.partial-999999999-ab"); // right name, no marker
    mk("o.partial-999999998-cd", { pid: 999999998, id: "xx" }); // marker of another folder
    mk("o.partial-1-ef", { pid: 1, id: "ef" }); // PID 1 is alive
    mk("o.partial-999999997-gh.bak", { pid: 999999997, id: "gh" }); // name with a suffix
    mk("o.partial-999999996-ij", { pid: 999999996, id: "ij" }); // ours, dead: the only one removed
    const removed = cleanStalePartials(out);
    assert.deepEqual(removed, [join(t.dir, "o.partial-999999996-ij")]);
    assert.deepEqual(readdirSync(t.dir).sort(), [
      "o.partial-1-ef", "o.partial-2024backup", "o.partial-999999997-gh.bak", "o.partial-999999998-cd", "o.partial-999999999-ab", "o.partial-notes",
    ]);
  });

  it("a merge leaves a user's OUT.partial-notes folder alone", async () => {
    using t = tempDir();
    const w = inputs(t.dir);
    const out = join(t.dir, "o");
    mkdirSync(`${out}.partial-notes`);
    writeFileSync(join(`${out}.partial-notes`, "n.txt"), "keep");
    await mergeCheckpoint({ base: w.base, adapters: [w.lora], out });
    assert.equal(readFileSync(join(`${out}.partial-notes`, "n.txt"), "utf8"), "keep");
    assert.ok(!readdirSync(out).includes(".graft-merge-partial"), "the marker does not reach the output");
  });
});
