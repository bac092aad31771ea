/**
 * A GGUF model file opened as a checkpoint under Hugging Face names: the header parsed and checked
 * (every tensor's extent inside the file before any view is taken), the file memory-mapped, each
 * llama.cpp tensor named back to its transformers name, and llama's q/k rows put back in HF's
 * rotate-half order, llama.cpp's stacked `*_exps` tensors split back into one tensor per expert.
 * F32, F16 and BF16 tensors and Q8_0 2-D weights (the decoder layers' Linears, `token_embd` and
 * `output`: the embedding gathers its rows from the blocks, lm_head runs `linearQ8_0`) are zero-copy
 * views of the mapping; Q8_0 stacked experts are dequantised to F32 (the fused experts hold plain weights).
 * @module
 */
import { basename, dirname } from "node:path";
import { statSync } from "node:fs";
import type { DType } from "../dtype.ts";
import { MappedFile } from "../ffi/mod.ts";
import { Tensor } from "../tensor/tensor.ts";
import { dequantizeQ8_0 } from "../tensor/q8_0.ts";
import { hfConfigFromGguf } from "./config_from_metadata.ts";
import { GGML_TYPE_SIZES, type GgufFile, type GgufTensorInfo, readGguf } from "./reader.ts";
import { type GgufArch, ggufTensorRoute, ggufTensorTransform } from "./tensor_names.ts";

/** The ggml types read, as the dtype each loads as. */
const DTYPE_OF: Readonly<Record<number, DType>> = { 0: "F32", 1: "F16", 30: "BF16", 8: "Q8_0" };
/** Byte alignment a zero-copy view of each dtype needs (Q8_0: its f16 scales). */
const ALIGN: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, Q8_0: 2 };

/** The HF tensors of a decoder layer this loader names back (each `.weight` and `.bias`). */
const LAYER_KEYS = [
  "input_layernorm",
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "self_attn.q_norm",
  "self_attn.k_norm",
  "post_attention_layernorm",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
  "mlp.gate",
  "mlp.shared_expert.gate_proj",
  "mlp.shared_expert.up_proj",
  "mlp.shared_expert.down_proj",
  "mlp.shared_expert_gate",
  "block_sparse_moe.gate",
];
/** One expert's weights, stacked by llama.cpp into `ffn_{gate,up,down}_exps` (Qwen's names, Mixtral's). */
const EXPERT_KEYS = [
  "mlp.experts.E.gate_proj",
  "mlp.experts.E.up_proj",
  "mlp.experts.E.down_proj",
  "block_sparse_moe.experts.E.w1",
  "block_sparse_moe.experts.E.w2",
  "block_sparse_moe.experts.E.w3",
];
const GLOBAL_KEYS = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"];

interface Entry {
  readonly info: GgufTensorInfo;
  readonly dtype: DType;
  /** GGUF row of each HF row (llama's q/k), or null. */
  readonly rows: Int32Array | null;
  /** One expert of a stacked tensor: its shape, file offset and size. */
  readonly slice: { shape: readonly number[]; offset: number; nbytes: number } | null;
}

/** The HF tensors behind each GGUF tensor for `arch` (several for a stacked `*_exps` tensor, by expert). */
function hfNames(arch: GgufArch, layers: number, experts: number): Map<string, { hf: string; expert?: number }[]> {
  const out = new Map<string, { hf: string; expert?: number }[]>();
  const add = (hf: string) => {
    let r;
    try {
      r = ggufTensorRoute(hf, arch);
    } catch {
      return; // not a tensor of this architecture
    }
    if (r === null) return;
    const list = out.get(r.name) ?? [];
    if (r.expert === undefined) list.splice(0, list.length, { hf });
    else list.push({ hf, expert: r.expert });
    out.set(r.name, list);
  };
  for (const k of GLOBAL_KEYS) add(k);
  for (let i = 0; i < layers; i++) {
    for (const k of LAYER_KEYS) for (const s of ["weight", "bias"]) add(`model.layers.${i}.${k}.${s}`);
    for (const k of EXPERT_KEYS) for (let e = 0; e < experts; e++) add(`model.layers.${i}.${k.replace("E", String(e))}.weight`);
  }
  return out;
}

