#!/usr/bin/env bash
# gpu_check.sh: everything the CUDA backend needs checked on a machine with an NVIDIA GPU, in one
# command (about 3-5 minutes on an H100):
#   1. build libkn_cpu.so and libkn_cuda.so there (scripts/build_kernels.ts --cuda);
#   2. the CUDA test suite (tests/cuda: no-GPU paths skip, GPU tests run; Deno, and Bun when found);
#   3. the CUDA-vs-CPU parity table for every kernel (fresh seed, NaN-poisoned outputs, bounds per dtype);
#   4. benchmarks: greedy decode of a TinyLlama-shaped model on the GPU and with CPU offload against
#      PyTorch + transformers + Accelerate; GEMM TFLOP/s against PyTorch; merge of a Llama-7B-shaped
#      checkpoint (CLI --device cpu/cuda, and the kernels streamed through the GPU with double buffering).
#
# Usage (GPU machine):   bash scripts/gpu_check.sh [--quick] [--layers N] [--no-bench]
#   --quick      tests and the small parity table only (about 1-2 minutes)
#   --layers N   layers of the 7B-shaped checkpoint for the merge benchmark (default 8 of 32)
#   --no-bench   tests and parity only
#   --bench L    only these benchmarks, comma-separated: decode,gemm,merge (default all three)
#   --mock       no GPU: run the whole flow on a host-memory libcudart and the grid-emulated kernels
#                (checks this script and the TypeScript layer; small sizes; its figures mean nothing)
# Usage (here, before):  bash scripts/gpu_check.sh --pack [deno|bun]
#   packs a runtime binary (default Deno) into .cache/gpu_tools/ for a GPU machine without network;
#   carry .cache/gpu_tools there (Deno is about 30 MB; both exceed a 64 MiB carry limit).
# Environment: DENO / BUN (runtime binaries), PYTHON (with torch, default python3), GRAFT_CUBLAS,
#   OUT (a folder for gpu_check.log; default .cache/gpu_check).
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
BUN_VERSION=1.4.4
TOOLS=.cache/gpu_tools
LAYERS=8
QUICK=0
BENCH=1
BENCHES=decode,gemm,merge
MOCK=0

