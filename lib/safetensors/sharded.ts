/**
 * Sharded checkpoints: `model.safetensors.index.json` (`weight_map`) over several files, or a
 * folder holding one `model.safetensors`, read through one name → file routing map.
 * @module
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, dirname, basename } from "node:path";
import { SafetensorsError } from "../errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { TensorInfo } from "./format.ts";
import { SafetensorsFile } from "./reader.ts";

/**
 * Open every safetensors file of a checkpoint: a `.safetensors` file, a `*.safetensors.index.json`,
 * or a folder holding either. Files are mapped lazily on first use.
 *
 * @example
 * ```ts
 * import { ShardedCheckpoint, saveFile } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const dir = Deno.makeTempDirSync();
 * saveFile({ a: Tensor.fromArray([1]) }, dir + "/model.safetensors");
 * using ckpt = ShardedCheckpoint.open(dir);
 * console.log(ckpt.keys()); // ["a"]
 * ```
 */
export class ShardedCheckpoint implements Disposable {
  /** The folder the shards live in. */
  readonly dir: string;
  /** Tensor name → shard file name (relative to `dir`). */
  readonly weightMap: ReadonlyMap<string, string>;
  /** The index's `metadata` (empty for a single file). */
  readonly indexMetadata: Readonly<Record<string, unknown>>;
  #files = new Map<string, SafetensorsFile>();

  private constructor(dir: string, weightMap: Map<string, string>, meta: Record<string, unknown>) {
    this.dir = dir;
    this.weightMap = weightMap;
    this.indexMetadata = meta;
  }

  /** Open a file, an index or a folder. */
  static open(path: string): ShardedCheckpoint {
    if (!existsSync(path)) throw new SafetensorsError("IoError", path, `Cannot open checkpoint "${path}": no such file or folder`);
    if (statSync(path).isDirectory()) {
      const names = readdirSync(path);
      const index = names.find((n) => n.endsWith(".safetensors.index.json"));
      if (index) return ShardedCheckpoint.open(join(path, index));
      // As transformers: the index first, then model.safetensors, else every safetensors file.
      const all = names.filter((n) => n.endsWith(".safetensors")).sort();
      const files = all.includes("model.safetensors") ? ["model.safetensors"] : all;
      if (files.length === 0) {
        const bin = names.find((n) => n.endsWith(".bin") || n.endsWith(".pt") || n.endsWith(".pth"));
        const hint = bin
          ? `found "${bin}", a pickle checkpoint: convert it first, e.g. in Python: model = AutoModelForCausalLM.from_pretrained(dir); model.save_pretrained(out, safe_serialization=True)`
          : "expected model.safetensors or model.safetensors.index.json";
        throw new SafetensorsError("IoError", path, `Cannot open checkpoint "${path}": no safetensors files: ${hint}`);
      }
      const ckpt = new ShardedCheckpoint(path, new Map(), {});
      const wm = ckpt.weightMap as Map<string, string>;
      for (const f of files) {
        for (const k of ckpt.file(f).keys()) {
          if (wm.has(k)) throw new SafetensorsError("InvalidIndex", path, `Cannot open checkpoint "${path}": tensor "${k}" is in both "${wm.get(k)}" and "${f}"`);
          wm.set(k, f);
        }
      }
      return ckpt;
    }
    if (path.endsWith(".json")) {
      let idx: { weight_map?: unknown; metadata?: unknown };
      try {
        idx = JSON.parse(readFileSync(path, "utf8"));
      } catch (e) {
        throw new SafetensorsError("InvalidIndex", path, `Cannot read index "${path}": ${(e as Error).message}`);
      }
      const wmRaw = idx?.weight_map;
      if (typeof wmRaw !== "object" || wmRaw === null || Array.isArray(wmRaw)) {
        throw new SafetensorsError("InvalidIndex", path, `Cannot read index "${path}": "weight_map" must be an object of tensor name to file`);
      }
      const wm = new Map<string, string>();
      for (const [k, v] of Object.entries(wmRaw as Record<string, unknown>)) {
        if (typeof v !== "string" || v.includes("/") || v.includes("\\")) {
          throw new SafetensorsError("InvalidIndex", path, `Cannot read index "${path}": file for "${k}" must be a file name in the same folder: current value is ${JSON.stringify(v)}`);
        }
        wm.set(k, v);
      }
      const meta = typeof idx.metadata === "object" && idx.metadata !== null ? idx.metadata as Record<string, unknown> : {};
      return new ShardedCheckpoint(dirname(path), wm, meta);
    }
    const ckpt = new ShardedCheckpoint(dirname(path), new Map(), {});
    const f = basename(path);
    for (const k of ckpt.file(f).keys()) (ckpt.weightMap as Map<string, string>).set(k, f);
    return ckpt;
  }

  /** All tensor names. */
  keys(): string[] {
    return [...this.weightMap.keys()];
  }

  /** Shard file names, in first-use order of the weight map. */
  files(): string[] {
    return [...new Set(this.weightMap.values())];
  }

  /** Whether a tensor exists. */
  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** The mapped shard `file` (relative name). */
  file(file: string): SafetensorsFile {
    let f = this.#files.get(file);
    if (!f) {
      f = SafetensorsFile.open(join(this.dir, file));
      this.#files.set(file, f);
    }
    return f;
  }

  /** The shard holding `name`. */
  fileOf(name: string): SafetensorsFile {
    const file = this.weightMap.get(name);
    if (file === undefined) {
      throw new SafetensorsError("TensorNotFound", this.dir, `Cannot find tensor "${name}" in checkpoint "${this.dir}": it has ${this.weightMap.size} tensors`);
    }
    const f = this.file(file);
    if (!f.has(name)) {
      throw new SafetensorsError("InvalidIndex", this.dir, `Cannot find tensor "${name}" in "${file}": the index says it is there; the checkpoint is inconsistent`);
    }
    return f;
  }

  /** Header entry of a tensor. */
  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }

  /** A zero-copy tensor. */
  tensor(name: string): Tensor {
    return this.fileOf(name).tensor(name);
  }

  /** Zero-copy raw bytes. */
  raw(name: string): Uint8Array {
    return this.fileOf(name).raw(name);
  }

  [Symbol.dispose](): void {
    for (const f of this.#files.values()) f[Symbol.dispose]();
    this.#files.clear();
  }
}
