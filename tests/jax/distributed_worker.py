"""Subprocess body of tests/jax/test_distributed.py: one process of a 2-process jax.distributed job
on 127.0.0.1, 4 host CPU devices each (8 global devices).

    python distributed_worker.py PROCESS_ID NUM_PROCESSES PORT X64 LOGDIR

Shards global arrays over meshes that span both processes (replicated axes across and within
processes), compares histgpu.jax.histogram / histogram_v1 with histgpu.compute / compute_v1 of
the whole array, logs a pytree from process 0 only, and prints one JSON line: the failed checks
and what a naive int64 process_allgather returned.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository root: tests.jax.helpers


def global_arrays(np, jnp, x64):
    """The same arrays in every process (fixed seeds)."""
    rng = np.random.default_rng(1234)
    a = (rng.standard_normal((16, 8)) * 4).astype(np.float32)
    a.reshape(-1)[[3, 9, 10]] = np.nan
    a.reshape(-1)[20] = -0.0
    a.reshape(-1)[21] = np.inf
    a.reshape(-1)[22] = -np.inf
    out = {
        "f32": a,
        "bf16": a.astype(jnp.bfloat16),
        "i32": rng.integers(-1000, 1000, (16, 8)).astype(np.int32),
        "empty": np.zeros((0, 8), np.float32),
        "zeros": np.where(rng.random((16, 8)) < 0.5, -0.0, 0.0).astype(np.float32),
    }
    if x64:
        b = rng.standard_normal((16, 8)) * 1e300
        b[0, 0], b[0, 1] = -1.7e308, 1.7e308
        out["f64"] = b
        out["i64"] = rng.integers(0, 2**62, (16, 8)).astype(np.int64) * 2 + 1
    return out


def main() -> int:
    pid, nproc, port, x64, logdir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
    import jax

    jax.config.update("jax_enable_x64", x64)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid,
                               initialization_timeout=60)
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import histgpu
    import histgpu.jax as hjax
    from tests.jax.helpers import same_v1, same_v2

    warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
    failures = []
    report = {"process": pid, "x64": x64, "devices": len(jax.devices()), "local": len(jax.local_devices())}

    # What JAX does to int64 without x64: the reason histgpu.jax gathers int32 pairs.
    naive = np.asarray(multihost_utils.process_allgather(np.array([2**40 + pid, -3], np.int64)))
    report["naive_int64_gather"] = {"dtype": str(naive.dtype), "values": naive.tolist()}

    devs = np.array(sorted(jax.devices(), key=lambda d: (d.process_index, d.id)))
    meshes = {
        "1d": Mesh(devs, ("x",)),
        "proc_x_dev": Mesh(devs.reshape(2, 4), ("p", "d")),   # axis p spans the processes
        "dev_x_proc": Mesh(devs.reshape(2, 4).T, ("d", "p")),
        "4x2": Mesh(devs.reshape(4, 2), ("a", "b")),          # b within a process, a across
    }
    layouts = [
        ("1d", P("x")), ("1d", P(None, "x")), ("1d", P()),
        ("proc_x_dev", P("p", "d")), ("proc_x_dev", P(None, "d")),   # replicated across processes
        ("proc_x_dev", P("d")), ("proc_x_dev", P("p")),               # replicated within a process
        ("dev_x_proc", P("p", "d")), ("dev_x_proc", P(("d", "p"))),
        ("4x2", P("a", "b")), ("4x2", P("a")), ("4x2", P(None, "b")), ("4x2", P()),
    ]
    arrays = global_arrays(np, jnp, x64)
    spanning = 0
    for name, g in arrays.items():
        for mesh_name, spec in layouts:
            what = f"{name} {mesh_name} {spec}"
            try:
                sharding = NamedSharding(meshes[mesh_name], spec)
                x = jax.make_array_from_callback(g.shape, sharding, lambda idx, g=g: g[idx])
                spanning += not x.is_fully_addressable
                for k in (30, 7):
                    if not same_v2(hjax.histogram(x, k), histgpu.compute(g, k)):
                        failures.append(f"{what}: v2 k={k} differs")
                if not same_v1(hjax.histogram_v1(x), histgpu.compute_v1(g)):
                    failures.append(f"{what}: v1 differs")
            except Exception:  # noqa: BLE001 - reported, and the other layouts still run
                failures.append(f"{what}: {traceback.format_exc(limit=3)}")
    report["spanning_arrays"] = spanning

    # An array on process 0's devices only: process 0 holds all of it (no collective), process 1
    # none of it, and is told so instead of waiting in a collective that process 0 never joins.
    only0 = Mesh(devs[:4], ("x",))
    x = jax.make_array_from_callback((8, 8), NamedSharding(only0, P("x")), lambda idx: arrays["f32"][:8][idx],
                                  dtype=np.float32)
    try:
        h = hjax.histogram(x)
        if pid == 1 or not same_v2(h, histgpu.compute(arrays["f32"][:8])):
            failures.append("array on process 0 only: wrong outcome")
    except ValueError as e:
        if pid != 1 or "processes [0] of 2" not in str(e):
            failures.append(f"array on process 0 only: {e}")

    # A pytree logged from a training loop: every process computes, process 0 writes.
    m = meshes["4x2"]
    tree = {"params": {"Dense_0": {"kernel": arrays["f32"], "bias": arrays["zeros"][0]}}}
    specs = {"params": {"Dense_0": {"kernel": P("a", "b"), "bias": P("b")}}}
    sharded = jax.tree_util.tree_map(
        lambda a, s: jax.make_array_from_callback(a.shape, NamedSharding(m, s), lambda idx, a=a: a[idx]), tree, specs)
    writer = histgpu.SummaryWriter(os.path.join(logdir, "jax")) if pid == 0 else None
    for step in range(2):
        for bins in ("tensorflow", 30):
            hjax.log_histograms(writer, sharded, step, bins=bins, prefix=str(bins), walltime=100.0 + step)
    if writer is not None:
        writer.close()
        with histgpu.SummaryWriter(os.path.join(logdir, "ref")) as ref:
            for step in range(2):
                for bins in ("tensorflow", 30):
                    full = {t: np.asarray(v) for t, v in hjax.tree_tags(tree, str(bins))}
                    if bins == "tensorflow":  # TensorFlow's collapsed v1 proto of the whole array
                        ref.add_computed({t: histgpu.compute_v1(a) for t, a in full.items()}, step, 100.0 + step)
                    else:
                        ref.add_histograms(full, step, bins=bins, walltime=100.0 + step, layout="v2")
    # The same pytree logged from inside jit: each process passes its own writer; JAX runs the
    # host callback once, in the process that holds the computation's first device.
    jit_writer = histgpu.SummaryWriter(os.path.join(logdir, f"jit{pid}"))

    @jax.jit
    def step_fn(tree, step):
        hjax.log_histograms_jit(jit_writer, tree, step, bins=30, prefix="30")
        return jax.tree_util.tree_map(lambda a: a * 1, tree)

    for step in range(2):
        step_fn(sharded, step)
    jax.effects_barrier()
    jit_writer.close()
    multihost_utils.sync_global_devices("histgpu test done")
    jax.distributed.shutdown()
    report["failures"] = failures
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
