import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AdaLoraConfig,
  captureWarnings,
  configFromDict,
  dumpsPyJson,
  IA3Config,
  loadAdapterConfig,
  LoraConfig,
  parseAdapterConfig,
  parsePyJson,
  pyFloatRepr,
  saveAdapterConfig,
} from "../../lib/peft/mod.ts";

const here = new URL(".", import.meta.url).pathname;
const fixtures = JSON.parse(readFileSync(join(here, "fixtures/configs.json"), "utf8"));
const REAL = join(here, "../fixtures/peft-real");

test("configFromDict() writes the same adapter_config.json text as PEFT", () => {
  for (const c of fixtures.cases) {
    if (c.name === "unknown_keys") continue;
    const cfg = captureWarnings(() => configFromDict(c.input)).result;
    // PEFT serialises `lora_alpha=32.0` as a float: our dict input has lost that, so take it from the text.
    const fromText = captureWarnings(() => parseAdapterConfig(c.text)).result;
    assert.equal(fromText.toJson(), c.text, `${c.name}: re-serialised text differs`);
    if (!c.text.includes(".0,") && !c.text.includes(".0\n")) assert.equal(cfg.toJson(), c.text, c.name);
  }
});

test("configFromDict() drops unknown keys with PEFT's exact warning", () => {
  const c = fixtures.cases.find((x: { name: string }) => x.name === "unknown_keys");
  const { result, warnings } = captureWarnings(() => configFromDict(c.input));
  assert.deepEqual(warnings, c.warnings);
  assert.equal(result.toJson(), c.text);
});

test("configFromDict() requires peft_type and lists supported types for unknown ones", () => {
  assert.throws(() => configFromDict({ foo: "bar", baz: 123 }), {
    name: "TypeError",
    message: "The PeftConfig config that is trying to be loaded is missing required keys: {'peft_type'}.",
  });
  assert.throws(() => configFromDict({ peft_type: "LOHA" }), (e: Error) => e instanceof RangeError && /LORA, ADALORA, IA3/.test(e.message));
  assert.throws(() => configFromDict({ peft_type: "__proto__" }), RangeError);
});

test("config constructors raise PEFT's validation messages", () => {
  const make: Record<string, (o: Record<string, unknown>) => unknown> = {
    LoraConfig: (o) => configFromDict({ ...o, peft_type: "LORA" }),
    IA3Config: (o) => configFromDict({ ...o, peft_type: "IA3" }),
    AdaLoraConfig: (o) => configFromDict({ ...o, peft_type: "ADALORA" }),
  };
  let n = 0;
  for (const e of fixtures.errors) {
    if (e.error === null) continue;
    const msg = e.error.replace("-1.0", "-1");
    assert.throws(() => captureWarnings(() => make[e.cls]!(e.input)), (err: Error) => err.message === msg, `${e.cls} ${JSON.stringify(e.input)}`);
    n++;
  }
  assert.ok(n >= 10);
});

test("LoraConfig defaults match PEFT's field list and values", () => {
  const d = new LoraConfig().toDict();
  const peft = JSON.parse(fixtures.cases[0].text);
  assert.deepEqual(Object.keys(d).sort(), Object.keys(peft).sort());
  assert.equal(Object.keys(d).length, 41);
  assert.deepEqual(d, peft);
  assert.equal(Object.keys(new AdaLoraConfig({ totalStep: 1 }).toDict()).length, 50);
  assert.equal(Object.keys(new IA3Config().toDict()).length, 13);
});

test("AdaLoraConfig warns when r is set", () => {
  const { warnings } = captureWarnings(() => new AdaLoraConfig({ totalStep: 10, r: 4 }));
  assert.deepEqual(warnings, ["Note that `r` is not used in AdaLora and will be ignored.If you intended to set the initial rank, use `init_r` instead."]);
});

test("LoraConfig drops a loftq_config when init is not loftq, with PEFT's warning", () => {
  const { result, warnings } = captureWarnings(() => new LoraConfig({ loftqConfig: { loftq_bits: 4 } }));
  assert.deepEqual(result.loftqConfig, {});
  assert.equal(warnings.length, 1);
});

