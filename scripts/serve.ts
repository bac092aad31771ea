/**
 * Serve a base model and PEFT adapters with OpenAI's API (vLLM's LoRA naming).
 *
 *   deno run -A scripts/serve.ts --model DIR [--lora-modules name=DIR ...] [options]
 *   bun run scripts/serve.ts     (same flags)
 *
 * @module
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { serve } from "../lib/serve/mod.ts";

export const HELP = `Usage: serve.ts --model DIR [--lora-modules NAME=DIR ...] [options]

Serve a Hugging Face model folder and PEFT adapters over HTTP with OpenAI's API:
GET /v1/models, POST /v1/completions and /v1/chat/completions (stream: true for server-sent
events), GET /health, GET /metrics (Prometheus). A request picks an adapter by naming it in its
"model" field, as with vLLM; the base model's id is --served-model-name, else --model as given.
Requests join the running batch between tokens (continuous batching).

  --model DIR                   model folder (config.json, safetensors, tokenizer.json)
  --lora-modules NAME=DIR ...   adapters saved by PEFT, as vLLM takes them: NAME=DIR pairs (one
                                flag, several values, or the flag repeated) or vLLM's JSON form
                                '{"name": NAME, "path": DIR}'; --adapter NAME=DIR is the same
  --adapters-dir DIR            a folder of adapters: a request naming "x" loads DIR/x on first use
  --max-adapters N              adapters held in memory at most (default 8, or the number given);
                                the least recently used idle one is unloaded to load another
  --served-model-name NAME      the base model's id in requests and /v1/models
  --host HOST                   address to bind (default 127.0.0.1)
  --port N                      port (default 8000; 0 picks a free one)
  --max-num-seqs N              sequences running at once (default 16; alias --max-batch)
  --max-waiting N               requests waiting at most; more get 429 (default 256)
  --max-model-len N             longest prompt + completion (default: the config's
                                max_position_embeddings)
  --kv-cache-dtype auto|f32|f16 how KV caches store keys and values (default auto = f32; f16
                                halves the attention bytes, llama.cpp's default)
  --chat-template FILE          a Jinja chat template used instead of the tokenizer's
  --no-batching                 one forward per sequence instead of one padded batch with a
                                LoRA adapter per row (needed for DoRA, IA3, AdaLoRA adapters)
  --allow-runtime-lora-updating enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter
  --device D                    cpu (default), cuda, cuda:N: where the model runs
  --max-memory D=SIZE,...       Accelerate's max_memory, e.g. 0=10GiB,cpu=4GiB: the model is
                                dispatched over the devices, the CPU and (with --offload-folder)
                                disk by transformers' "auto" rule
  --offload-folder DIR          where weights that do not fit go; they stream in layer by layer
  --grace S                     on SIGINT/SIGTERM, let running requests finish for up to S
                                seconds (default 10) before cancelling them; a second signal
                                stops at once
  -h, --help                    show this help

Exit status: 0 after a clean shutdown, 1 failed to start, 2 usage error, 130 second signal.`;

/** `0=10GiB,cpu=4GiB` → Accelerate's max_memory (GPU indices as numbers). */
function maxMemoryOf(spec: string): Record<string | number, string> {
  const out: Record<string | number, string> = {};
  for (const part of spec.split(",")) {
    const m = /^\s*([^=\s]+)\s*=\s*(\S+)\s*$/.exec(part);
    if (!m) throw new Error(`--max-memory takes DEVICE=SIZE pairs separated by commas (e.g. 0=10GiB,cpu=4GiB): got "${part}"`);
    out[/^\d+$/.test(m[1]!) ? Number(m[1]) : m[1]!] = m[2]!;
  }
  return out;
}

/** vLLM's `--lora-modules a=x b=y`: collect the values after the flag until the next flag. */
function spreadMultiValue(argv: string[], flags: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    out.push(a);
    if (!flags.includes(a)) continue;
    let j = i + 1;
    const vals: string[] = [];
    while (j < argv.length && !argv[j]!.startsWith("--")) vals.push(argv[j++]!);
    if (vals.length === 0) continue;
    out.push(vals[0]!);
    for (const v of vals.slice(1)) out.push(a, v);
    i = j - 1;
  }
  return out;
}

function loraModule(spec: string): [string, string] {
  if (spec.trimStart().startsWith("{")) {
    let j: { name?: unknown; path?: unknown };
    try {
      j = JSON.parse(spec);
    } catch {
      throw new Error(`--lora-modules: cannot parse ${JSON.stringify(spec)} as JSON`);
    }
    if (typeof j.name !== "string" || typeof j.path !== "string") {
      throw new Error(`--lora-modules: JSON form needs "name" and "path" strings: got ${spec}`);
    }
    return [j.name, j.path];
  }
  const eq = spec.indexOf("=");
  if (eq <= 0 || eq === spec.length - 1) throw new Error(`--lora-modules takes NAME=DIR: got "${spec}"`);
  return [spec.slice(0, eq), spec.slice(eq + 1)];
}

