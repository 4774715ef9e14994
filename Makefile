# The two commands of the README: `make demo` and `make test`. Both set up .venv from the lock.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0+cpu: from this machine's wheel folder if it has one, else PyTorch's CPU index.
TORCH_SOURCE := $(if $(wildcard /opt/wheels/torch-2.13.0+cpu*),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test bench lock clean

$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_SOURCE) -r requirements/lock.txt 2>&1 | sed "/^WARNING: Location/d"
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | sed "/^WARNING: Location/d"
	$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; exit 1; }
	$(BIN)/sagestack --version
	touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install the locked stack plus sagestack.

demo: setup  ## The main job: the pipeline end to end, then one prediction from the served model.
	$(BIN)/sagestack demo

# The tests start a real redis-server (Feast's Redis online store): install it when missing, or stop here.
system-deps:  ## System packages the tests start (redis-server), installed with apt-get when missing.
	@command -v redis-server >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || true
	@command -v redis-server >/dev/null || { echo "error: the tests need redis-server; install it (apt-get install redis-server) and run make test again" >&2; exit 1; }

test: setup system-deps  ## Run the test suite.
	$(BIN)/python -m pytest

bench: setup  ## Print the benchmark figures recorded in the README.
	$(BIN)/python bench/fasttext_accuracy.py
	$(BIN)/python bench/trainers_accuracy.py
	$(BIN)/python bench/fasttext_speed.py
	$(BIN)/python bench/pipeline_overhead.py
	$(BIN)/python bench/serving_http.py
	$(BIN)/python bench/bias_scale.py
	$(BIN)/python bench/features.py

lock:  ## Re-resolve requirements/stack.in into requirements/lock.txt (needs uv).
	cd requirements && uv pip compile stack.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--find-links /opt/wheels --no-emit-find-links --custom-compile-command "make lock" -o lock.txt

clean:
	rm -rf $(VENV) .sagestack
