/**
 * Fold PEFT adapters into a base checkpoint, out of core.
 *
 *   deno run -A scripts/merge.ts --base DIR --adapter DIR [--adapter DIR …] --out DIR [options]
 *   bun run scripts/merge.ts     (same flags)
 *
 * @module
 */
import { parseArgs } from "node:util";
import { MergeOptionsError } from "../lib/merge/errors.ts";
import { type CombinationOptions, mergeCheckpoint } from "../lib/merge/merge_checkpoint.ts";
import { createProgressReporter } from "../lib/merge/progress.ts";

export const HELP = `Usage: merge.ts --base DIR --adapter DIR [--adapter DIR ...] --out DIR [options]

Fold one or more PEFT adapters (LoRA, rsLoRA, DoRA, IA3, AdaLoRA) into a safetensors checkpoint,
streaming one tensor at a time: memory stays near one tensor whatever the model's size.

  --base DIR            base model folder (model.safetensors or a sharded index); a single
                        .safetensors file stands for its folder (config, tokenizer)
  --adapter DIR         adapter folder saved by PEFT (repeat for several; applied in order)
  --weight W            weight of the matching --adapter (repeat; default 1): merges Σ w·ΔW
                        exactly (what PEFT's add_weighted_adapter "cat" gives; its "linear"
                        averages A and B separately and is only an approximation)
  --combination T       combine the adapters first as PEFT's add_weighted_adapter, then merge
                        the result: svd, linear, cat, ties, ties_svd, dare_linear, dare_ties,
                        dare_linear_svd, dare_ties_svd, magnitude_prune, magnitude_prune_svd
                        (linear, ties, dare_linear, dare_ties, magnitude_prune need equal ranks)
  --density D           fraction of values kept by ties, dare_* and magnitude_prune* (0..1)
  --majority-sign M     TIES sign election: total (default) or frequency
  --svd-rank R          rank of the *svd results (default: the largest adapter rank)
  --svd-clamp Q         clamp the SVD factors at their Q-quantile (0..1; default none)
  --seed N              seed DARE's random masks (default: different each run)
  --out DIR             output folder: never an input, inside one or holding one (refused,
                        with or without --force); refused if it exists, unless --force
  --format F            safetensors (default: a model folder) or gguf: --out is then one .gguf
                        file for llama.cpp/Ollama (llama, mistral, qwen2, qwen3, gemma2,
                        gemma3_text, phi3, gpt_neox, mixtral, qwen2_moe, qwen3_moe), with
                        llama.cpp's tensor names, layouts, hyper-parameters and the tokenizer
  --gguf-type T         GGUF weight type: f32, f16 (default), bf16 or q8_0 (norms and
                        biases stay f32, as convert_hf_to_gguf.py writes them)
  --dtype D             auto (keep each tensor's), bf16, f16 or f32 (default auto)
  --max-shard-size S    largest output shard, e.g. 5GB, 2GiB (default 5GB)
  --device D            cpu (default) or cuda
  --safe                check merged tensors for NaN/inf before writing (PEFT's safe_merge)
  --force               replace an existing --out that is a previous merge output (its
                        .graft-merge marker, and only files a merge writes)
  --dry-run             print the plan (tensors per adapter, bytes, shards) and write nothing
  --verify              reopen the output and check every merged tensor against a float64
                        recomputation; --verify=sample checks 16 tensors x 4 rows (fast)
  --quiet               no progress output
  -h, --help            show this help

The output is written to OUT.partial-<pid>-<id> and renamed into place after every shard and the
index are fsynced; Ctrl-C or a failure leaves no OUT behind.

Exit status: 0 done, 1 failed (bad input files, I/O, verification), 2 usage error (flags, values,
an --out that is refused), 130 interrupted.`;

