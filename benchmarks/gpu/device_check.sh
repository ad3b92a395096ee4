#!/usr/bin/env bash
# The first (and every) run on a GPU machine, as one command (issue 11): build, histgpu selftest,
# the GPU tests, compute-sanitizer memcheck/racecheck/synccheck on small cases, and the benchmark
# against cupy.histogram, torch.histc, torch.histogram and CUB, each as a fraction of the
# measured copy bandwidth.
#
#   OUT=/some/dir bash benchmarks/gpu/device_check.sh      # from the repository root
#
# Expects python3 with CUDA, PyTorch and/or CuPy, pybind11, scikit-build-core, cmake and ninja
# (no network, no TensorFlow needed). Every step is bounded by `timeout`; on an H200 the whole
# script takes under 6 minutes. Results: $OUT/results.md (a table of steps) plus one log per step
# and the benchmark's bench_gpu.md / bench_gpu.json. Commit them as benchmarks/results/gpu.md.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false HISTGPU_BIG_TESTS=${HISTGPU_BIG_TESTS:-1}
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-16}
# nvcc where CMake finds it (the build skips the CUDA engine, and says so, without one)
command -v nvcc >/dev/null 2>&1 || export PATH="$PATH:/usr/local/cuda/bin"
# the GPU of this machine only: a quicker build than the release's sm_80 + sm_90
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
T0=$(date +%s)
RES="$OUT/results.md"
{
  echo "# histgpu device check"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,compute_cap --format=csv 2>&1 | head -5
  $PY -c 'import sys; print("python", sys.version.split()[0])'
  $PY -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1
  $PY -c 'import cupy; print("cupy", cupy.__version__)' 2>&1 | tail -1
  nvcc --version | tail -2
  git log --oneline -1 2>/dev/null
  echo '```'
  echo
  echo "| step | exit | seconds | last line |"
  echo "|---|---:|---:|---|"
} > "$RES"

step() {  # step NAME SECONDS command...
  local name=$1 limit=$2; shift 2
  local start rc last
  start=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  last=$(grep -v '^\s*$' "$OUT/$name.log" | tail -n 1 | tr '|' '/' | cut -c1-160)
  echo "| $name | $rc | $(( $(date +%s) - start )) | $last |" >> "$RES"
  echo "== $name: exit $rc after $(( $(date +%s) - start )) s"
  tail -n 3 "$OUT/$name.log"
  return $rc
}

# editable: the tests import the source tree's histgpu, which must find the built modules
# (HISTGPU_SKIP_BUILD=1: use the histgpu already installed, to rehearse the other steps)
[ "${HISTGPU_SKIP_BUILD:-0}" = 1 ] || step build 200 $PY -m pip install --no-build-isolation --no-deps -e . ${ARCH:+-Ccmake.define.HISTGPU_CUDA_ARCHITECTURES=${ARCH}-real} \
  || { cat "$RES"; exit 1; }
INFO=$(timeout -k 5 20 $PY -c 'import histgpu, json; print(json.dumps(histgpu.build_info()["cuda"]))' 2>&1 | tail -n 3)
step selftest 60 $PY -m histgpu selftest
# the real GPU's cases (the emulated ones ran in CI already)
step tests 150 $PY -m pytest -p no:cacheprovider -q -rs -x tests/cuda -k "not emulated" --deselect tests/cuda/test_static.py
step bench 70 $PY benchmarks/gpu/bench_gpu.py --out "$OUT"
for tool in memcheck racecheck synccheck; do
  step "$tool" 45 compute-sanitizer --tool "$tool" --error-exitcode 9 $PY benchmarks/gpu/sanitize_case.py
done
{ echo; echo "build_info()[\"cuda\"]: \`$INFO\`"; } >> "$RES"
echo >> "$RES"
echo "Total: $(( $(date +%s) - T0 )) s" >> "$RES"
cat "$RES"
[ -f "$OUT/bench_gpu.md" ] && cat "$OUT/bench_gpu.md"
exit 0
