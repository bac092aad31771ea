import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BatchStreamDecoder, StreamDecoder, Tokenizer, tokenizersAvailable } from "../../lib/tokenizer/mod.ts";

const FIX = join(fileURLToPath(new URL(".", import.meta.url)), "..", "fixtures");
// Byte-level BPE (Llama 3 style) and SentencePiece with byte fallback (Llama 2 style).
const TOKENIZERS = { "byte-level BPE": join(FIX, "gguf", "llama3", "base"), "SentencePiece": join(FIX, "gguf", "llama", "base") };
const TEXTS = ["Hello 世界! 🙂 café 日本語", "  two  spaces and\nnew line 👩‍👩‍👧 end", "🙂🙂🙂x", "語"];
const skip = (await tokenizersAvailable()) ? false : "@huggingface/tokenizers is not installed (run `bun install`)";

describe("StreamDecoder", { skip }, () => {
  for (const [kind, dir] of Object.entries(TOKENIZERS)) {
    it(`${kind}: chunks join to decode(ids), never cut a character, keep word spaces`, async () => {
      const tok = await Tokenizer.fromFile(dir);
      for (const text of TEXTS) {
        const ids = tok.encode(text, { addSpecialTokens: false });
        const full = tok.decode(ids);
        assert.equal(full, text, "the fixture tokenizer round-trips the text");
        const s = new StreamDecoder((x) => tok.decode(x));
        const chunks = ids.map((id) => s.push(id));
        chunks.push(s.flush());
        assert.equal(chunks.join(""), full, text);
        for (const c of chunks) {
          assert.ok(!c.includes("\uFFFD"), `chunk ${JSON.stringify(c)} holds a replacement character`);
          assert.ok(!/[\uD800-\uDBFF]$|^[\uDC00-\uDFFF]/.test(c), `chunk ${JSON.stringify(c)} splits a surrogate pair`);
        }
        if ([...text].length > 3) assert.ok(chunks.filter((c) => c !== "").length > 1, "text arrives in several chunks");
        // The multi-byte characters really are split over several tokens here.
        assert.ok(ids.length > [...text].length / 2);
      }
    });
  }

  it("an incomplete character at the end is flushed as decode gives it", async () => {
    const tok = await Tokenizer.fromFile(TOKENIZERS["byte-level BPE"]);
    const ids = tok.encode("a🙂", { addSpecialTokens: false });
    const cut = ids.slice(0, -1);
    const s = new StreamDecoder((x) => tok.decode(x));
    const streamed = cut.map((id) => s.push(id)).join("");
    assert.ok(!streamed.includes("\uFFFD"));
    assert.equal(streamed + s.flush(), tok.decode(cut));
  });

  it("Tokenizer.createStreamDecoder streams the same text per row through BatchStreamDecoder", async () => {
    const tok = await Tokenizer.fromFile(TOKENIZERS.SentencePiece);
    const rows = ["日本語 🙂 ok", "plain words here"].map((t) => tok.encode(t, { addSpecialTokens: false }));
    const batch = new BatchStreamDecoder((x) => tok.decode(x));
    const single = rows.map(() => tok.createStreamDecoder());
    const viaSingle = ["", ""];
    for (let step = 0; step < Math.max(...rows.map((r) => r.length)); step++) {
      rows.forEach((r, i) => {
        if (step < r.length) {
          batch.push(r[step]!, i);
          viaSingle[i] += single[i]!(r[step]!);
        }
      });
    }
    batch.flush();
    assert.deepEqual(batch.texts, rows.map((r) => tok.decode(r)));
    assert.deepEqual(viaSingle, batch.texts);
    assert.throws(() => batch.push(1, -1), /row must be a non-negative integer/);
  });
});
