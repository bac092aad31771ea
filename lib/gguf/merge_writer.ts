/**
 * GGUF as the output of `mergeCheckpoint`: a writer with the shape of the safetensors
 * `ShardedWriter` the merge stream writes into (one "shard": `order`, `tempPath`, `write`,
 * `offsetOf`), which renames, permutes and converts each merged tensor as it arrives and writes it
 * at its place in one `.gguf`. The shard lists the tensors in file order (each expert of a MoE layer
 * is a slice of its stacked `*_exps` tensor), so the file is written sequentially; memory is one
 * chunk of rows in f32 beside the merged tensor.
 * @module
 */
import { pidAlive } from "../_process.ts";
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { ggmlNBytes, type GGMLTypeId, GGUF_MAGIC, GGUF_OUT_TYPES, type GgufOutType } from "./constants.ts";
import { EncodeScratch, encodeTensorChunks, ggufTensorType } from "./encode.ts";
import { ggufExtraTensors, ggufModelMetadata } from "./metadata.ts";
import { type GgufArch, ggufArchOf, ggufTensorRoute, type GgufTensorTransform, ggufTensorTransform } from "./tensor_names.ts";
import { ggufTokenizerMetadata, type GgufTokenizerOptions } from "./tokenizer.ts";
import { type GgufTensorSpec, GgufWriter } from "./writer.ts";

/** One planned input tensor (the merge plan's fields this writer needs). */
export interface GgufPlannedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly outDtype: string;
}

/** Options for {@link GgufMergeWriter}. */
export interface GgufMergeWriterOptions extends GgufTokenizerOptions {
  /** The base model's folder (tokenizer files). */
  baseDir: string;
  /** Its config.json. */
  config: Record<string, unknown> | null;
  /** Output tensor type of 2-D weights (default f16). */
  ggufType?: GgufOutType;
  /** The temp file to write until commit. */
  tempPath: string;
  /** `general.name` (default: the base folder's name, as the converter). */
  name?: string;
}

interface OrderEntry {
  readonly name: string;
  readonly begin: number;
  readonly end: number;
}

/**
 * Parse a `--gguf-type` value; a RangeError names the choices.
 *
 * @example
 * ```ts
 * import { parseGgufType } from "./merge_writer.ts";
 * console.log(parseGgufType("Q8_0")); // q8_0
 * ```
 */
export function parseGgufType(t: string | undefined): GgufOutType {
  const v = (t ?? "f16").toLowerCase();
  if (!(v in GGUF_OUT_TYPES)) throw new RangeError(`Cannot write GGUF type "${t}": choose f32, f16, bf16 or q8_0`);
  return v as GgufOutType;
}

/**
 * Remove `OUT.partial-<pid>-<id>` files that runs no longer alive left beside `out` (a crash or a
 * kill -9 before their own cleanup): only regular files whose name has exactly that form, whose PID
 * is dead and which start with the GGUF magic (a partial's header is written first).
 *
 * @example
 * ```ts ignore
 * import { cleanStaleGgufPartials } from "./merge_writer.ts";
 * console.log(cleanStaleGgufPartials("model.gguf"));
 * ```
 */
export function cleanStaleGgufPartials(out: string): string[] {
  const dir = dirname(out);
  if (!existsSync(dir)) return [];
  const re = new RegExp(`^${basename(out).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.partial-(\\d{1,10})-([0-9a-z]{1,32})$`);
  const removed: string[] = [];
  for (const n of readdirSync(dir)) {
    const m = re.exec(n);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    const p = join(dir, n);
    try {
      if (!lstatSync(p).isFile() || !startsWithMagic(p)) continue;
      rmSync(p, { force: true });
      removed.push(p);
    } catch {
      // vanished or unreadable: leave it
    }
  }
  return removed;
}

