// Incremental detokenization with stop strings, and request checking.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { TextStream } from "../../lib/serve/_text.ts";
import { OpenAIError, parseChatRequest, parseCompletionRequest } from "../../lib/serve/mod.ts";

const VOCAB = ["Hel", "lo", " wor", "ld", "!", "\uFFFD", "w", "or"];
const decode = (ids: readonly number[]) => ids.map((i) => VOCAB[i]).join("");

describe("TextStream", () => {
  it("releases text as it comes without stop strings", () => {
    const s = new TextStream(decode);
    assert.deepEqual([0, 1, 2].map((i) => s.push(i).text), ["Hel", "lo", " wor"]);
    assert.equal(s.flush(), "");
  });

  it("holds back a possible stop string's prefix and cuts before the stop string", () => {
    const s = new TextStream(decode, ["world"]);
    assert.deepEqual(s.push(0), { text: "Hel", stopped: false });
    assert.deepEqual(s.push(1), { text: "lo", stopped: false });
    assert.deepEqual(s.push(2), { text: " ", stopped: false }); // "wor" may start "world"
    assert.deepEqual(s.push(3), { text: "", stopped: true });
    assert.equal(s.text, "Hello ");
    assert.deepEqual(s.push(4), { text: "", stopped: true });
  });

  it("releases a held-back prefix that does not become a stop string", () => {
    const s = new TextStream(decode, ["world"]);
    s.push(0);
    assert.equal(s.push(2).text, " ");
    assert.equal(s.push(4).text, "wor!");
    s.push(6);
    assert.equal(s.flush(), "w");
    assert.equal(s.text, "Hel wor!w");
  });

  it("picks the earliest of several stop strings, spanning tokens", () => {
    const s = new TextStream(decode, ["d!", "o w"]);
    s.push(0);
    s.push(1);
    assert.deepEqual(s.push(2), { text: "", stopped: true });
    assert.equal(s.text, "Hell");
  });

  it("holds back an incomplete character", () => {
    const s = new TextStream(decode);
    assert.equal(s.push(0).text, "Hel");
    assert.equal(s.push(5).text, "");
    assert.equal(s.flush(), "\uFFFD");
  });
});

describe("parseCompletionRequest() / parseChatRequest()", () => {
  it("defaults as OpenAI does and reads every supported field", () => {
    const r = parseCompletionRequest({
      model: "m",
      prompt: ["a", [1, 2]],
      stop: "x",
      seed: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(r.maxTokens, 16);
    assert.equal(r.temperature, 1);
    assert.equal(r.topP, 1);
    assert.deepEqual(r.prompts, ["a", [1, 2]]);
    assert.deepEqual(r.stop, ["x"]);
    assert.equal(r.seed, 3);
    assert.equal(r.includeUsage, true);
    assert.equal(
      parseChatRequest({ model: "m", messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }], max_completion_tokens: 5 })
        .maxTokens,
      5,
    );
  });

  it("refuses bad fields with a 400 naming the field", () => {
    const cases: [unknown, string | null][] = [
      [[], null],
      [{ prompt: "x" }, "model"],
      [{ model: "m", prompt: 3 }, "prompt"],
      [{ model: "m", prompt: "x", temperature: -1 }, "temperature"],
      [{ model: "m", prompt: "x", top_p: 0 }, "top_p"],
      [{ model: "m", prompt: "x", max_tokens: 0 }, "max_tokens"],
      [{ model: "m", prompt: "x", n: 1.5 }, "n"],
      [{ model: "m", prompt: "x", stop: [1] }, "stop"],
      [{ model: "m", prompt: "x", logprobs: 2 }, "logprobs"],
      [{ model: "m", prompt: "x", stream: "yes" }, "stream"],
    ];
    for (const [body, param] of cases) {
      assert.throws(
        () => parseCompletionRequest(body),
        (e: unknown) => e instanceof OpenAIError && e.status === 400 && e.param === param,
        JSON.stringify(body),
      );
    }
    assert.throws(() => parseChatRequest({ model: "m", messages: [{ role: "user", content: [{ type: "image_url" }] }] }), { status: 400 });
  });
});