log() { echo "gpu_check: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --pack)
      what=${2:-deno}
      [ $# -ge 2 ] && shift
      mkdir -p "$TOOLS"
      command -v xz >/dev/null || die "xz is needed to pack the runtimes"
      case "$what" in
        deno) bin=$(npx -y "deno@${DENO_VERSION}" eval 'console.log(Deno.execPath())') || die "cannot fetch deno@${DENO_VERSION} with npx" ;;
        bun) bin=$(npx -y "bun@${BUN_VERSION}" -e 'console.log(process.execPath)') || die "cannot fetch bun@${BUN_VERSION} with npx" ;;
        *) die "--pack takes deno or bun: got \"$what\"" ;;
      esac
      xz -T0 -6 -c "$bin" >"$TOOLS/$what.xz"
      if [ "$what" = deno ]; then # npm dependencies (the tokenizer's) for a machine without network
        DENO_DIR="$TOOLS/deno_dir" "$bin" cache scripts/merge.ts scripts/bench/gpu_*.ts tests/cuda/*_test.ts >&2 || die "deno cache failed"
        rm -rf "$TOOLS/deno_dir"/{check_cache,dep_analysis_cache,fast_check_cache,node_analysis_cache}* 2>/dev/null || true
      fi
      du -sh "$TOOLS" >&2
      [ "$(du -sm "$TOOLS" | cut -f1)" -lt 56 ] || log "warning: $TOOLS is over 56 MB: with the working tree it may exceed a 64 MiB carry limit"
      log "packed $what: carry $TOOLS to the GPU machine and run: bash scripts/gpu_check.sh"
      exit 0
      ;;
    --mock) MOCK=1 ;;
    --quick) QUICK=1 ;;
    --no-bench) BENCH=0 ;;
    --bench)
      shift
      BENCHES=${1:?--bench needs a list, e.g. decode,gemm}
      ;;
    --layers)
      shift
      LAYERS=${1:?--layers needs a number}
      ;;
    -h | --help)
      sed -n '2,/^set -e/{/^set -e/!p}' "$0"
      exit 0
      ;;
    *) die "unknown argument \"$1\" (see --help)" ;;
  esac
  shift
done

OUT_DIR=${OUT:-.cache/gpu_check}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
exec > >(tee "$LOG") 2>&1
START=$(date +%s)
step() { echo; echo "== [$(($(date +%s) - START)) s] $*"; }

# ---- the machine --------------------------------------------------------------------------------
step "machine"
if [ "$MOCK" = 1 ]; then
  echo "mock device: host-memory libcudart + grid-emulated kernels (no GPU is used)"
else
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this is not a machine with an NVIDIA driver (use --mock to dry-run)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || die "nvidia-smi cannot read the GPU"
  NVCC=$(command -v nvcc || true)
  [ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
  [ -n "$NVCC" ] || die "nvcc not found: install the CUDA toolkit (or put nvcc on PATH)"
  "$NVCC" --version | tail -n 1
fi
command -v cc >/dev/null || die "no C compiler (cc) for the CPU library"

# ---- the runtimes (no network needed when packed with --pack) -----------------------------------
find_runtime() { # name → path or ""
  local name=$1 var
  var=$(echo "$name" | tr a-z A-Z)
  if [ -n "${!var:-}" ] && [ -x "${!var}" ]; then echo "${!var}"; return; fi
  if command -v "$name" >/dev/null; then command -v "$name"; return; fi
  if [ -x "$TOOLS/$name" ]; then echo "$TOOLS/$name"; return; fi
  if [ -f "$TOOLS/$name.xz" ]; then
    local dst="/tmp/graft-gpu-tools/$name"
    mkdir -p /tmp/graft-gpu-tools
    command -v xz >/dev/null || { log "xz not found: cannot unpack $TOOLS/$name.xz"; echo ""; return; }
    [ -x "$dst" ] || { xz -dc "$TOOLS/$name.xz" >"$dst.tmp" && chmod +x "$dst.tmp" && mv "$dst.tmp" "$dst"; }
    echo "$dst"
    return
  fi
  echo ""
}
DENO=$(find_runtime deno)
if [ -z "$DENO" ] && command -v npx >/dev/null && npx -y "deno@${DENO_VERSION}" --version >/dev/null 2>&1; then
  DENO="npx -y deno@${DENO_VERSION}"
fi
[ -n "$DENO" ] || die "no Deno: set DENO, put deno on PATH, or run 'bash scripts/gpu_check.sh --pack' where npx works and carry $TOOLS"
[ -d "$TOOLS/deno_dir" ] && [ -z "${DENO_DIR:-}" ] && export DENO_DIR="$PWD/$TOOLS/deno_dir"
BUN=$(find_runtime bun)
echo "deno: $($DENO --version | head -n 1)"
[ -n "$BUN" ] && echo "bun: $($BUN --version)" || echo "bun: not found (the Bun test run is skipped)"
PYTHON=${PYTHON:-python3}
export PYTHON

# ---- cuBLAS (optional: without it GEMMs use the tiled kernel, and the GEMM table says so) ------
if [ -z "${GRAFT_CUBLAS:-}" ]; then
  if ! ldconfig -p 2>/dev/null | grep -qE 'libcublas\.so\.1[23] '; then
    GRAFT_CUBLAS=$("$PYTHON" - <<'EOF' 2>/dev/null || true
import glob, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()] + sys.path
for d in dirs:
    for sub in ("cu13", "cublas", "cu12"):
        hits = sorted(glob.glob(f"{d}/nvidia/{sub}/lib/libcublas.so.1[23]"))
        if hits:
            print(hits[-1]); raise SystemExit
EOF
)
    [ -n "$GRAFT_CUBLAS" ] && export GRAFT_CUBLAS
  fi
fi
echo "cuBLAS: ${GRAFT_CUBLAS:-loader search (libcublas.so.13, .so.12)}"

# ---- 1. build ----------------------------------------------------------------------------------
step "build the kernel libraries"
if [ "$MOCK" = 1 ]; then
  libs=$($DENO run -A scripts/build_kernels.ts --cuda-emu) || die "the kernel libraries did not build (see the compiler output above)"
  mkdir -p /tmp/graft-mock
  cc -O1 -shared -fPIC -fvisibility=hidden tests/cuda/harness/mock_cudart.c -o /tmp/graft-mock/libmock_cudart.so || die "the mock libcudart did not build"
  export GRAFT_CUDART=/tmp/graft-mock/libmock_cudart.so GRAFT_CUDA_MOCK=1
  cuda_lib=$(echo "$libs" | grep 'libkn_cuda_emu.so$' || true)
else
  libs=$($DENO run -A scripts/build_kernels.ts --cuda) || die "the kernel libraries did not build (see the compiler output above)"
  cuda_lib=$(echo "$libs" | grep 'libkn_cuda.so$' || true)
fi
echo "$libs"
GRAFT_KERNEL_LIB=$(echo "$libs" | grep 'libkn_cpu.so$' || true)
GRAFT_CUDA_KERNEL_LIB=$cuda_lib
[ -n "$GRAFT_CUDA_KERNEL_LIB" ] || die "build_kernels.ts printed no CUDA library path"
[ -n "$GRAFT_KERNEL_LIB" ] || die "build_kernels.ts printed no libkn_cpu.so path"
export GRAFT_KERNEL_LIB GRAFT_CUDA_KERNEL_LIB

# ---- 2. tests ----------------------------------------------------------------------------------
failed=0
step "tests/cuda under Deno"
$DENO test -A tests/cuda || { log "Deno: tests/cuda FAILED"; failed=1; }
if [ -n "$BUN" ]; then
  step "tests/cuda under Bun"
  $BUN test ./tests/cuda || { log "Bun: tests/cuda FAILED"; failed=1; }
fi

# ---- 3. parity table ---------------------------------------------------------------------------
step "CUDA-vs-CPU parity"
size=both
[ "$QUICK" = 1 ] || [ "$MOCK" = 1 ] && size=small
$DENO run -A scripts/bench/gpu_parity.ts --size "$size" || { log "parity FAILED"; failed=1; }

# ---- 4. benchmarks -----------------------------------------------------------------------------
if [ "$QUICK" = 0 ] && [ "$BENCH" = 1 ]; then
  want() { case ",$BENCHES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
  want decode && step "decode: Graft vs PyTorch + Accelerate"
  if ! want decode; then
    :
  elif [ "$MOCK" = 1 ]; then
    "$PYTHON" scripts/bench/make_decode_model.py .cache/bench/decode-small --preset small --device cpu >/dev/null || failed=1
    $DENO run -A scripts/bench/gpu_decode.ts --preset small --prompt 4 --new 3 --offload-new 2 || { log "decode benchmark FAILED"; failed=1; }
  else
    $DENO run -A scripts/bench/gpu_decode.ts || { log "decode benchmark FAILED"; failed=1; }
    GRAFT_CUDA_CACHE=0 $DENO run -A scripts/bench/gpu_decode.ts --graft-only --new 32 || { log "decode (no cache) FAILED"; failed=1; }
  fi
  want gemm && step "GEMM: Graft vs PyTorch"
  gemm_sizes=4096,8192
  [ "$MOCK" = 1 ] && gemm_sizes=64 && LAYERS=1
  if want gemm; then
    $DENO run -A scripts/bench/gpu_gemm.ts --sizes "$gemm_sizes" || { log "GEMM benchmark FAILED"; failed=1; }
  fi
  if want merge; then
    step "merge of a Llama-7B-shaped checkpoint ($LAYERS of 32 layers)"
    $DENO run -A scripts/bench/gpu_merge.ts --layers "$LAYERS" || { log "merge benchmark FAILED"; failed=1; }
  fi
fi

step "done"
if [ "$failed" = 0 ]; then echo "gpu_check: all checks passed (log: $LOG)"; else echo "gpu_check: some checks FAILED (log: $LOG)"; fi
exit "$failed"
