/**
 * The mock device's kernels: the contract over {@link MockMemory}, computed by the TypeScript host
 * kernels on the memory's bytes, counting each op. Operands are checked by `CheckedKernels` with
 * the device's own size rule (a handle's byte length).
 * @module
 */
import { CheckedKernels, CpuTsBackend, type KernelOps, type OperandSizes } from "../../../lib/backends/mod.ts";
import type { MockMemory } from "./memory.ts";

const F32 = 4;
const SIZE = { F32: 4, F16: 2, BF16: 2 } as const;

function need(op: string, name: string, x: MockMemory, bytes: number): void {
  if (x.byteLength < bytes) throw new RangeError(`Cannot run ${op}: ${name} has ${x.byteLength} bytes but ${bytes} are needed`);
}

const count = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);

/** Size checks of the mock device: a handle holds as many bytes as it says. */
const MOCK_SIZES: OperandSizes<MockMemory, MockMemory> = {
  f32: (op, name, x, dims) => need(op, name, x, count(dims) * F32),
  raw: (op, name, x, dims, dtype) => need(op, name, x, count(dims) * SIZE[dtype]),
};

/** Each field of an argument object that is device memory, as the host form the TS kernels take. */
function hostArgs(a: object, raw: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) {
    out[k] = v !== null && typeof v === "object" && "f32" in v ? (raw.has(k) ? (v as MockMemory).bytes() : (v as MockMemory).f32()) : v;
  }
  return out;
}

/** The raw (dtype-carrying) operands of each op; every other memory operand is f32. */
const RAW: Readonly<Record<string, ReadonlySet<string>>> = {
  cast: new Set(["src", "dst"]),
  loraMerge: new Set(["w"]),
  doraMerge: new Set(["w"]),
  scaleAxis: new Set(["w"]),
  linear: new Set(["w"]),
  linearQ8_0: new Set(["w"]),
};
const NONE: ReadonlySet<string> = new Set();
/** Attention over an f16 KV cache: k and v are raw F16 bits. */
const KV_RAW: ReadonlySet<string> = new Set(["k", "v"]);

/**
 * Kernels of a mock device.
 *
 * @example
 * ```ts
 * import { MockKernels } from "./kernels.ts";
 * import { MockMemory } from "./memory.ts";
 * const k = new MockKernels();
 * const x = new MockMemory(new Uint8Array(new Float32Array([-1, 2]).buffer));
 * k.unary({ op: "relu", x, out: x, n: 2 });
 * console.log(Array.from(x.f32()), k.calls.get("unary")); // [0, 2] 1
 * ```
 */
export class MockKernels extends CheckedKernels<MockMemory, MockMemory> {
  readonly name = "mock";
  readonly info = "mock device: TypeScript kernels over host memory behind device handles";
  /** How many times each op ran. */
  readonly calls = new Map<string, number>();
  protected readonly sizes = MOCK_SIZES;
  protected readonly run: KernelOps<MockMemory, MockMemory>;

  constructor() {
    super();
    const ts = new CpuTsBackend() as unknown as Record<string, (a: unknown) => void>;
    const run: Record<string, (a: object) => void> = {};
    for (const op of Object.keys(RAW).concat(["gemm", "rmsNorm", "layerNorm", "softmax", "unary", "binary", "scale", "rope", "attention", "rmsNormBackward", "softmaxBackward"])) {
      run[op] = (a) => {
        this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
        const raw = op === "attention" && (a as { kvDtype?: string }).kvDtype === "F16" ? KV_RAW : RAW[op] ?? NONE;
        ts[op]!(hostArgs(a, raw));
      };
    }
    this.run = run as unknown as KernelOps<MockMemory, MockMemory>;
  }
}
