import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AutoModelForCausalLM, GPT2LMHeadModel, LlamaForCausalLM, SUPPORTED_MODEL_TYPES } from "../../lib/models/mod.ts";
import { StateDictError } from "../../lib/nn/mod.ts";
import { SafetensorsFile, saveFile } from "../../lib/safetensors/mod.ts";
import type { Tensor } from "../../lib/tensor/mod.ts";
import { FIXTURES } from "./_fixtures.ts";

/** Folders made by these tests, removed at the end. */
const made: string[] = [];

function tempFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), "graft-models-"));
  made.push(dir);
  return dir;
}

function folder(config: object): string {
  const dir = tempFolder();
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

const llamaConfig = (): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, "llama", "config.json"), "utf8"));

/** A llama folder whose checkpoint is the fixture's with `edit` applied. */
function editedLlama(edit: (sd: Record<string, Tensor>) => void): string {
  const dir = folder(llamaConfig());
  using f = SafetensorsFile.open(join(FIXTURES, "llama", "model.safetensors"));
  const sd: Record<string, Tensor> = {};
  for (const k of f.keys()) sd[k] = f.tensor(k).clone();
  edit(sd);
  saveFile(sd, join(dir, "model.safetensors"));
  return dir;
}

describe("bad input", () => {
  after(() => {
    for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("an unsupported model_type lists the supported ones and names the file", () => {
    const dir = folder({ model_type: "bert", hidden_size: 8 });
    assert.throws(() => AutoModelForCausalLM.fromPretrained(dir), (e: Error) => {
      assert.ok(e instanceof TypeError);
      assert.equal(
        e.message,
        `Cannot build a model from "${
          join(dir, "config.json")
        }": model_type "bert" is not supported: supported ones are ${SUPPORTED_MODEL_TYPES.join(", ")}`,
      );
      return true;
    });
  });

  it("a missing config field is named with the file", () => {
    const cfg = llamaConfig();
    delete cfg.hidden_size;
    const dir = folder(cfg);
    assert.throws(() => LlamaForCausalLM.fromPretrained(dir), {
      message: `Cannot read config "${join(dir, "config.json")}": missing field "hidden_size"`,
    });
    assert.throws(() => GPT2LMHeadModel.fromConfig({ model_type: "gpt2", vocab_size: 8, n_embd: 8, n_head: 2 }), /missing field "n_layer"/);
    assert.throws(() => LlamaForCausalLM.fromConfig({ ...llamaConfig(), hidden_act: "mish" }), /Cannot create activation "mish"/);
  });

  it("a folder without config.json or weights says so", () => {
    const empty = tempFolder();
    assert.throws(() => LlamaForCausalLM.fromPretrained(empty), /Cannot read config ".*config\.json": no such file/);
    const noWeights = folder(llamaConfig());
    assert.throws(() => LlamaForCausalLM.fromPretrained(noWeights), /no safetensors files/);
  });

  it("missing keys: the first few with shapes, the total, the file", () => {
    const dir = editedLlama((sd) => {
      for (const k of Object.keys(sd)) if (k.startsWith("model.layers.1.")) delete sd[k];
    });
    assert.throws(() => LlamaForCausalLM.fromPretrained(dir), (e: Error) => {
      assert.ok(e instanceof StateDictError);
      assert.equal(e.missingKeys.length, 9);
      assert.match(
        e.message,
        new RegExp(
          `^Cannot load state dict from "${
            join(dir, "model.safetensors")
          }" into LlamaForCausalLM: 9 missing keys: "model\\.layers\\.1\\.self_attn\\.q_proj\\.weight" \\[64, 64\\], .* and 4 more$`,
        ),
      );
      return true;
    });
  });

  it("unexpected and wrongly shaped keys", () => {
    const dir = editedLlama((sd) => {
      sd["model.layers.0.mlp.extra.weight"] = sd["model.norm.weight"]!;
      sd["lm_head.weight"] = sd["lm_head.weight"]!.slice(0, 0, 10).contiguous();
    });
    assert.throws(() => LlamaForCausalLM.fromPretrained(dir), (e: Error) => {
      assert.match(
        e.message,
        /1 wrongly shaped key: "lm_head\.weight" is \[10, 64\] but the model expects \[256, 64\]; 1 unexpected key: "model\.layers\.0\.mlp\.extra\.weight" \[64\]$/,
      );
      return true;
    });
  });

  it("GPT-2 checkpoints without the transformer. prefix and with legacy mask buffers load", () => {
    const dir = folder(JSON.parse(readFileSync(join(FIXTURES, "gpt2", "config.json"), "utf8")));
    using f = SafetensorsFile.open(join(FIXTURES, "gpt2", "model.safetensors"));
    const sd: Record<string, Tensor> = {};
    for (const k of f.keys()) sd[k.replace(/^transformer\./, "")] = f.tensor(k).clone();
    sd["h.0.attn.bias"] = sd["ln_f.bias"]!;
    saveFile(sd, join(dir, "model.safetensors"));
    using m = GPT2LMHeadModel.fromPretrained(dir);
    assert.equal(m.getParameter("transformer.ln_f.bias").data.numel, 64);
  });

  it("a sharded checkpoint loads through its index", () => {
    const dir = folder(llamaConfig());
    using f = SafetensorsFile.open(join(FIXTURES, "llama", "model.safetensors"));
    const a: Record<string, Tensor> = {}, b: Record<string, Tensor> = {};
    const weightMap: Record<string, string> = {};
    for (const k of f.keys()) {
      const shard = k.includes("layers.1.") || k.startsWith("lm_head")
        ? "model-00002-of-00002.safetensors"
        : "model-00001-of-00002.safetensors";
      (shard.includes("00001") ? a : b)[k] = f.tensor(k).clone();
      weightMap[k] = shard;
    }
    saveFile(a, join(dir, "model-00001-of-00002.safetensors"));
    saveFile(b, join(dir, "model-00002-of-00002.safetensors"));
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    copyFileSync(join(FIXTURES, "llama", "expected.safetensors"), join(dir, "expected.safetensors"));
    using m = LlamaForCausalLM.fromPretrained(dir);
    assert.equal(m.checkpoint?.files().length, 2);
  });
});