/**
 * A GGUF file as a read-only checkpoint with Hugging Face tensor names (what `fromPretrained` loads
 * a `.gguf` path through). Open it with {@link GgufCheckpoint.open}; `config` is the model's
 * config.json equivalent; `tensor(name)` gives a view of the mapping (a copy where q/k rows are
 * un-permuted, a view would be misaligned, or a stacked Q8_0 expert must be F32). Disposing unmaps the
 * file and detaches every view.
 *
 * @example
 * ```ts ignore
 * import { GgufCheckpoint } from "./checkpoint.ts";
 * using ckpt = GgufCheckpoint.open("model-q8_0.gguf");
 * console.log(ckpt.config.model_type, ckpt.tensor("model.layers.0.self_attn.q_proj.weight").dtype); // llama Q8_0
 * ```
 */
export class GgufCheckpoint implements Disposable {
  /** The file. */
  readonly path: string;
  /** Its folder (with `files()`, where errors say the tensors came from). */
  readonly dir: string;
  /** The parsed header. */
  readonly gguf: GgufFile;
  /** The model's Hugging Face config, from the metadata ({@link hfConfigFromGguf}). */
  readonly config: Record<string, unknown>;
  #map: MappedFile | null;
  #entries: Map<string, Entry>;

  private constructor(path: string, gguf: GgufFile, config: Record<string, unknown>, entries: Map<string, Entry>, map: MappedFile) {
    this.path = path;
    this.dir = dirname(path);
    this.gguf = gguf;
    this.config = config;
    this.#entries = entries;
    this.#map = map;
  }

  /**
   * Parse, check and map a GGUF file. Throws a one-line TypeError or RangeError naming the file
   * (and the tensor) for a file that is not GGUF, truncated, an unsupported architecture, or a
   * tensor type other than F32, F16, BF16 and Q8_0.
   */
  static open(path: string): GgufCheckpoint {
    let st;
    try {
      st = statSync(path);
    } catch {
      throw new TypeError(`Cannot open GGUF "${path}": no such file; check the path`);
    }
    if (!st.isFile()) throw new TypeError(`Cannot open GGUF "${path}": not a regular file`);
    const gguf = readGguf(path);
    const config = hfConfigFromGguf(gguf, path);
    const arch = gguf.metadata.get("general.architecture") as GgufArch;
    const experts = Number(config.num_local_experts ?? config.num_experts ?? 0);
    const names = hfNames(arch, Number(config.num_hidden_layers), experts);
    const entries = new Map<string, Entry>();
    for (const info of gguf.tensors) {
      const hfs = names.get(info.name);
      if (hfs === undefined) {
        throw new TypeError(
          `Cannot load GGUF "${path}": tensor ${
            JSON.stringify(info.name)
          } has no Hugging Face name in llama.cpp's ${arch} architecture; is the file for a different model?`,
        );
      }
      const stored = DTYPE_OF[info.type];
      if (stored === undefined) {
        throw new TypeError(
          `Cannot load GGUF "${path}": tensor ${JSON.stringify(info.name)} is ${
            GGML_TYPE_SIZES[info.type]?.name ?? `type ${info.type}`
          }, which this library does not read (F32, F16, BF16 and Q8_0 only); convert the model with llama.cpp's convert_hf_to_gguf.py --outtype q8_0 (or f16), or load its safetensors folder`,
        );
      }
      if (hfs[0]!.expert !== undefined) {
        // A stacked [experts, rows, cols] tensor: one view per expert (dequantised from Q8_0: the
        // fused experts hold plain weights).
        if (info.shape.length !== 3 || info.shape[0] !== hfs.length) {
          throw new TypeError(
            `Cannot load GGUF "${path}": tensor ${JSON.stringify(info.name)} of shape [${
              info.shape.join(", ")
            }] does not stack ${hfs.length} experts`,
          );
        }
        const each = info.nbytes / hfs.length, dtype = stored === "Q8_0" ? "F32" : stored;
        for (const { hf, expert } of hfs) {
          entries.set(hf, {
            info,
            dtype,
            rows: null,
            slice: { shape: info.shape.slice(1), offset: info.offset + expert! * each, nbytes: each },
          });
        }
        continue;
      }
      const hf = hfs[0]!.hf;
      const rows = info.shape[0] ?? 1;
      const t = ggufTensorTransform(arch, hf, rows, config);
      let inv: Int32Array | null = null;
      if (t?.rowOf !== undefined) {
        inv = new Int32Array(rows);
        for (let g = 0; g < rows; g++) inv[t.rowOf(g)] = g;
      }
      // A 2-D Q8_0 weight stays Q8_0 (decoder Linears, the output head, the token embedding).
      const dtype = stored === "Q8_0" && info.shape.length !== 2 ? "F32" : stored;
      entries.set(hf, { info, dtype, rows: inv, slice: null });
    }
    let map: MappedFile;
    try {
      map = new MappedFile(path);
    } catch (e) {
      throw new TypeError(`Cannot map GGUF "${path}": ${(e as Error).message}`);
    }
    return new GgufCheckpoint(path, gguf, config, entries, map);
  }