/** Run the CLI with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // --verify takes an optional value (--verify=sample), which parseArgs cannot express.
  let verify: "full" | "sample" | undefined;
  const args: string[] = [];
  for (const a of argv) {
    const m = /^--verify(?:=(.*))?$/.exec(a);
    if (!m) args.push(a);
    else if (m[1] === undefined || m[1] === "full" || m[1] === "sample") verify = (m[1] ?? "full") as "full" | "sample";
    else {
      console.error(`merge: --verify takes no value or =sample or =full: got "${a}"; see --help`);
      return 2;
    }
  }
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        base: { type: "string" },
        adapter: { type: "string", multiple: true },
        weight: { type: "string", multiple: true },
        combination: { type: "string" },
        density: { type: "string" },
        "majority-sign": { type: "string" },
        "svd-rank": { type: "string" },
        "svd-clamp": { type: "string" },
        seed: { type: "string" },
        out: { type: "string" },
        dtype: { type: "string", default: "auto" },
        format: { type: "string", default: "safetensors" },
        "gguf-type": { type: "string" },
        "max-shard-size": { type: "string", default: "5GB" },
        device: { type: "string", default: "cpu" },
        safe: { type: "boolean", default: false },
        force: { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`merge: ${(e as Error).message}; see --help`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const missing = ["base", "adapter", "out"].filter((k) => values[k as "base"] === undefined);
  if (missing.length > 0) {
    console.error(`merge: missing --${missing.join(", --")}; see --help`);
    return 2;
  }
  const weights = values.weight?.map((w) => (/^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(w) ? Number(w) : NaN));
  if (weights?.some((w) => !Number.isFinite(w))) {
    console.error(`merge: --weight must be numbers: got ${values.weight!.join(", ")}`);
    return 2;
  }
  if (values.device !== "cpu" && values.device !== "cuda") {
    console.error(`merge: --device must be cpu or cuda: got "${values.device}"`);
    return 2;
  }
  let combination;
  try {
    combination = combinationOf(values);
  } catch (e) {
    console.error(`merge: ${(e as Error).message}; see --help`);
    return 2;
  }
  const progress = createProgressReporter({ quiet: values.quiet || values["dry-run"] });
  const warn = (m: string) => {
    progress.stop();
    console.error(`merge: warning: ${m}`);
  };
  // The CLI owns signals: the first Ctrl-C (or SIGTERM) aborts the merge, which removes its partial
  // output; a second one exits at once.
  const abort = new AbortController();
  let phase: "merge" | "verify" | null = null;
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const r = await mergeCheckpoint({
      base: values.base!,
      adapters: values.adapter!,
      out: values.out!,
      ...(weights ? { weights } : {}),
      ...(combination ? { combination } : {}),
      dtype: values.dtype as "auto",
      format: values.format as "gguf",
      ...(values["gguf-type"] !== undefined ? { ggufType: values["gguf-type"] as "f16" } : {}),
      // A plain count of bytes is a number (parseSize, as Accelerate, reads only numbers with a unit from strings).
      maxShardSize: /^\d+$/.test(values["max-shard-size"]!) ? Number(values["max-shard-size"]) : values["max-shard-size"],
      device: values.device,
      safe: values.safe,
      force: values.force,
      dryRun: values["dry-run"],
      ...(verify ? { verify } : {}),
      onProgress: (p) => {
        phase = p.phase;
        progress.update(p);
      },
      onWarning: warn,
      signal: abort.signal,
    });
    progress.stop();
    if (r.dryRun) {
      console.log(`plan: ${r.plan.tensors.length} tensors, ${(r.plan.totalBytes / 1e9).toFixed(3)} GB to write in ${r.plan.shards.length} shard(s)`);
      if (combination) console.log(`  ${combination.combinationType} of ${values.adapter!.length} adapter(s): touches ${r.plan.touched[0]} tensors`);
      else values.adapter!.forEach((a, i) => console.log(`  adapter ${a}: touches ${r.plan.touched[i]} tensors`));
      if (r.plan.untied) console.log("  tied embedding changes: lm_head.weight written explicitly, tie_word_embeddings=false");
      console.log("dry run: nothing written");
      return 0;
    }
    if (!values.quiet) {
      const gbps = r.bytesWritten / 1e9 / r.seconds;
      console.log(`merged ${r.tensorsMerged} tensors into ${r.out}: ${(r.bytesWritten / 1e9).toFixed(3)} GB in ${r.seconds.toFixed(2)} s (${gbps.toFixed(2)} GB/s)`);
    }
    if (r.verify) {
      const v = r.verify;
      const what = v.mode === "full" ? `all ${v.tensorsChecked} merged tensors` : `a sample: ${v.tensorsChecked} of ${v.tensorsMerged} merged tensors`;
      console.log(`verify: ${v.ok ? "ok" : "FAILED"}: ${what}, ${v.elementsChecked} elements, max error ${v.maxUlpError.toFixed(2)} ulp${v.firstMismatch ? `; first mismatch ${v.firstMismatch}` : ""}`);
      if (!v.ok) return 1;
    }
    return 0;
  } catch (e) {
    progress.stop();
    if (abort.signal.aborted) {
      console.error(`merge: interrupted; ${phase === "verify" ? `"${values.out}" is complete, its check is not` : "nothing written"}`);
      return 130;
    }
    console.error(`merge: ${(e as Error).message}`);
    return e instanceof MergeOptionsError ? 2 : 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** The --combination flags as mergeCheckpoint's `combination` (undefined without --combination). */
function combinationOf(v: Record<string, string | boolean | string[] | undefined>): CombinationOptions | undefined {
  const num = (flag: string, int: boolean) => {
    const raw = v[flag];
    if (raw === undefined) return undefined;
    const n = /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(String(raw)) ? Number(raw) : NaN;
    if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new Error(`--${flag} must be ${int ? "an integer" : "a number"}: got "${raw}"`);
    return n;
  };
  const used = ["density", "majority-sign", "svd-rank", "svd-clamp", "seed"].filter((f) => v[f] !== undefined);
  if (v.combination === undefined) {
    if (used.length > 0) throw new Error(`--${used[0]} needs --combination`);
    return undefined;
  }
  const ms = v["majority-sign"];
  if (ms !== undefined && ms !== "total" && ms !== "frequency") throw new Error(`--majority-sign must be total or frequency: got "${ms}"`);
  const density = num("density", false), svdRank = num("svd-rank", true), svdClamp = num("svd-clamp", false), seed = num("seed", true);
  return {
    combinationType: v.combination as CombinationOptions["combinationType"],
    ...(density !== undefined ? { density } : {}),
    ...(ms !== undefined ? { majoritySignMethod: ms as "total" } : {}),
    ...(svdRank !== undefined ? { svdRank } : {}),
    ...(svdClamp !== undefined ? { svdClamp } : {}),
    ...(seed !== undefined ? { seed } : {}),
  };
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