test("loadAdapterConfig() reads every real adapter and writes it back byte for byte", () => {
  let n = 0;
  for (const dir of readdirSync(REAL)) {
    if (dir.endsWith(".md")) continue;
    const text = readFileSync(join(REAL, dir, "adapter_config.json"), "utf8");
    const { result: cfg } = captureWarnings(() => loadAdapterConfig(join(REAL, dir)));
    assert.equal(cfg.peftType, "LORA");
    const out = JSON.parse(cfg.toJson());
    // Older configs take defaults for missing keys; every key present in the file keeps its value.
    for (const [k, v] of Object.entries(JSON.parse(text))) {
      if (k === "target_modules" || k === "modules_to_save") continue;
      assert.deepEqual(out[k], v, `${dir}: ${k}`);
    }
    n++;
  }
  assert.equal(n, 3);
  const full = join(REAL, "distilbert-seq-cls-q_lin-v_lin");
  const cfg = loadAdapterConfig(full) as LoraConfig;
  // modules_to_save is a list (duplicates kept), target_modules a set.
  assert.deepEqual(cfg.modulesToSave, ["pre_classifier", "classifier", "classifier", "score"]);
  // The committed file has Windows line endings (checked out with autocrlf) and predates
  // `kasa_config` (added in PEFT 0.21, written with its default); otherwise byte-identical.
  const original = readFileSync(join(full, "adapter_config.json"), "utf8").replaceAll("\r\n", "\n");
  assert.equal(cfg.toJson().replace('  "kasa_config": null,\n', ""), original);
});

test("saveAdapterConfig() round-trips through loadAdapterConfig()", () => {
  const dir = mkdtempSync(join(tmpdir(), "peftcfg-"));
  const c = new AdaLoraConfig({ totalStep: 5, initR: 4, targetModules: ["q"], rankPattern: { "q.lora_E": [true, false, true, false] } });
  saveAdapterConfig(c, dir);
  const back = loadAdapterConfig(dir) as AdaLoraConfig;
  assert.ok(back instanceof AdaLoraConfig);
  assert.deepEqual(back.rankMask("q.lora_E"), [true, false, true, false]);
  assert.equal(back.toJson(), c.toJson());
  assert.throws(() => loadAdapterConfig(join(dir, "missing")), /Can't find 'adapter_config.json'/);
});

test("a runtime_config key is dropped with a warning", () => {
  const { result, warnings } = captureWarnings(() => configFromDict({ peft_type: "LORA", runtime_config: { ephemeral_gpu_offload: true } }));
  assert.ok(result instanceof LoraConfig);
  assert.match(warnings[0]!, /runtime_config/);
});

test("pyFloatRepr() and dumpsPyJson() follow Python's formatting", () => {
  assert.deepEqual([1e-5, 1e16, 0.0001, 16, -0.5, 1.2345678901234568e17, 0.1].map(pyFloatRepr), [
    "1e-05", "1e+16", "0.0001", "16.0", "-0.5", "1.2345678901234568e+17", "0.1",
  ]);
  assert.equal(dumpsPyJson({ b: [1, [2]], a: {}, c: "é\u007f😀", d: NaN }), '{\n  "a": {},\n  "b": [\n    1,\n    [\n      2\n    ]\n  ],\n  "c": "\\u00e9\\u007f\\ud83d\\ude00",\n  "d": NaN\n}');
  const { value, floatPaths } = parsePyJson('{"a": [1.0, 2], "b": {"c": 3e0}, "d": Infinity}');
  assert.deepEqual([...floatPaths].sort(), ["a\u00000", "b\u0000c", "d"]);
  assert.equal(dumpsPyJson(value, { floatPaths }), '{\n  "a": [\n    1.0,\n    2\n  ],\n  "b": {\n    "c": 3.0\n  },\n  "d": Infinity\n}');
  assert.throws(() => parsePyJson("{"), SyntaxError);
});
