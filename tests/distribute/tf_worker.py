"""Subprocess body of tests/distribute/test_tf_strategies.py: histgpu.distribute under a real strategy.

    python tf_worker.py mirrored LOGDIR        # MirroredStrategy over 4 logical CPUs
    python tf_worker.py multiworker LOGDIR     # MultiWorkerMirroredStrategy (TF_CONFIG)

Shards are a pure function of (scenario, replica id), so this process (and the test) can
rebuild the whole tensor and know the exact answer. Each process writes its summaries under
LOGDIR (only the chief's replica 0 should write anything) and prints one JSON line with the
checks of the tensors it computed itself. Importing this module does not import TensorFlow.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from typing import List

import numpy as np

K = {"uneven": 30, "nan": 17, "const_shard": 7, "all_equal": 5, "empty": 4, "f64": 64, "int": 9, "one_value": 3}
SCENARIOS = tuple(K)
# Every scenario runs in replica context inside one tf.function ("rep_fn"); a subset also
# runs in the slower modes, to keep the suite short.
SUBSET = ("uneven", "nan", "all_equal")
VAR_VALUES = np.linspace(-2.0, 3.0, 101, dtype=np.float32) ** 3  # a mirrored variable's value
K_VAR = 11


def shard(scenario: str, replica: int) -> np.ndarray:
    """Replica ``replica``'s shard of ``scenario`` (uneven sizes, empty shards, NaN, ...)."""
    rng = np.random.default_rng([SCENARIOS.index(scenario), replica])
    sizes = (2500, 41, 0, 900)
    n = sizes[replica % len(sizes)]
    if scenario == "uneven":
        return (rng.standard_normal(n) * (replica + 1) + replica).astype(np.float32)
    if scenario == "nan":
        x = rng.standard_normal(n + 5).astype(np.float32)
        x[replica % 3 :: 7] = (np.nan, np.inf, -np.inf)[replica % 3]
        return x
    if scenario == "const_shard":  # replica 0 holds one value only
        if replica == 0:
            return np.full(777, 0.75, dtype=np.float32)
        return rng.uniform(-1, 2, n).astype(np.float32)
    if scenario == "all_equal":  # every value of every shard is 2.5
        return np.full(n, 2.5, dtype=np.float32)
    if scenario == "empty":
        return np.zeros(0, dtype=np.float32)
    if scenario == "f64":
        x = rng.standard_normal(n) * np.exp(rng.uniform(-30, 30, n))
        if n:
            x[0] = -0.0
        return x
    if scenario == "int":
        return rng.integers(-1000, 50, n).astype(np.int32)
    if scenario == "one_value":  # a single finite value in the whole tensor
        return np.array([3.0], dtype=np.float32) if replica == 1 else np.zeros(0, np.float32)
    raise ValueError(scenario)


def whole(scenario: str, replicas: int) -> np.ndarray:
    return np.concatenate([shard(scenario, r) for r in range(replicas)])


def modes_of(scenario: str, kind: str) -> List[str]:
    """Modes (tag suffixes) under which ``scenario`` is written by a ``kind`` run."""
    modes = ["rep_fn"]
    if scenario in SUBSET:
        modes += ["xr", "xr_fn"] + (["worker"] if kind == "multiworker" else [])
    if scenario == "nan":
        modes.append("rep_eager")
    return modes


def tag(scenario: str, mode: str, v1: bool = False) -> str:
    return f"{scenario}/{mode}" + ("_v1" if v1 else "")


