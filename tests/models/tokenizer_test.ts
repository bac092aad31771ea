import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer, tokenizersAvailable } from "../../lib/tokenizer/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { FIXTURES } from "./_fixtures.ts";

const dir = join(FIXTURES, "llama");
interface Sample {
  text: string;
  ids: number[];
  tokens: string[];
  ids_no_special: number[];
  decoded: string;
  decoded_keep_special: string;
}
const expected = JSON.parse(readFileSync(join(dir, "tokenizer_expected.json"), "utf8")) as { vocab_size: number; samples: Sample[] };

// Bun's test runner does not auto-install packages: without `bun install` the package is absent.
const skip = (await tokenizersAvailable()) ? false : "@huggingface/tokenizers is not installed (run `bun install`)";

describe("Tokenizer (tokenizer.json via @huggingface/tokenizers)", () => {
  it("encodes and decodes exactly as the Python tokenizers library", { skip }, async () => {
    const tok = await Tokenizer.fromFile(dir);
    assert.equal(tok.vocabSize, expected.vocab_size);
    for (const s of expected.samples) {
      assert.deepEqual(tok.encode(s.text), s.ids, s.text);
      assert.deepEqual(tok.encode(s.text, { addSpecialTokens: false }), s.ids_no_special, s.text);
      assert.deepEqual(tok.tokenize(s.text), s.tokens.filter((t) => t !== "<s>"), s.text);
      assert.equal(tok.decode(s.ids), s.decoded, s.text);
      assert.equal(tok.decode(s.ids, { skipSpecialTokens: false }), s.decoded_keep_special, s.text);
    }
    assert.equal(tok.eosTokenId, 2);
    assert.equal(tok.idToToken(1), "<s>");
  });

  it("goes from a prompt string to text with a streaming decoder", { skip }, async () => {
    const tok = await Tokenizer.fromFile(join(dir, "tokenizer.json"));
    using model = LlamaForCausalLM.fromPretrained(dir);
    const ids = tok.encode("Hello world");
    const stream = tok.createStreamDecoder();
    let streamed = "";
    // The tokenizer's vocabulary (141) is smaller than the model's (256): map ids into it for the test.
    const out = generate(model, ids, { maxNewTokens: 6, stopTokens: [], onToken: (t) => void (streamed += stream(t % tok.vocabSize)) });
    const text = tok.decode(out.newTokens[0]!.map((t) => t % tok.vocabSize));
    assert.equal(streamed, text);
  });

  it("a missing file is named", async () => {
    await assert.rejects(Tokenizer.fromFile(join(dir, "nope.json")), /Cannot read tokenizer ".*nope\.json": no such file/);
  });
});
