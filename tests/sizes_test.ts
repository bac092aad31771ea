// The one size parser (lib/_sizes.ts) against Accelerate's convert_file_size_to_int: every expected
// value below is what accelerate 1.x returned for the same input (ValueError/OverflowError → throws).
import { test } from "node:test";
import assert from "node:assert/strict";
import { convertFileSizeToInt } from "../lib/_sizes.ts";
import { convertFileSizeToInt as fromBigModeling } from "../lib/big_modeling/mod.ts";
import { parseSize } from "../lib/merge/mod.ts";

const ACCELERATE: [string | number, number][] = [
  ["0MB", 0],
  ["100MB", 100000000],
  ["2GiB", 2147483648],
  ["512KiB", 524288],
  ["1.5GB", 1500000000],
  ["5Gb", 625000000],
  ["5gb", 625000000],
  ["5gB", 5000000000],
  ["5GIB", 5368709120],
  ["5gib", 5368709120],
  ["2Gib", 2147483648],
  ["1_000MB", 1000000000],
  [" 5GB", 5000000000],
  ["5 GB", 5000000000],
  ["+5KB", 5000],
  [".5GB", 500000000],
  ["5.GB", 5000000000],
  ["1e3MB", 1000000000],
  ["1E-3GB", 1000000],
  ["-0.0001KB", 0],
  ["1.5KiB", 1536],
  ["3kb", 375],
  ["7Kb", 875],
  ["9.99999999MB", 9999999],
  ["12345678901.5KB", 12345678901500],
  [500, 500],
  [0, 0],
];

const SYNTAX: (string | number)[] = [
  "5GB ", "5MBB", "5k0MB", "MB", "five", "1000", "1000B", "5TB", "5TiB", "nanGB", "infGB", "1__0MB", "_10MB", "10_MB", "0x10MB", 1.5, NaN,
];

test("convertFileSizeToInt() returns what Accelerate returns", () => {
  for (const [input, want] of ACCELERATE) {
    assert.equal(convertFileSizeToInt(input), want, JSON.stringify(input));
    assert.ok(!Object.is(convertFileSizeToInt(input), -0), "no negative zero");
  }
});

test("convertFileSizeToInt() refuses what Accelerate refuses: SyntaxError, or RangeError when negative", () => {
  for (const bad of SYNTAX) assert.throws(() => convertFileSizeToInt(bad), SyntaxError, String(bad));
  for (const neg of ["-1GB", -1]) assert.throws(() => convertFileSizeToInt(neg), { name: "RangeError", message: `Cannot use size ${JSON.stringify(neg)}: a size must not be negative` });
  assert.throws(() => convertFileSizeToInt("lots"), { message: 'Cannot parse size "lots": use an integer number of bytes or a number with a unit such as "5.0GB", "2GiB" or "512KB"' });
});

test("parseSize (lib/merge) and convertFileSizeToInt (lib/big_modeling) are the one parser", () => {
  assert.equal(parseSize, convertFileSizeToInt);
  assert.equal(fromBigModeling, convertFileSizeToInt);
});
