// Graft as a package under Bun (which cannot import from URLs): `npm pack` the checkout, `bun add`
// the tarball into a temporary project, and run a script that imports "graft" and
// "graft/safetensors", round-trips a safetensors file and casts through the native kernels, which
// it finds in the suite's cache by source hash (nothing rebuilds).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { isBun } from "../../lib/_env.ts";
import { kernelCacheRoot } from "../../lib/backends/_kernel_build.ts";
import { ensureKernels } from "../../lib/backends/_kernel_cpu.ts";
import { tempDir } from "../_util.ts";
import { ROOT } from "./_serve.ts";

const skip = isBun ? false : "installs the package with `bun add` and runs it under Bun; Deno imports by URL instead (tests/url/url_import_test.ts)";

const SCRIPT = `import { getCpuBackend, nativeKernelPath, Tensor } from "graft";
import { SafetensorsFile, saveFile } from "graft/safetensors";
const path = process.argv[2] + "/a.safetensors";
saveFile({ w: Tensor.fromArray([1, -2, 3.5]) }, path);
const f = SafetensorsFile.open(path);
const values = f.tensor("w").toArray();
f[Symbol.dispose]();
const be = getCpuBackend();
const bf16 = new Uint8Array(4);
be.cast({ src: new Uint8Array(new Float32Array([1, -2]).buffer), srcDtype: "F32", dst: bf16, dstDtype: "BF16", n: 2 });
console.log(JSON.stringify({ backend: be.name, lib: nativeKernelPath(), values, bf16: Array.from(new Uint16Array(bf16.buffer)) }));
`;

function sh(cmd: string, args: string[], cwd: string, env: Record<string, string | undefined> = process.env): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed (${r.error?.message ?? `status ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe("graft as a package (Bun)", () => {
  it("`bun add` of an `npm pack` tarball, then `import … from \"graft\"` runs on the cached native kernels", { skip }, async () => {
    const lib = await ensureKernels({ quiet: true });
    using tmp = tempDir("graft-pkg-");
    const pack = join(tmp.dir, "pack");
    const proj = join(tmp.dir, "proj");
    mkdirSync(pack);
    mkdirSync(proj);
    sh("npm", ["pack", "--silent", "--pack-destination", pack], ROOT);
    const tarball = readdirSync(pack).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote no tarball");
    writeFileSync(join(proj, "package.json"), JSON.stringify({ name: "graft-consumer", private: true, type: "module" }));
    sh(process.execPath, ["add", join(pack, tarball)], proj);
    const installed = join(proj, "node_modules", "graft");
    assert.ok(existsSync(join(installed, "kernels", "cpu", "gemm.c")), "the package ships kernels/");
    assert.ok(!existsSync(join(installed, "tests")), "the package leaves tests/ out");
    writeFileSync(join(proj, "main.ts"), SCRIPT);
    const env: Record<string, string | undefined> = { ...process.env, GRAFT_CACHE_DIR: kernelCacheRoot() };
    delete env.GRAFT_KERNEL_LIB;
    delete env.GRAFT_BACKEND;
    const out = JSON.parse(sh(process.execPath, ["main.ts", tmp.dir], proj, env));
    assert.deepEqual(out.values, [1, -2, 3.5]);
    assert.deepEqual(out.bf16, [16256, 49152]);
    if (lib !== null) assert.deepEqual([out.backend, out.lib], ["native", lib]);
  });
});