function int(v: string | undefined, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer >= ${min}: got "${v}"`);
  return n;
}

/** Run the CLI with `argv`; resolves with the exit code once the server has stopped. */
export async function main(argv: string[], options: { onListen?: (url: string) => void } = {}): Promise<number> {
  let opts: Parameters<typeof serve>[0];
  let graceMs: number;
  try {
    const { values } = parseArgs({
      args: spreadMultiValue(argv, ["--lora-modules", "--adapter"]),
      options: {
        model: { type: "string" },
        "lora-modules": { type: "string", multiple: true },
        adapter: { type: "string", multiple: true },
        "served-model-name": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "max-num-seqs": { type: "string" },
        "max-batch": { type: "string" },
        "max-waiting": { type: "string" },
        "max-model-len": { type: "string" },
        "kv-cache-dtype": { type: "string" },
        "allow-runtime-lora-updating": { type: "boolean" },
        "no-batching": { type: "boolean" },
        "chat-template": { type: "string" },
        "adapters-dir": { type: "string" },
        "max-adapters": { type: "string" },
        grace: { type: "string" },
        device: { type: "string" },
        "max-memory": { type: "string" },
        "offload-folder": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (!values.model) throw new Error("--model is required");
    const loras: Record<string, string> = {};
    for (const spec of [...(values["lora-modules"] ?? []), ...(values.adapter ?? [])]) {
      const [name, dir] = loraModule(spec);
      if (name in loras) throw new Error(`--lora-modules: adapter name "${name}" is given twice`);
      loras[name] = dir;
    }
    const grace = values.grace === undefined ? 10 : Number(values.grace);
    if (!(grace >= 0)) throw new Error(`--grace must be a number of seconds >= 0: got "${values.grace}"`);
    graceMs = grace * 1000;
    const maxNumSeqs = int(values["max-num-seqs"] ?? values["max-batch"], "max-num-seqs", 1);
    const maxWaiting = int(values["max-waiting"], "max-waiting", 1);
    const maxModelLen = int(values["max-model-len"], "max-model-len", 1);
    const maxAdapters = int(values["max-adapters"], "max-adapters", 1);
    opts = {
      model: values.model,
      loraModules: loras,
      hostname: values.host ?? "127.0.0.1",
      port: int(values.port, "port", 0) ?? 8000,
      allowRuntimeLoraUpdating: values["allow-runtime-lora-updating"] ?? false,
      batching: !values["no-batching"],
      ...(values["chat-template"] !== undefined ? { chatTemplate: readFileSync(values["chat-template"], "utf8") } : {}),
      ...(values["served-model-name"] !== undefined ? { servedModelName: values["served-model-name"] } : {}),
      ...(maxNumSeqs !== undefined ? { maxNumSeqs } : {}),
      ...(maxWaiting !== undefined ? { maxWaiting } : {}),
      ...(maxModelLen !== undefined ? { maxModelLen } : {}),
      ...(values["kv-cache-dtype"] !== undefined ? { kvCacheDtype: values["kv-cache-dtype"] as "f16" } : {}),
      ...(maxAdapters !== undefined ? { maxAdapters } : {}),
      ...(values["adapters-dir"] !== undefined ? { adaptersDir: values["adapters-dir"] } : {}),
      ...(values.device !== undefined ? { device: values.device } : {}),
      ...(values["max-memory"] !== undefined ? { maxMemory: maxMemoryOf(values["max-memory"]) } : {}),
      ...(values["offload-folder"] !== undefined ? { offloadFolder: values["offload-folder"] } : {}),
    };
  } catch (e) {
    console.error(`serve: ${(e as Error).message}; see --help`);
    return 2;
  }
  let server;
  try {
    server = await serve(opts);
  } catch (e) {
    console.error(`serve: cannot start: ${(e as Error).message}`);
    return 1;
  }
  const names = Object.keys(opts.loraModules ?? {});
  console.log(
    `Serving ${opts.servedModelName ?? opts.model}${
      names.length ? ` with adapters ${names.join(", ")}` : ""
    } on ${server.url} (Ctrl-C stops)`,
  );
  options.onListen?.(server.url);
  // The CLI owns signals: the first drains (running requests finish within --grace), a second exits.
  const stopped = new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = () => {
      if (signalled) process.exit(130);
      signalled = true;
      console.error(`serve: stopping (finishing running requests for up to ${graceMs / 1000} s; Ctrl-C again to quit now)`);
      server.close({ graceMs }).then(() => {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        resolve(0);
      }, (e) => {
        console.error(`serve: shutdown failed: ${(e as Error).message}`);
        resolve(1);
      });
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  return await stopped;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
