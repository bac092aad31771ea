/**
 * `tokenizer.ggml.*` metadata from a model folder's `tokenizer.json` and `tokenizer_config.json`,
 * as `convert_hf_to_gguf.py` writes it:
 * - byte-level BPE (GPT-2 style: Llama 3, Qwen2) → model `gpt2`, the pre-tokenizer name, tokens,
 *   token types (added special tokens CONTROL, other added USER_DEFINED), merges;
 * - SentencePiece-style BPE with byte fallback (Llama 2, Mistral) → model `llama`, tokens, scores,
 *   token types (`<0xNN>` BYTE, the unk token UNKNOWN, special tokens CONTROL).
 * Both: special token ids (tokenizer_config's `{bos,eos,unk,sep,pad,cls,mask}_token`, else
 * config.json's `*_token_id`), `add_{bos,eos}_token`, and the chat template.
 *
 * Scores of the SentencePiece-style vocabulary: the converter reads them from `tokenizer.model`;
 * from `tokenizer.json` alone it writes -1000 for every token, which leaves llama.cpp's SPM
 * tokenizer no merge order. Here a token made by merge `r` scores `-r` (the order of
 * `tokenizer.json`'s merges, which transformers derives from the SentencePiece scores), other
 * tokens 0, and added tokens -1000.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TokenType } from "./constants.ts";
import type { GgufArch } from "./tensor_names.ts";
import type { GgufKV } from "./writer.ts";

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

const SPECIAL_TYPES = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] as const;
const ID_KEY: Record<(typeof SPECIAL_TYPES)[number], string> = {
  bos: "bos_token_id",
  eos: "eos_token_id",
  unk: "unknown_token_id",
  sep: "seperator_token_id",
  pad: "padding_token_id",
  cls: "cls_token_id",
  mask: "mask_token_id",
};

/** Options for {@link ggufTokenizerMetadata}. */
export interface GgufTokenizerOptions {
  /** `tokenizer.ggml.pre` for a byte-level BPE vocabulary (default from the architecture: `qwen2` for the Qwen ones, else `llama-bpe`). */
  pre?: string;
}

function readJson(path: string): Record<string, any> | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SyntaxError(`Cannot parse "${path}": ${(e as Error).message}`);
  }
}

/** What `does_token_look_special` in the converter calls special-looking. */
function looksSpecial(t: string): boolean {
  return ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].includes(t) || (t.startsWith("<|") && t.endsWith("|>")) ||
    (t.startsWith("<｜") && t.endsWith("｜>")) || (t.startsWith("<unused") && t.endsWith(">"));
}

/**
 * Tokenizer metadata for the model folder `dir` (its config already read as `config`). Throws a
 * TypeError when the folder has no `tokenizer.json` or its model is neither kind.
 *
 * @example
 * ```ts ignore
 * import { ggufTokenizerMetadata } from "./tokenizer.ts";
 * const kv = ggufTokenizerMetadata("Qwen2-0.5B", { vocab_size: 151936 }, "qwen2");
 * ```
 */
