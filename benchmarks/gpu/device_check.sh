#!/usr/bin/env bash
# One call on a GPU machine (issue 4, item 7): build, GPU tests, GPU benchmark, compute-sanitizer.
#
#   bash benchmarks/gpu/device_check.sh          # from the repository root; writes into $OUT
#
# Expects python3 with CUDA, PyTorch and/or CuPy, pybind11, scikit-build-core, cmake and ninja
# (no network, no TensorFlow needed). Every step is bounded by `timeout`; the whole script stays
# under 8 minutes. Results: $OUT/results.md (a table of steps) plus one log per step and the
# benchmark's bench_gpu.md / bench_gpu.json: 8 files, so that all of them come back.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-16}
# nvcc where CMake finds it (the build skips the CUDA engine, and says so, without one)
command -v nvcc >/dev/null 2>&1 || export PATH="$PATH:/usr/local/cuda/bin"
T0=$(date +%s)
RES="$OUT/results.md"
{
  echo "# histgpu device check"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -5
  $PY -c 'import sys; print("python", sys.version.split()[0])'
  $PY -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1
  $PY -c 'import cupy; print("cupy", cupy.__version__)' 2>&1 | tail -1
  nvcc --version | tail -2
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

step build 140 $PY -m pip install --no-build-isolation --no-deps -v . || { cat "$RES"; exit 1; }
INFO=$(timeout -k 5 15 $PY -P -c 'import histgpu, json; print(json.dumps(histgpu.build_info()["cuda"]))' 2>&1 | tail -n 3)
# -P: import the installed histgpu, not the source tree in the current directory
step tests 120 $PY -P -m pytest -p no:cacheprovider -q -rs tests/cuda
step bench 70 $PY -P benchmarks/gpu/bench_gpu.py --out "$OUT"
step memcheck 55 compute-sanitizer --tool memcheck --error-exitcode 9 $PY -P benchmarks/gpu/sanitize_case.py
step racecheck 55 compute-sanitizer --tool racecheck --error-exitcode 9 $PY -P benchmarks/gpu/sanitize_case.py
{ echo; echo "build_info()[\"cuda\"]: \`$INFO\`"; } >> "$RES"
echo >> "$RES"
echo "Total: $(( $(date +%s) - T0 )) s" >> "$RES"
cat "$RES"
[ -f "$OUT/bench_gpu.md" ] && cat "$OUT/bench_gpu.md"
exit 0
