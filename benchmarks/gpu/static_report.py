"""Static facts of the CUDA kernels, read off the compiler's own output: registers, spills and
shared memory per kernel (ptxas -v), occupancy on sm_90 at the launch configuration, and
machine instructions per element in the vectorised loop of the hot kernels.

The instruction count comes from an analysis build (-DHISTGPU_SASS_MARKERS) whose loop body is
bracketed by two PMTRIG markers (csrc/cuda/block/load.cuh); the count is the shortest path of
instructions from one marker to the other in the disassembly's control flow -- the path a loop
iteration takes when every value is on the fast path -- divided by the elements per iteration.

    python benchmarks/gpu/static_report.py                 # writes benchmarks/results/gpu_static.md
    python benchmarks/gpu/static_report.py --check         # also fails (exit 1) on a spill, on
                                                           # occupancy below 50% or v1 > 35 instr/elt

Needs nvcc and nvdisasm (PyPI's nvidia-cuda-nvdisasm); no GPU.
"""
from __future__ import annotations

import argparse
import heapq
import math
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "csrc" / "cuda" / "kernels.cu"
# The project's nvcc flags (csrc/cuda/CMakeLists.txt) for the device code.
NVCC_FLAGS = ["-O3", "-std=c++17", "--fmad=false", "-prec-div=true", "-prec-sqrt=true", "-ftz=false"]

# sm_90 (H100/H200) per multiprocessor
SM90 = dict(regs=65536, threads=2048, blocks=32, smem=228 * 1024, reserved=1024, reg_unit=256)
# csrc/cuda/policy.hpp and passes/v1.cuh
V1_SMEM = {"float": 8192 * 8 + 6208, "double": 8192 * 8 + 6208 + 12432}
COUNT_SMEM_K30 = {"float": 128 + 30 * 128, "double": 256 + 30 * 128}
DTYPES = {"9": ("float16", 2, "float"), "10": ("bfloat16", 2, "float"), "11": ("float32", 4, "float"),
          "12": ("float64", 8, "double")}
MODES = {"0": "lane counters", "1": "shared counters", "2": "shared table", "3": "global table"}
V1_TARGET = 35.0


@dataclass
class Kernel:
    mangled: str
    pass_: str
    dtype: str
    itemsize: int
    kernel_type: str
    contiguous: bool
    mode: str = ""
    regs: int = 0
    spill_bytes: int = 0
    stack: int = 0
    static_smem: int = 0
    instr_per_element: Optional[float] = None
    threads: int = 256
    dynamic_smem: int = 0
    occupancy: float = 0.0
    hot: bool = False
    sm80_regs: int = 0
    sm80_spill: int = 0


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in [Path(sys.prefix) / "lib"] + [Path(p) for p in sys.path if p]:
        for cand in base.glob(f"**/nvidia/cu*/bin/{name}") if base.is_dir() and base.name == "lib" else [
                base / "nvidia" / "cu13" / "bin" / name, base / "nvidia" / "cu12" / "bin" / name]:
            if cand.exists():
                return str(cand)
    for cand in (Path("/usr/local/cuda/bin") / name,):
        if cand.exists():
            return str(cand)
    raise SystemExit(f"static_report: {name} not found (install nvidia-cuda-nvdisasm for nvdisasm)")


def describe(mangled: str) -> Optional[Kernel]:
    """What a batch kernel's mangled name says: pass, dtype, layout, count mode."""
    m = re.match(r"_ZN7histgpu4cuda12batch_kernelILNS_5DTypeE(\d+)ELb([01])ENS0_(\d+)(\w+?)I([fd])", mangled)
    if not m:
        return None
    code, contig, _, pass_name, ktype = m.groups()
    name, itemsize, kernel_type = DTYPES.get(code, (f"code {code}", 4 if ktype == "f" else 8,
                                                    "float" if ktype == "f" else "double"))
    if contig == "0":
        name = f"any {kernel_type} dtype, strided"
    pass_ = {"RangePass": "range", "CountPass": "count", "V1Pass": "v1"}.get(pass_name, pass_name)
    mode = ""
    if pass_ == "count":
        mm = re.search(r"CountModeE(\d)", mangled)
        mode = MODES.get(mm.group(1), "?") if mm else "?"
    return Kernel(mangled, pass_, name, itemsize, kernel_type, contig == "1", mode)


def compile_cubin(nvcc: str, arch: str, out: Path, markers: bool) -> str:
    cmd = [nvcc, "-cubin", f"-arch={arch}", *NVCC_FLAGS, f"-I{REPO / 'csrc'}", "-Xptxas", "-v", "-o", str(out),
           str(KERNELS)]
    if markers:
        cmd.insert(1, "-DHISTGPU_SASS_MARKERS")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"static_report: nvcc failed:\n{r.stderr[-4000:]}")
    return r.stderr


