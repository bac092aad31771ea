/**
 * Fuzz the safetensors reader with seeded mutants of valid files (tests/safetensors/_mutants.ts).
 * Every verdict must be an accepted file or a one-line `SafetensorsError` with a code; with
 * `--python`, each verdict is also compared with the Python library's, run live as a peer
 * (scripts/fixtures/make_safetensors_fuzz.py --serve). Prints a table per mutation kind.
 *
 *   deno run -A scripts/fuzz_safetensors.ts [--seed 1] [--count 50000] [--python /work/venv/bin/python]
 *                                           [--record tests/fixtures/safetensors/fuzz_verdicts.json]
 *
 * Accepted files must match Python's tensor names, dtypes, shapes and metadata. Two differences
 * are deliberate and counted apart: a repeated key (`DuplicateKey`) and a dimension above
 * 2^53 − 1 in an empty tensor (`InvalidShape`). Exits 1 on any other difference, or when a
 * failure is not a one-line `SafetensorsError` with a code (counted as broken).
 * @module
 */
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { compareVerdicts, type Mutant, mutants, type PythonVerdict, readVerdict } from "../tests/safetensors/_mutants.ts";

/** Ask the Python peer about a batch of files. */
export function askPython(python: string, files: readonly Uint8Array[]): PythonVerdict[] {
  const frames: Uint8Array[] = [];
  for (const b of files) {
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, b.length, true);
    frames.push(head, b);
  }
  const peer = new URL("./fixtures/make_safetensors_fuzz.py", import.meta.url).pathname;
  const r = spawnSync(python, [peer, "--serve"], { input: Buffer.concat(frames), maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`Cannot run the Python peer ${python}: ${r.stderr?.toString() ?? r.error}`);
  const lines = r.stdout.toString().trim().split("\n");
  if (lines.length !== files.length) throw new Error(`The Python peer answered ${lines.length} of ${files.length} files`);
  return lines.map((l: string) => JSON.parse(l) as PythonVerdict);
}

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

function main(): void {
  const seed = Number(arg("seed") ?? 1);
  const count = Number(arg("count") ?? 50_000);
  const python = arg("python");
  const record = arg("record");
  if (record && !python) throw new Error("--record needs --python");
  const t0 = performance.now();
  const rows = new Map<string, { n: number; accepted: number; broken: number; same: number; deliberate: number; differs: number }>();
  const codes = new Map<string, number>();
  const differences: string[] = [];
  const verdicts: string[] = [];
  const digests: string[] = [];
  const all = createHash("sha256");
  let peerMs = 0;
  const batch: Mutant[] = [];
  const flush = () => {
    if (batch.length === 0) return;
    const t = performance.now();
    const py = python ? askPython(python, batch.map((m) => m.bytes)) : null;
    peerMs += performance.now() - t;
    batch.forEach((m, j) => {
      const ours = readVerdict(m.bytes);
      const row = rows.get(m.kind) ?? { n: 0, accepted: 0, broken: 0, same: 0, deliberate: 0, differs: 0 };
      rows.set(m.kind, row);
      row.n++;
      if (ours.code === null) row.accepted++;
      else codes.set(ours.code, (codes.get(ours.code) ?? 0) + 1);
      if (ours.broken !== undefined) {
        row.broken++;
        if (differences.length < 20) differences.push(`#${m.index} ${m.kind}: ${ours.broken}`);
      }
      const p = py?.[j];
      if (!p) return;
      const cmp = compareVerdicts(ours, p);
      row[cmp]++;
      if (cmp === "differs" && differences.length < 20) {
        differences.push(`#${m.index} ${m.kind}: ours ${ours.code ?? "accepts"} ${ours.message ?? ""} | python ${p.ok ? "accepts" : p.error}`);
      }
      verdicts.push(p.ok ? (p.big ? "B" : "A") : "R");
      if (p.ok) digests.push(p.digest!);
    });
    batch.length = 0;
  };
  for (const m of mutants(seed, count)) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, m.bytes.length, true);
    all.update(len).update(m.bytes);
    batch.push(m);
    if (batch.length === 5000) flush();
  }
  flush();
  const ms = performance.now() - t0;

  const table = [...rows].sort().map(([kind, r]) => ({ kind, ...r }));
  const total = { n: 0, accepted: 0, broken: 0, same: 0, deliberate: 0, differs: 0 };
  for (const r of table) for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r[k];
  console.log(`seed ${seed}, ${count} mutants, ${ms.toFixed(0)} ms (${python ? `${peerMs.toFixed(0)} ms in the Python peer` : "no Python peer"})`);
  console.table([...table, { kind: "total", ...total }]);
  console.log("rejections by code:", Object.fromEntries([...codes].sort((a, b) => b[1] - a[1])));
  for (const d of differences) console.log(d);
  if (record) {
    const doc = {
      generator: "tests/safetensors/_mutants.ts",
      seed,
      count,
      mutants_sha256: all.digest("hex"),
      legend: "per mutant: R = Python rejects, A = Python accepts, B = accepts with a dimension above 2^53 - 1",
      verdicts: verdicts.join(""),
      accepted_digests: digests,
    };
    writeFileSync(record, JSON.stringify(doc) + "\n");
    console.log(`recorded ${record}`);
  }
  if (total.broken > 0 || total.differs > 0) Deno.exit(1);
}

if (import.meta.main) main();