function startsWithMagic(p: string): boolean {
  const fd = openSync(p, "r");
  try {
    const b = new Uint8Array(4);
    return readSync(fd, b, 0, 4, 0) === 4 && new DataView(b.buffer).getUint32(0, true) === GGUF_MAGIC;
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuse to replace `out` unless it is a regular file holding a GGUF (its magic): `force` never
 * replaces a folder or another kind of file.
 *
 * @example
 * ```ts ignore
 * import { checkGgufReplaceable } from "./merge_writer.ts";
 * checkGgufReplaceable("old.gguf", "old.gguf");
 * ```
 */
export function checkGgufReplaceable(out: string, shown: string): void {
  const st = lstatSync(out);
  const ok = (st.isFile() || (st.isSymbolicLink() && statSync(out).isFile())) && startsWithMagic(out);
  if (!ok) {
    throw new TypeError(
      `Cannot replace "${shown}": it is not a GGUF file; --force replaces only a previous .gguf output: remove it yourself or choose another --out`,
    );
  }
}

/**
 * Writes a merge as one GGUF file. Construct with the merge plan's tensors (in stream order), hand
 * it to the stream as its writer, then `commit(out)`.
 *
 * @example
 * ```ts ignore
 * import { GgufMergeWriter } from "./merge_writer.ts";
 * using w = new GgufMergeWriter(plan.tensors, { baseDir, config, ggufType: "q8_0", tempPath: "m.gguf.partial" });
 * for (const t of w.shards[0].order) w.shards[0].write(t.name, mergedBytes(t.name));
 * w.commit("m.gguf");
 * ```
 */
export class GgufMergeWriter implements Disposable {
  /** One shard, as the merge stream expects. */
  readonly shards: readonly GgufShard[];
  /** Bytes of the finished file. */
  readonly totalBytes: number;
  /** Bytes of the merged tensors' GGUF data: what the stream's progress counts to. */
  readonly progressBytes: number;
  #writer: GgufWriter;

  constructor(tensors: readonly GgufPlannedTensor[], options: GgufMergeWriterOptions) {
    const arch = ggufArchOf(options.config);
    const config = options.config!;
    const outType = options.ggufType ?? "f16";
    const kvs = [
      ...ggufModelMetadata(config, arch, outType, { name: options.name ?? basename(options.baseDir) }),
      ...ggufTokenizerMetadata(options.baseDir, config, arch, options),
    ];
    const { specs, routes } = planTensors(tensors, arch, config, outType);
    const extra = ggufExtraTensors(config, arch);
    for (const e of extra.toReversed()) specs.unshift({ name: e.name, shape: [e.data.length], type: 0 });
    this.#writer = new GgufWriter(options.tempPath, kvs, specs, { tempPath: options.tempPath });
    this.totalBytes = this.#writer.totalBytes;
    try {
      for (const e of extra) this.#writer.write(e.name, new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength));
    } catch (e) {
      this.#writer.abort();
      throw e;
    }
    this.shards = [new GgufShard(this.#writer, tensors.map((t) => t.name), routes)];
    this.progressBytes = this.shards[0]!.order.reduce((a, t) => a + t.end - t.begin, 0);
  }

  /** Finish the file and rename it to `out` (replacing a file there) durably. */
  commit(out: string): void {
    this.#writer.commit(out);
  }

  /** Remove the temp file. */
  abort(): void {
    this.#writer.abort();
  }

  [Symbol.dispose](): void {
    this.abort();
  }
}

interface Route {
  gname: string | null;
  shape: readonly number[];
  srcDtype: string;
  type: GGMLTypeId;
  transform: GgufTensorTransform | null;
  /** Byte offset of this input within its GGUF tensor (an expert's slice of a stacked tensor). */
  at: number;
  /** Bytes of this input's encoding. */
  nbytes: number;
}

/**
 * The GGUF tensors (in the converter's order: each stacked `*_exps` tensor where its first expert
 * was) and each input tensor's route. Experts of one stacked tensor must all be there, with one
 * shape and dtype.
 */
function planTensors(
  tensors: readonly GgufPlannedTensor[],
  arch: GgufArch,
  config: Record<string, unknown>,
  outType: GgufOutType,
): { specs: GgufTensorSpec[]; routes: Map<string, Route> } {
  const specs: GgufTensorSpec[] = [];
  const routes = new Map<string, Route>();
  const stacks = new Map<string, { spec: number; members: { name: string; expert: number }[]; shape: readonly number[]; dtype: string }>();
  for (const t of tensors) {
    const r = ggufTensorRoute(t.name, arch);
    if (r === null) {
      routes.set(t.name, { gname: null, shape: t.shape, srcDtype: t.outDtype, type: 0, transform: null, at: 0, nbytes: 0 });
      continue;
    }
    const transform = ggufTensorTransform(arch, t.name, t.shape.length >= 2 ? t.shape[0]! : t.shape[0] ?? 1, config);
    if (r.expert === undefined) {
      const type = ggufTensorType(r.name, t.shape, outType);
      specs.push({ name: r.name, shape: t.shape, type });
      routes.set(t.name, {
        gname: r.name,
        shape: t.shape,
        srcDtype: t.outDtype,
        type,
        transform,
        at: 0,
        nbytes: ggmlNBytes(t.shape, type),
      });
      continue;
    }
    let st = stacks.get(r.name);
    if (st === undefined) {
      st = { spec: specs.length, members: [], shape: t.shape, dtype: t.outDtype };
      stacks.set(r.name, st);
      specs.push({ name: r.name, shape: [], type: 0 });
    }
    if (t.shape.join() !== st.shape.join() || t.outDtype !== st.dtype) {
      throw new TypeError(
        `Cannot write tensor "${t.name}" into the stacked GGUF tensor "${r.name}": its shape [${
          t.shape.join(", ")
        }] ${t.outDtype} differs from the other experts' [${st.shape.join(", ")}] ${st.dtype}`,
      );
    }
    st.members.push({ name: t.name, expert: r.expert });
    routes.set(t.name, { gname: r.name, shape: t.shape, srcDtype: t.outDtype, type: 0, transform, at: r.expert, nbytes: 0 });
  }
  for (const [gname, st] of stacks) {
    const n = st.members.length;
    const seen = new Set(st.members.map((m) => m.expert));
    if (seen.size !== n || [...seen].some((e) => e >= n)) {
      throw new TypeError(
        `Cannot write GGUF tensor "${gname}": its experts are not numbered 0..${n - 1} (found ${
          [...seen].sort((a, b) => a - b).join(", ")
        }); is the checkpoint complete?`,
      );
    }
    const shape = [n, ...st.shape];
    const type = ggufTensorType(gname, shape, outType);
    specs[st.spec] = { name: gname, shape, type };
    const each = ggmlNBytes(st.shape, type);
    for (const m of st.members) {
      const r = routes.get(m.name)!;
      r.type = type;
      r.nbytes = each;
      r.at = m.expert * each;
    }
  }
  return { specs, routes };
}

/** The one "shard" the merge stream writes into. */
export class GgufShard {
  /** Every input tensor in stream order; `end - begin` is its size in the GGUF (0 when dropped). */
  readonly order: readonly OrderEntry[];
  #w: GgufWriter;
  #routes: Map<string, Route>;
  #scratch = new EncodeScratch();
  #pos: Map<string, number>;

  constructor(w: GgufWriter, names: readonly string[], routes: Map<string, Route>) {
    this.#w = w;
    this.#routes = routes;
    this.#pos = new Map();
    const order: OrderEntry[] = [];
    const placed = names.map((n, i) => {
      const r = routes.get(n)!;
      return { n, i, off: r.gname === null ? -1 : w.offsetOf(r.gname) + r.at, size: r.nbytes };
    });
    // File order; a dropped tensor stays after the tensor it followed in the plan.
    let prev = w.dataStart;
    for (const p of placed) p.off < 0 ? (p.off = prev) : (prev = p.off + p.size);
    placed.sort((a, b) => a.off - b.off || a.i - b.i);
    for (const { n, off, size } of placed) {
      order.push({ name: n, begin: off - w.dataStart, end: off - w.dataStart + size });
      this.#pos.set(n, off);
    }
    this.order = order;
  }

  /** The file being written. */
  get tempPath(): string {
    return this.#w.tempPath;
  }

  /** The file's final path. */
  get path(): string {
    return this.#w.path;
  }

  /** File position of the input tensor's GGUF data (where a dropped tensor would be). */
  offsetOf(name: string): number {
    const p = this.#pos.get(name);
    if (p === undefined) throw new RangeError(`Cannot write tensor "${name}" to GGUF: it is not in the planned merge`);
    return p;
  }

  /** Convert and write one merged tensor (all of it; `bytes` in the plan's output dtype). */
  write(name: string, bytes: Uint8Array, byteOffset = 0): void {
    const r = this.#routes.get(name);
    if (r === undefined) throw new RangeError(`Cannot write tensor "${name}" to GGUF: it is not in the planned merge`);
    if (byteOffset !== 0) throw new RangeError(`Cannot write tensor "${name}" to GGUF in pieces: write it whole`);
    if (r.gname === null) return;
    const gname = r.gname;
    encodeTensorChunks(bytes, r.srcDtype, r.shape, r.type, r.transform, this.#scratch, (b, o) => this.#w.write(gname, b, r.at + o));
  }
}