def main() -> int:
    kind, logdir = sys.argv[1], sys.argv[2]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if kind == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(4)])
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    tf.get_logger().setLevel("ERROR")
    warnings.simplefilter("ignore")

    import histgpu
    import histgpu.distribute as hdist

    replicas = strategy.num_replicas_in_sync
    worker = 0 if kind == "mirrored" else strategy.cluster_resolver.task_id
    failures: List[str] = []
    checks = 0

    def per_replica(sc: str):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(shard(sc, ctx.replica_id_in_sync_group))
        )

    def expect_table(got, sc: str, what: str) -> None:
        nonlocal checks
        checks += 1
        want = histgpu.histogram(whole(sc, replicas), K[sc])
        got = np.asarray(got)
        if got.shape != want.shape or not np.array_equal(got.view(np.int64), want.view(np.int64)):
            failures.append(f"{what}: tensor differs from histgpu.histogram of the whole tensor")

    writer = tf.summary.create_file_writer(os.path.join(logdir, f"worker{worker}"))
    with writer.as_default(step=1):
        # Outside strategy.scope(): PerReplica values need strategy=.
        hdist.histogram("kw/xr", per_replica("uneven"), buckets=K["uneven"], strategy=strategy)
        expect_table(hdist.histogram_tensor(per_replica("uneven"), K["uneven"], strategy=strategy), "uneven", "kw")
        scope = strategy.scope()
        scope.__enter__()
        shards = {sc: per_replica(sc) for sc in SCENARIOS}

        def step(xs, names, mode):
            """Replica context: write every scenario, return the tables."""
            out = []
            for sc, x in zip(names, xs):
                hdist.histogram(tag(sc, mode), x, buckets=K[sc])
                hdist.histogram_v1(tag(sc, mode, v1=True), x)
                out.append(hdist.histogram_tensor(x, K[sc]))
            return tuple(out)

        def check_run(out, names, mode):
            for i, sc in enumerate(names):
                for r, local in enumerate(strategy.experimental_local_results(out[i])):
                    expect_table(local, sc, f"{tag(sc, mode)} replica {r}")

        # A mirrored variable is one value, not a shard per replica.
        var = tf.Variable(VAR_VALUES)
        hdist.histogram("var/xr", var, buckets=K_VAR)
        tf.function(lambda: strategy.run(lambda: hdist.histogram("var/rep_fn", var, buckets=K_VAR)))()
        # replica context, one tf.function for every scenario
        rep_fn = tf.function(lambda xs: strategy.run(step, args=(xs, SCENARIOS, "rep_fn")))
        check_run(rep_fn(tuple(shards[sc] for sc in SCENARIOS)), SCENARIOS, "rep_fn")
        # replica context, eager (MirroredStrategy: one thread per replica)
        check_run(strategy.run(step, args=((shards["nan"],), ("nan",), "rep_eager")), ("nan",), "rep_eager")

        @tf.function
        def xr_fn(xs, k_first):
            """Cross-replica context inside tf.function, PerReplica values; the first
            scenario's bucket count is a tensor (unknown while tracing)."""
            out = []
            for i, (sc, x) in enumerate(zip(SUBSET, xs)):
                hdist.histogram(tag(sc, "xr_fn"), x, buckets=k_first if i == 0 else K[sc])
                hdist.histogram_v1(tag(sc, "xr_fn", v1=True), x)
                out.append(hdist.histogram_tensor(x, K[sc]))
            return out

        for sc, table in zip(SUBSET, xr_fn(tuple(shards[sc] for sc in SUBSET), tf.constant(K[SUBSET[0]]))):
            expect_table(table, sc, tag(sc, "xr_fn"))
        for sc in SUBSET:
            # cross-replica context, eager, PerReplica values
            hdist.histogram(tag(sc, "xr"), shards[sc], buckets=K[sc])
            hdist.histogram_v1(tag(sc, "xr", v1=True), shards[sc])
            if kind == "multiworker":  # plain numpy: this worker's shard (one replica per worker)
                hdist.histogram(tag(sc, "worker"), shard(sc, worker), buckets=K[sc])
                hdist.histogram_v1(tag(sc, "worker", v1=True), shard(sc, worker))
        if kind == "mirrored":
            # An unsupported dtype fails while tracing, on every replica alike (no replica
            # may fail alone inside a collective round).
            checks += 1
            try:
                hdist.histogram_tensor(strategy.experimental_distribute_values_from_function(
                    lambda ctx: tf.complex(tf.zeros([2]), tf.zeros([2]))))
                failures.append("complex data did not raise")
            except TypeError as exc:
                if "complex" not in str(exc):
                    failures.append(f"complex data: unexpected message {exc}")
            # nonfinite="raise": every replica fails at once, after the collectives (no hang).
            checks += 1
            try:
                hdist.histogram("raise", per_replica("nan"), nonfinite="raise")
                failures.append("nonfinite='raise' did not raise")
            except Exception as exc:  # noqa: BLE001 - TF wraps the ValueError
                if "NaN" not in str(exc):
                    failures.append(f"nonfinite='raise' raised something else: {exc!r}")
        scope.__exit__(None, None, None)
    writer.flush()
    print(json.dumps({"worker": worker, "replicas": replicas, "checks": checks, "failures": failures}), flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - report, then fail
        traceback.print_exc()
        sys.exit(2)