  /** The one file (relative to `dir`). */
  files(): string[] {
    return [basename(this.path)];
  }

  /** All tensor names (Hugging Face's). */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Whether a tensor exists. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** A tensor's shape, the dtype `tensor()` gives it, and its GGUF name and type. */
  info(name: string): { shape: readonly number[]; dtype: DType; ggufName: string; ggmlType: string } {
    const e = this.#entry(name);
    return { shape: e.slice?.shape ?? e.info.shape, dtype: e.dtype, ggufName: e.info.name, ggmlType: GGML_TYPE_SIZES[e.info.type]!.name };
  }

  /** The tensor under its HF name (see the class notes for when it is a copy). */
  tensor(name: string): Tensor {
    const e = this.#entry(name);
    if (this.#map === null) throw new Error(`Cannot read tensor "${name}" from "${this.path}": the checkpoint was disposed`);
    const { info, rows } = e;
    const { shape, offset, nbytes } = e.slice ?? info;
    const stored = DTYPE_OF[info.type]!;
    const bytes = this.#map.view(offset, nbytes);
    if (e.dtype !== stored) {
      // A Q8_0 tensor that must be plain: dequantised (f16 scale × int8, exact in F32).
      const f = dequantizeQ8_0(rows === null ? bytes : permuted(bytes, rows));
      return Tensor.fromBytes(new Uint8Array(f.buffer), "F32", shape);
    }
    if (rows === null && offset % ALIGN[stored]! === 0) return Tensor.fromBytes(bytes, stored, shape, "mmap");
    const out = Tensor.empty(shape, stored);
    out.bytes().set(rows === null ? bytes : permuted(bytes, rows));
    return out;
  }

  #entry(name: string): Entry {
    const e = this.#entries.get(name);
    if (e === undefined) {
      throw new RangeError(`Cannot find tensor "${name}" in GGUF "${this.path}": it has ${this.#entries.size} tensors`);
    }
    return e;
  }

  /** Unmap the file (views taken from it are detached). */
  [Symbol.dispose](): void {
    this.#map?.[Symbol.dispose]();
    this.#map = null;
  }
}

/** Rows of `bytes` reordered: HF row r is GGUF row `rows[r]` (whole rows, so Q8_0 blocks move intact). */
function permuted(bytes: Uint8Array, rows: Int32Array): Uint8Array {
  const n = rows.length, rowBytes = bytes.byteLength / n;
  const out = new Uint8Array(bytes.byteLength);
  for (let r = 0; r < n; r++) out.set(bytes.subarray(rows[r]! * rowBytes, (rows[r]! + 1) * rowBytes), r * rowBytes);
  return out;
}