export function ggufTokenizerMetadata(
  dir: string,
  config: Record<string, unknown>,
  arch: GgufArch,
  options: GgufTokenizerOptions = {},
): GgufKV[] {
  const tj = readJson(join(dir, "tokenizer.json"));
  if (tj === null) {
    throw new TypeError(
      `Cannot write the GGUF tokenizer: "${dir}" has no tokenizer.json; llama.cpp needs the vocabulary in the file (save the tokenizer with the base model)`,
    );
  }
  const tc = readJson(join(dir, "tokenizer_config.json")) ?? {};
  const model = tj.model ?? {};
  const vocab: Record<string, number> = model.vocab ?? {};
  const added: AddedToken[] = Array.isArray(tj.added_tokens) ? tj.added_tokens : [];
  const decoderType = tj.decoder?.type;
  const byteLevel = model.type === "BPE" && !model.byte_fallback && decoderType === "ByteLevel";
  const spm = model.type === "BPE" && model.byte_fallback === true;
  if (!byteLevel && !spm) {
    throw new TypeError(
      `Cannot write the GGUF tokenizer from "${join(dir, "tokenizer.json")}": its model is ${model.type}${
        model.byte_fallback ? " with byte fallback" : ""
      } and decoder ${decoderType}; supported are byte-level BPE (GPT-2 style) and SentencePiece-style BPE with byte fallback`,
    );
  }
  const addedById = new Map(added.map((a) => [a.id, a]));
  const maxId = Math.max(-1, ...Object.values(vocab), ...added.map((a) => a.id));
  const nVocab = typeof config.vocab_size === "number" ? Math.max(config.vocab_size, byteLevel ? 0 : maxId + 1) : maxId + 1;
  if (maxId >= nVocab) {
    throw new RangeError(`Cannot write the GGUF tokenizer: token id ${maxId} is not below config.json's vocab_size ${nVocab}`);
  }
  const tokens: string[] = new Array(nVocab);
  const types = new Int32Array(nVocab);
  for (let i = 0; i < nVocab; i++) {
    tokens[i] = `[PAD${i}]`;
    types[i] = TokenType.UNUSED;
  }
  for (const [t, id] of Object.entries(vocab)) {
    tokens[id] = t;
    types[id] = spm && /^<0x[0-9A-Fa-f]{2}>$/.test(t) ? TokenType.BYTE : TokenType.NORMAL;
  }
  const specialIds = findSpecialIds(tc, added, config, nVocab);
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special || looksSpecial(a.content) ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }
  const kv: GgufKV[] = [];
  const str = (key: string, value: string) => kv.push({ key, value: { type: "string", value } });
  if (byteLevel) {
    str("tokenizer.ggml.model", "gpt2");
    str("tokenizer.ggml.pre", options.pre ?? (arch.startsWith("qwen") ? "qwen2" : "llama-bpe"));
    kv.push({ key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", value: tokens } });
    kv.push({ key: "tokenizer.ggml.token_type", value: { type: "array", itemType: "i32", value: types } });
    const merges = mergeStrings(model.merges, dir);
    if (merges.length > 0) kv.push({ key: "tokenizer.ggml.merges", value: { type: "array", itemType: "string", value: merges } });
  } else {
    str("tokenizer.ggml.model", "llama");
    str("tokenizer.ggml.pre", "default");
    const unk = specialIds.get("unk");
    if (unk !== undefined) types[unk] = TokenType.UNKNOWN;
    for (const [typ, id] of specialIds) if (typ !== "unk" && types[id] === TokenType.NORMAL) types[id] = TokenType.CONTROL;
    const scores = new Float32Array(nVocab);
    const merges = mergeStrings(model.merges, dir);
    const rank = new Map<string, number>();
    merges.forEach((m, r) => {
      const t = m.replace(" ", "");
      if (!rank.has(t)) rank.set(t, r);
    });
    for (let i = 0; i < nVocab; i++) {
      if (types[i] === TokenType.USER_DEFINED || types[i] === TokenType.UNUSED || (addedById.has(i) && types[i] === TokenType.CONTROL)) {
        scores[i] = -1000;
      } else if (types[i] === TokenType.NORMAL) scores[i] = -(rank.get(tokens[i]!) ?? 0);
    }
    kv.push({ key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", value: tokens } });
    kv.push({ key: "tokenizer.ggml.scores", value: { type: "array", itemType: "f32", value: scores } });
    kv.push({ key: "tokenizer.ggml.token_type", value: { type: "array", itemType: "i32", value: types } });
  }
  for (const [typ, id] of specialIds) kv.push({ key: `tokenizer.ggml.${ID_KEY[typ]}`, value: { type: "u32", value: id } });
  for (const typ of SPECIAL_TYPES) {
    const v = tc[`add_${typ}_token`];
    if (typeof v === "boolean" && (typ === "bos" || typ === "eos" || typ === "sep")) {
      kv.push({ key: `tokenizer.ggml.add_${typ}_token`, value: { type: "bool", value: v } });
    }
  }
  if (arch === "llama" && typeof tc.add_prefix_space === "boolean") {
    kv.push({ key: "tokenizer.ggml.add_space_prefix", value: { type: "bool", value: tc.add_prefix_space } });
  }
  if (arch === "gemma2" || arch === "gemma3") kv.push({ key: "tokenizer.ggml.add_space_prefix", value: { type: "bool", value: false } });
  const template = chatTemplate(dir, tc);
  if (template !== null) str("tokenizer.chat_template", template);
  return kv;
}

/** Merges as `"a b"` strings; pairs with spaces inside encode the space as U+0120 (as gguf-py does). */
function mergeStrings(merges: unknown, dir: string): string[] {
  if (!Array.isArray(merges)) return [];
  return merges.map((m) => {
    if (typeof m === "string") return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
      return m.map((p: string) => p.replaceAll(" ", "\u0120")).join(" ");
    }
    throw new TypeError(`Cannot read the merges of "${join(dir, "tokenizer.json")}": an entry is neither "a b" nor ["a", "b"]`);
  });
}

function findSpecialIds(
  tc: Record<string, any>,
  added: AddedToken[],
  config: Record<string, unknown>,
  nVocab: number,
): Map<(typeof SPECIAL_TYPES)[number], number> {
  const ids = new Map<(typeof SPECIAL_TYPES)[number], number>();
  for (const typ of SPECIAL_TYPES) {
    const entry = tc[`${typ}_token`];
    const content = typeof entry === "string" ? entry : typeof entry?.content === "string" ? entry.content : undefined;
    const id = content === undefined ? undefined : added.find((a) => a.content === content)?.id;
    if (id !== undefined && id < nVocab) ids.set(typ, id);
  }
  for (const typ of SPECIAL_TYPES) {
    const id = config[`${typ}_token_id`];
    if (!ids.has(typ) && typeof id === "number" && Number.isInteger(id) && id >= 0 && id < nVocab) ids.set(typ, id);
  }
  return ids;
}

/** tokenizer_config.json's chat_template, else chat_template.jinja, else chat_template.json's. */
function chatTemplate(dir: string, tc: Record<string, any>): string | null {
  const t = tc.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const d = t.find((x: { name?: string }) => x?.name === "default") ?? t[0];
    if (typeof d?.template === "string") return d.template;
  }
  const jinja = join(dir, "chat_template.jinja");
  if (existsSync(jinja)) return readFileSync(jinja, "utf8");
  const j = readJson(join(dir, "chat_template.json"));
  return typeof j?.chat_template === "string" ? j.chat_template : null;
}
