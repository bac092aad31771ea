// Where a merge may write: the output never overlaps an input, `force` replaces only a previous
// merge output (its marker file and nothing a merge does not write), and only partial folders this
// library made (name, marker, dead PID) are cleaned. Paths are compared as the kernel resolves
// them (symlinks first, then ".."), never by text. Private to lib/merge.
import { pidAlive } from "../_process.ts";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import process from "node:process";
import { basename, dirname, isAbsolute, join, relative, sep } from "node:path";
import { MergeOptionsError } from "./errors.ts";

/** The marker file inside a partial output folder: `{ "pid": …, "id": … }`. */
export const PARTIAL_MARKER = ".graft-merge-partial";

/** The marker file of a finished merge output: what `force` may replace. */
export const OUTPUT_MARKER = ".graft-merge";

/** Side files a merge copies from the base folder (and so may replace under `force`). */
export const SIDE_FILES: readonly string[] = [
  "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
  "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
  "preprocessor_config.json",
];

const OUTPUT_FILE_RE = /^model(-\d{5}-of-\d{5})?\.safetensors$|^model\.safetensors\.index\.json$/;

/**
 * Real path of `p` as the kernel resolves it, whatever the runtime: component by component, a
 * symlink is followed before a following ".." (so `lnk/../x` is `x` beside the link's target, not
 * beside the link — Bun's `realpath` normalises ".." as text first), and the part that does not
 * exist yet is appended. No textual normalisation of the given path.
 */
export function realPathOf(p: string): string {
  const parts = (isAbsolute(p) ? p : `${process.cwd()}${sep}${p}`).split(sep).filter((c) => c !== "" && c !== ".");
  let cur: string = sep;
  let hops = 0;
  while (parts.length > 0) {
    const c = parts.shift()!;
    if (c === "..") {
      cur = dirname(cur);
      continue;
    }
    const next = join(cur, c);
    let st;
    try {
      st = lstatSync(next);
    } catch {
      // Missing from here on: nothing to follow, the rest is plain text.
      return join(next, ...parts);
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) return join(next, ...parts); // a loop: the kernel would refuse it too (ELOOP)
      const target = readlinkSync(next);
      parts.unshift(...target.split(sep).filter((t) => t !== "" && t !== "."));
      if (isAbsolute(target)) cur = sep;
      continue;
    }
    cur = next;
  }
  return cur;
}

function within(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * Refuse an output (`real`: its {@link realPathOf}) that equals, contains or lies inside an input
 * (a folder or file given, or any file the merge reads), compared after resolving symlinks.
 */
export function checkOutputApart(
  out: { shown: string; real: string },
  inputs: readonly { flag: string; path: string; files: readonly string[] }[],
): void {
  const o = out.real;
  for (const input of inputs) {
    for (const p of [input.path, ...input.files]) {
      const r = realPathOf(p);
      let how: string | null = null;
      if (o === r) how = "is";
      else if (within(o, r)) how = "lies inside";
      else if (within(r, o)) how = "contains";
      if (how === null) continue;
      const what = p === input.path ? `${input.flag} "${input.path}"` : `"${p}", read from ${input.flag} "${input.path}"`;
      throw new MergeOptionsError("out", `Cannot write the merge to "${out.shown}": it ${how} ${what}; the inputs are never replaced: choose an --out outside every input`);
    }
  }
}

/**
 * Check that an existing `out` (shown as `shown`) may be replaced under `force`: a previous merge
 * output, i.e. a folder with this library's output marker holding only files a merge writes
 * (shards, index, side files). Anything else — another model folder included — is refused,
 * whatever `force` says.
 */
export function checkReplaceable(out: string, shown: string = out): void {
  const st = lstatSync(out);
  if (!statSync(out).isDirectory()) {
    throw new MergeOptionsError("out", `Cannot replace "${shown}": it is a ${st.isSymbolicLink() ? "link to a file" : "file"}, not a previous merge output; choose another --out`);
  }
  const names = readdirSync(out);
  if (!names.includes(OUTPUT_MARKER) || !lstatSync(join(out, OUTPUT_MARKER)).isFile()) {
    throw new MergeOptionsError(
      "out",
      `Cannot replace "${shown}": it has no ${OUTPUT_MARKER} marker, so it is not a previous merge output; --force replaces only those: remove the folder yourself or choose another --out`,
    );
  }
  const foreign = names.find((n) => n !== OUTPUT_MARKER && (!(OUTPUT_FILE_RE.test(n) || SIDE_FILES.includes(n)) || !lstatSync(join(out, n)).isFile()));
  if (foreign !== undefined) {
    throw new MergeOptionsError(
      "out",
      `Cannot replace "${shown}": it holds "${foreign}", which a merge does not write; --force replaces only a previous merge output: remove the folder yourself or choose another --out`,
    );
  }
}

/** Write the output marker into a finished partial folder (replacing its partial marker). */
export function markOutput(dir: string, info: Record<string, unknown>): void {
  writeFileSync(join(dir, OUTPUT_MARKER), JSON.stringify({ graft: "merge", ...info }, null, 2) + "\n");
  rmSync(join(dir, PARTIAL_MARKER), { force: true });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A new partial folder name for `out` (`OUT.partial-<pid>-<id>`) and its marker's content. */
export function partialPathFor(out: string): { path: string; marker: string } {
  const id = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, "0")}`;
  return { path: `${out}.partial-${process.pid}-${id}`, marker: JSON.stringify({ pid: process.pid, id }) + "\n" };
}

/** Write the marker that lets a later run recognise `dir` as a partial folder of this library. */
export function markPartial(dir: string, marker: string): void {
  writeFileSync(join(dir, PARTIAL_MARKER), marker);
}

/**
 * Remove `OUT.partial-<pid>-<id>` folders left by runs that are no longer alive: only folders
 * whose name has exactly that form and whose marker file names the same PID and id.
 */
export function cleanStalePartials(out: string): string[] {
  const parent = dirname(out);
  if (!existsSync(parent)) return [];
  const re = new RegExp(`^${escapeRe(basename(out))}\\.partial-(\\d{1,10})-([0-9a-z]{1,32})$`);
  const removed: string[] = [];
  for (const n of readdirSync(parent)) {
    const m = re.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const dir = join(parent, n);
    let marker: { pid?: unknown; id?: unknown };
    try {
      if (!lstatSync(dir).isDirectory()) continue;
      marker = JSON.parse(readFileSync(join(dir, PARTIAL_MARKER), "utf8"));
    } catch {
      continue;
    }
    if (marker?.pid !== pid || marker.id !== m[2]) continue;
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}
