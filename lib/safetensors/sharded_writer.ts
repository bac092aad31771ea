/**
 * Streaming sharded output: shards planned up front from names, dtypes and shapes (the
 * Hugging Face hub's greedy rule), written tensor by tensor, with a
 * `model.safetensors.index.json` holding `metadata.total_size` and the `weight_map`.
 * @module
 */
import { join } from "node:path";
import { DTYPE_SIZE, isDType } from "../dtype.ts";
import { AtomicFile } from "../_atomic.ts";
import type { TensorSpec } from "./serialize.ts";
import { SafetensorsWriter, type WriteOptions } from "./writer.ts";
import { ST_DTYPE_BITS } from "./format.ts";

/** Byte size of a spec's data. */
export function specBytes(s: TensorSpec): number {
  const bits = ST_DTYPE_BITS[s.dtype] ?? (isDType(s.dtype) ? DTYPE_SIZE[s.dtype] * 8 : 0);
  return (s.shape.reduce((a, d) => a * d, 1) * bits) / 8;
}

/**
 * Split tensors (in the given order) into shards of at most `maxShardSize` bytes of data:
 * a tensor that would overflow the current shard starts a new one; a tensor larger than the
 * limit gets a shard of its own.
 *
 * @example
 * ```ts
 * import { planShards } from "./sharded_writer.ts";
 * const p = planShards([{ name: "a", dtype: "F32", shape: [10] }, { name: "b", dtype: "F32", shape: [10] }], 50);
 * console.log(p.length); // 2
 * ```
 */
export function planShards(specs: readonly TensorSpec[], maxShardSize: number): TensorSpec[][] {
  const shards: TensorSpec[][] = [];
  let cur: TensorSpec[] = [];
  let size = 0;
  for (const s of specs) {
    const b = specBytes(s);
    if (b > maxShardSize) {
      shards.push([s]);
      continue;
    }
    if (size + b > maxShardSize && cur.length > 0) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(s);
    size += b;
  }
  if (cur.length > 0 || shards.length === 0) shards.push(cur);
  return shards;
}

/** Options for {@link ShardedWriter}. */
export interface ShardedWriterOptions extends WriteOptions {
  /** Maximum bytes of tensor data per shard (default 5 GB, as transformers). */
  maxShardSize?: number;
  /** File name prefix (default "model"). */
  prefix?: string;
}

/**
 * Writes a sharded checkpoint into `dir` tensor by tensor, holding no tensor data itself.
 * Shards are named `model-00001-of-00003.safetensors` (a single shard is `model.safetensors`
 * with no index), exactly as transformers names them.
 *
 * @example
 * ```ts
 * import { ShardedWriter } from "./sharded_writer.ts";
 * const dir = Deno.makeTempDirSync();
 * using w = new ShardedWriter(dir, [{ name: "a", dtype: "U8", shape: [2] }], { maxShardSize: 1 });
 * for (const s of w.shards) for (const t of s.order) w.write(t.name, new Uint8Array(2));
 * w.commit();
 * ```
 */
export class ShardedWriter implements Disposable {
  readonly dir: string;
  readonly shards: SafetensorsWriter[];
  readonly fileNames: string[];
  readonly totalSize: number;
  /** Number of elements over all tensors (transformers 5 records it in the index). */
  readonly totalParameters: number;
  #route = new Map<string, SafetensorsWriter>();
  #prefix: string;

  constructor(dir: string, specs: readonly TensorSpec[], options: ShardedWriterOptions = {}) {
    this.dir = dir;
    this.#prefix = options.prefix ?? "model";
    const plan = planShards(specs, options.maxShardSize ?? 5_000_000_000);
    const n = plan.length;
    const pad = (i: number) => String(i).padStart(5, "0");
    this.fileNames = plan.map((_, i) => n === 1 ? `${this.#prefix}.safetensors` : `${this.#prefix}-${pad(i + 1)}-of-${pad(n)}.safetensors`);
    this.shards = [];
    try {
      plan.forEach((shard, i) => {
        const w = new SafetensorsWriter(join(dir, this.fileNames[i]!), shard, { metadata: options.metadata ?? { format: "pt" } });
        this.shards.push(w);
        for (const s of shard) this.#route.set(s.name, w);
      });
    } catch (e) {
      this.abort();
      throw e;
    }
    this.totalSize = specs.reduce((a, s) => a + specBytes(s), 0);
    this.totalParameters = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  }

  /** The shard writer a tensor belongs to. */
  shardOf(name: string): SafetensorsWriter {
    const w = this.#route.get(name);
    if (!w) throw new RangeError(`Cannot write tensor "${name}": it is not in the planned checkpoint`);
    return w;
  }

  /** Write a tensor's bytes (or a chunk at `byteOffset`). */
  write(name: string, bytes: Uint8Array, byteOffset = 0): void {
    this.shardOf(name).write(name, bytes, byteOffset);
  }

  /** Commit every shard, then the index (when there is more than one shard). */
  commit(): void {
    for (const s of this.shards) s.commit();
    if (this.shards.length > 1) {
      const weightMap: Record<string, string> = {};
      const names = [...this.#route.keys()].sort();
      for (const k of names) weightMap[k] = this.fileNames[this.shards.indexOf(this.#route.get(k)!)]!;
      // As transformers 5 writes it: json.dumps(index, indent=2, sort_keys=True) + "\n".
      const metadata = { total_parameters: this.totalParameters, total_size: this.totalSize };
      const text = JSON.stringify({ metadata, weight_map: weightMap }, null, 2) + "\n";
      using f = new AtomicFile(join(this.dir, `${this.#prefix}.safetensors.index.json`));
      f.write(new TextEncoder().encode(text), 0);
      f.commit();
    }
  }

  /** Remove every temp file. */
  abort(): void {
    for (const s of this.shards) s.abort();
  }

  [Symbol.dispose](): void {
    this.abort();
  }
}
