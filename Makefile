# histgpu — two commands from a fresh clone:
#   make test    create .venv, install build + test dependencies, build the extension, run the whole suite
#   make demo    same setup, then run the demo
# Also: make bench [FULL=1], make build, make clean, make distclean.
#
# Everything lives in .venv/ (created with `$(PYTHON) -m venv`); stamp files under .venv/ remember
# what was installed, so a second `make test` only rebuilds when csrc/, CMakeLists.txt or
# pyproject.toml changed.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?=
FULL        ?=

# Build dependencies (the extension is built without build isolation, inside .venv).
BUILD_DEPS  := scikit-build-core pybind11 cmake ninja
# Used only when pyproject.toml cannot be read (Python < 3.11 has no tomllib).
FALLBACK_DEPS := numpy ml_dtypes tensorflow-cpu tensorboard protobuf pytest hypothesis torch==2.13.0+cpu
FALLBACK_BENCH_DEPS := fast-histogram boost-histogram matplotlib

# Prints pyproject's runtime dependencies plus the named extras, one per line.
# $(1): space-separated extras; $(2): fallback list.
define pyproject_deps
{ $(PY) -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; x = p.get("optional-dependencies", {}); print("\n".join(p.get("dependencies", []) + [d for e in sys.argv[1:] for d in x.get(e, [])]))' $(1) 2>/dev/null || printf '%s\n' $(2); }
endef

# Everything the compiled extension depends on.
BUILD_INPUTS := $(shell find csrc -type f 2>/dev/null) CMakeLists.txt pyproject.toml

STAMP_VENV  := $(VENV)/.stamp-venv
STAMP_DEPS  := $(VENV)/.stamp-deps
STAMP_BENCH := $(VENV)/.stamp-bench-deps
STAMP_BUILD := $(VENV)/.stamp-build

.PHONY: all setup build test demo bench clean distclean

all: test

setup: $(STAMP_BUILD)

build: $(STAMP_BUILD)

$(STAMP_VENV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	touch $@

$(STAMP_DEPS): $(STAMP_VENV) pyproject.toml
	$(PIP) install $(BUILD_DEPS)
	$(call pyproject_deps,test,$(FALLBACK_DEPS)) | xargs $(PIP) install
	touch $@

$(STAMP_BUILD): $(STAMP_DEPS) $(BUILD_INPUTS)
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PY) -c "import histgpu, json; print('histgpu', json.dumps(histgpu.build_info()))"
	touch $@

$(STAMP_BENCH): $(STAMP_DEPS)
	$(call pyproject_deps,bench,$(FALLBACK_BENCH_DEPS)) | xargs $(PIP) install
	touch $@

test: $(STAMP_BUILD)
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The main job: histgpu vs TensorBoard's bucketing on a large tensor (speed, memory, identical
# output), then the Keras training example logging through histgpu, then `histgpu inspect` on it.
demo: $(STAMP_BUILD)
	$(PY) examples/demo_core.py
	$(PY) examples/train_keras.py
	$(PY) -m histgpu inspect logs/histogram_example --out logs/histogram_example_report

# Serve the demo's logdir (written by `make demo`) on http://127.0.0.1:$(TB_PORT)/#histograms
TB_PORT ?= 6006
.PHONY: tensorboard
tensorboard: $(STAMP_DEPS)
	@test -d logs/histogram_example || { echo "no logs/histogram_example yet: run 'make demo' first"; exit 1; }
	$(VENV)/bin/tensorboard --logdir logs/histogram_example --host 127.0.0.1 --port $(TB_PORT)

# The benchmark suite (benchmarks/README.md): reduced default < 15 min on 2 cores; FULL=1 the full
# sweep; BENCH_ARGS passes more options (e.g. BENCH_ARGS="--scenarios cpu --sizes 1e6").
bench: $(STAMP_BUILD) $(STAMP_BENCH)
	$(PY) -m benchmarks $(if $(FULL),--full,) $(BENCH_ARGS)

# ruff and mypy (configured in pyproject.toml), as CI runs them.
.PHONY: lint
lint: $(STAMP_DEPS)
	$(PY) -m ruff check .
	$(PY) -m mypy

# Static facts of the CUDA kernels (registers, spills, occupancy, SASS per element), from the
# compiler alone: rewrites benchmarks/results/gpu_static.md and fails on a failed check.
.PHONY: gpu-static
gpu-static: $(STAMP_DEPS)
	$(PY) benchmarks/gpu/static_report.py --check

clean:
	rm -rf build _skbuild dist *.egg-info .pytest_cache .hypothesis
	rm -f histgpu/*.so
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f $(STAMP_BUILD)

distclean: clean
	rm -rf $(VENV)