def parse_ptxas(text: str) -> Dict[str, Dict[str, int]]:
    """Per function: registers, spill bytes, stack frame and static shared memory."""
    out: Dict[str, Dict[str, int]] = {}
    current = None
    for line in text.splitlines():
        m = re.search(r"Function properties for (\S+)", line) or re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            current = out.setdefault(m.group(1), {"regs": 0, "spill": 0, "stack": 0, "smem": 0})
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current["stack"] = int(m.group(1))
            current["spill"] = int(m.group(2)) + int(m.group(3))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current["regs"] = int(m.group(1))
            ms = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(ms.group(1)) if ms else 0
    return out


_INSN = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)(.*);")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def functions(sass: str) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    current: Optional[List[str]] = None
    for line in sass.splitlines():
        m = re.match(r"^\.text\.(\S+):", line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        if current is not None and (line.startswith("\t.section") or line.startswith("//---")):
            current = None
            continue
        if current is not None:
            current.append(line)
    return out


def marked_path_length(lines: List[str]) -> Optional[int]:
    """Instructions on the shortest path from PMTRIG 0x2 to PMTRIG 0x4 that meets no PMTRIG 0x8
    (the entry of a rare path); markers are not counted."""
    insns: List[Tuple[str, Optional[str], bool]] = []  # (opcode, branch target, predicated)
    labels: Dict[str, int] = {}
    for line in lines:
        lm = _LABEL.match(line.strip())
        if lm:
            labels[lm.group(1)] = len(insns)
            continue
        m = _INSN.match(line)
        if not m:
            continue
        pred, op, rest = m.group(2), m.group(3), m.group(4)
        # only branches transfer control (BSSY's label is where a divergent branch reconverges)
        t = _TARGET.search(rest) if op.startswith("BRA") else None
        insns.append((op + (rest.strip().split(" ")[0] if op == "PMTRIG" else ""), t.group(1) if t else None,
                      bool(pred)))
    starts = [i for i, (op, _, _) in enumerate(insns) if op.startswith("PMTRIG") and op.endswith("0x2")]
    ends = {i for i, (op, _, _) in enumerate(insns) if op.startswith("PMTRIG") and op.endswith("0x4")}
    rare = {i for i, (op, _, _) in enumerate(insns) if op.startswith("PMTRIG") and op.endswith("0x8")}
    if not starts or not ends:
        return None
    best: Optional[int] = None
    for s in starts:
        dist = {s: 0}
        heap = [(0, s)]
        while heap:
            d, i = heapq.heappop(heap)
            if d > dist.get(i, math.inf):
                continue
            if i in ends and i != s:
                best = d if best is None else min(best, d)
                break
            op, target, predicated = insns[i]
            succ = []
            unconditional = op.startswith("BRA") and not predicated
            terminal = op.startswith("EXIT") and not predicated or op.startswith("RET")
            if not unconditional and not terminal and i + 1 < len(insns):
                succ.append(i + 1)
            if target and target in labels:
                succ.append(labels[target])
            cost = 0 if op.startswith("PMTRIG") else 1
            for j in succ:
                if j in rare:  # the typical iteration takes no rare path
                    continue
                nd = d + cost
                if nd < dist.get(j, math.inf):
                    dist[j] = nd
                    heapq.heappush(heap, (nd, j))
    return best


def occupancy(regs: int, threads: int, smem: int) -> float:
    warps = threads // 32
    per_warp = math.ceil(regs * 32 / SM90["reg_unit"]) * SM90["reg_unit"]
    by_regs = SM90["regs"] // (per_warp * warps) if regs else SM90["blocks"]
    by_threads = SM90["threads"] // threads
    by_smem = SM90["smem"] // (smem + SM90["reserved"]) if smem else SM90["blocks"]
    blocks = min(by_regs, by_threads, by_smem, SM90["blocks"])
    return blocks * threads / SM90["threads"]


def analyse(workdir: Path) -> Tuple[List[Kernel], Dict[str, Dict[str, int]]]:
    nvcc, nvdisasm = _tool("nvcc"), _tool("nvdisasm")
    prod = parse_ptxas(compile_cubin(nvcc, "sm_90", workdir / "sm90.cubin", markers=False))
    sm80 = parse_ptxas(compile_cubin(nvcc, "sm_80", workdir / "sm80.cubin", markers=False))
    compile_cubin(nvcc, "sm_90", workdir / "marked.cubin", markers=True)
    sass = subprocess.run([nvdisasm, str(workdir / "marked.cubin")], capture_output=True, text=True, check=True).stdout
    funcs = functions(sass)
    kernels: List[Kernel] = []
    for name, info in prod.items():
        k = describe(name)
        if k is None:
            continue
        k.regs, k.spill_bytes, k.stack, k.static_smem = info["regs"], info["spill"], info["stack"], info["smem"]
        if name in sm80:
            k.sm80_regs, k.sm80_spill = sm80[name]["regs"], sm80[name]["spill"]
        k.threads = 512 if k.pass_ == "v1" else 256
        if k.pass_ == "v1":
            k.dynamic_smem = V1_SMEM[k.kernel_type]
        elif k.pass_ == "count" and k.mode == "lane counters":
            k.dynamic_smem = COUNT_SMEM_K30[k.kernel_type]
        elif k.pass_ == "count" and k.mode in ("shared counters", "shared table"):
            k.dynamic_smem = 48 * 1024
        k.occupancy = occupancy(k.regs, k.threads, k.dynamic_smem + k.static_smem)
        k.hot = k.contiguous  # the dedicated kernels of the dtypes that fill models
        if k.contiguous and name in funcs:
            n = marked_path_length(funcs[name])
            if n is not None:
                unroll = 2 if k.itemsize == 8 else 4  # csrc/cuda/block/load.cuh: kUnroll
                k.instr_per_element = n / (unroll * 16 // k.itemsize)
        kernels.append(k)
    order = {"range": 0, "count": 1, "v1": 2}
    kernels.sort(key=lambda k: (order.get(k.pass_, 9), not k.contiguous, k.dtype, k.mode))
    return kernels, prod


def problems(kernels: List[Kernel]) -> List[str]:
    out = []
    for k in kernels:
        if k.hot and (k.spill_bytes or k.stack):
            out.append(f"{k.pass_} {k.dtype} {k.mode}: spills {k.spill_bytes} B, stack {k.stack} B on sm_90")
        if k.hot and k.occupancy < 0.5:
            out.append(f"{k.pass_} {k.dtype} {k.mode}: occupancy {k.occupancy:.0%} on sm_90 (< 50%)")
    for k in kernels:
        if k.pass_ == "v1" and k.dtype == "float32" and k.instr_per_element and k.instr_per_element > V1_TARGET:
            out.append(f"v1 float32: {k.instr_per_element:.1f} instructions per element (> {V1_TARGET})")
    return out


def report(kernels: List[Kernel], nvcc_version: str) -> str:
    lines = [
        "# GPU kernels: static facts",
        "",
        "Regenerated by `make gpu-static` (`python benchmarks/gpu/static_report.py`) from the compiler's",
        "output; no GPU involved. Registers, spills and static shared memory are ptxas's (-Xptxas -v) for",
        "sm_90; occupancy is for an sm_90 multiprocessor at the kernel's launch configuration (threads",
        "per block, dynamic shared memory of the mode: v1's tables, k = 30 for the lane-counter count pass,",
        "the 48 KiB cap for the other shared modes); instructions per element are counted on the typical",
        "path of one iteration of the vectorised loop (finite values, no rare branch), between PMTRIG",
        "markers of an analysis build (csrc/cuda/markers.hpp). sm_80 figures are for reference; a few bytes",
        "of spill there sit in cold paths.",
        "",
        f"`{nvcc_version}`",
        "",
        "| pass | dtype | mode | threads | registers | spills | static smem | dynamic smem | occupancy (sm_90) | SASS / element | sm_80 registers / spills |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in kernels:
        ipe = f"{k.instr_per_element:.1f}" if k.instr_per_element is not None else "–"
        lines.append(
            f"| {k.pass_} | {k.dtype} | {k.mode or '–'} | {k.threads} | {k.regs} | {k.spill_bytes} | {k.static_smem} | "
            f"{k.dynamic_smem} | {k.occupancy:.0%} | {ipe} | {k.sm80_regs} / {k.sm80_spill} |"
        )
    bad = problems(kernels)
    lines += ["", "Checks on sm_90, for the hot kernels (the dedicated contiguous kernels of float32, bfloat16, "
              "float16 and float64): no spill, ≥ 50% occupancy; and v1 float32 ≤ 35 instructions per element: "
              + ("**all pass**." if not bad else "**failing**: " + "; ".join(bad)), ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu_static.md"))
    ap.add_argument("--check", action="store_true", help="exit 1 when a check fails")
    ap.add_argument("--no-write", action="store_true", help="print the report instead of writing it")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="histgpu-static-") as tmp:
        kernels, _ = analyse(Path(tmp))
    version = subprocess.run([_tool("nvcc"), "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    text = report(kernels, version)
    if args.no_write:
        print(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    bad = problems(kernels)
    for b in bad:
        print("static check failed:", b, file=sys.stderr)
    return 1 if (args.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
