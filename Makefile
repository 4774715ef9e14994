# The two commands of the README: `make demo` and `make test`. Both set up .venv from the lock.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0+cpu: from this machine's wheel folder if it has one, else PyTorch's CPU index.
TORCH_SOURCE := $(if $(wildcard /opt/wheels/torch-2.13.0+cpu*),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)
# `make lock` finds torch's +cpu build the same way. PyTorch's index also carries old copies of common packages
# (numpy, jinja2, ...): unsafe-best-match lets uv take the newest version from either index instead of PyTorch's.
LOCK_TORCH_SOURCE := $(if $(wildcard /opt/wheels/torch-2.13.0+cpu*),--find-links /opt/wheels --no-emit-find-links,--extra-index-url https://download.pytorch.org/whl/cpu)
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo demo-cluster test bench bento lock clean

$(STAMP): requirements/lock.txt pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_SOURCE) -r requirements/lock.txt 2>&1 | sed "/^WARNING: Location/d"
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | sed "/^WARNING: Location/d"
	$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; exit 1; }
	$(BIN)/sagestack --version
	touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install the locked stack plus sagestack.

demo: setup  ## The main job: the pipeline end to end, then one prediction from the served model.
	$(BIN)/sagestack demo

# The tests start real services: redis-server (Feast's Redis online store), PostgreSQL and nginx
# (the scaled-out topology of `sagestack up`), and chromium (the console's browser tests drive it
# through Playwright, which cannot download its own browser here). Install whatever is missing with
# apt-get, or stop here.
SYSTEM_COMMANDS := redis-server nginx /usr/lib/postgresql/*/bin/initdb chromium
system-deps:  ## System packages the tests start (redis-server, postgresql, nginx, chromium), installed with apt-get when missing.
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server postgresql nginx chromium >/dev/null; fi
	@for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || { echo "error: the tests need redis-server, postgresql, nginx and chromium; install them (apt-get install redis-server postgresql nginx chromium) and run make test again" >&2; exit 1; }; done

# The scaled-out topology on loopback (PostgreSQL + MLflow server, Redis + Feast server, endpoints A/B, nginx),
# the pipeline run against it, one prediction through the router, then everything stopped again.
CLUSTER_HOME ?= .sagestack-cluster
demo-cluster: setup system-deps  ## The demo on the scaled-out topology: up, pipeline, a prediction through nginx, down.
	export SAGESTACK_HOME=$(CLUSTER_HOME); trap '$(BIN)/sagestack down' EXIT; \
	$(BIN)/sagestack up; \
	. $(CLUSTER_HOME)/topology/env.sh; \
	$(BIN)/sagestack pipeline run --trainers fasttext,baseline --approve; \
	$(BIN)/sagestack up; \
	$(BIN)/python -c 'import httpx, json, sys; r = httpx.post(sys.argv[1] + "/predict", timeout=30, json={"reviews": ["Love this dress, it fits perfectly"]}); print(json.dumps(r.json(), indent=1)); r.raise_for_status()' \
		"$$($(BIN)/sagestack up --json | $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["router"])')"

# Two workers for the two cores (pytest-xdist); a file's tests stay on one worker, so its module fixtures
# (a served endpoint, a started console, a pipeline run) are made once. Files go out in collection order,
# the longest first (tests/conftest.py: LONGEST_FIRST). Every test also passes alone and in any order.
test: setup system-deps aws-client  ## Run the test suite (with serve-aws's client environment, .venv-aws, built from its lock).
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

bench: setup  ## Print the benchmark figures recorded in the README.
	$(BIN)/python bench/fasttext_accuracy.py
	$(BIN)/python bench/trainers_accuracy.py
	$(BIN)/python bench/baseline_latency.py
	$(BIN)/python bench/fasttext_speed.py
	$(BIN)/python bench/pipeline_overhead.py
	$(BIN)/python bench/serving_http.py
	$(BIN)/python bench/bias_scale.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/console_pages.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/review.py
	$(BIN)/python bench/cli_startup.py

bento: setup  ## Build the endpoint's Bento: the sagestack wheel into dist/, then bentoml build (BENTOML_HOME: BentoML's default, outside the checkout).
	@# From a copy of the sources: setuptools would pack whatever a stale build/ of the checkout still holds.
	tmp=$$(mktemp -d) && cp -r src components pipelines serving console feature_repo pyproject.toml setup.py README.md LICENSE "$$tmp"/ \
		&& find "$$tmp" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} + \
		&& $(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist "$$tmp" 2>&1 | sed "/^WARNING: Location/d"; \
		status=$$?; rm -rf "$$tmp"; exit $$status
	BENTOML_DO_NOT_TRACK=True $(BIN)/bentoml build -f serving/bentofile.yaml .

lock:  ## Re-resolve requirements/stack.in into requirements/lock.txt (needs uv).
	@command -v uv >/dev/null || { echo "error: make lock needs uv; install it (pip install uv) and run make lock again" >&2; exit 1; }
	cd requirements && uv pip compile stack.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		$(LOCK_TORCH_SOURCE) --index-strategy unsafe-best-match --custom-compile-command "make lock" -o lock.txt

# The client side of `sagestack serve-aws` (the SageMaker SDK 2.35, boto3, awswrangler, the aws CLI, nbclient and
# ipykernel) in its own environment: their pins conflict with the stack's lock. Rebuilt whole when the lock changes
# (the stamp holds the lock's sha256); a file lock lets concurrent callers (test workers) share one build.
AWS_VENV ?= .venv-aws
aws-client:  ## Create .venv-aws, the client environment of `sagestack serve-aws`, from requirements/aws-client.txt.
	@exec 9>"$(AWS_VENV).lock"; flock 9; \
	want="$$(sha256sum requirements/aws-client.txt | cut -d' ' -f1)"; \
	if [ "$$(cat $(AWS_VENV)/.installed 2>/dev/null)" != "$$want" ]; then \
		echo "... building $(AWS_VENV) from requirements/aws-client.txt" >&2; \
		rm -rf $(AWS_VENV) && $(PYTHON) -m venv $(AWS_VENV); \
		$(AWS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
			-r requirements/aws-client.txt 2>&1 | sed "/^WARNING: Location/d"; \
		$(AWS_VENV)/bin/python -m pip check >/dev/null || { $(AWS_VENV)/bin/python -m pip check; exit 1; }; \
		echo "$$want" > $(AWS_VENV)/.installed; \
	fi

aws-client-lock:  ## Re-resolve requirements/aws-client.in into requirements/aws-client.txt (needs uv).
	@command -v uv >/dev/null || { echo "error: make aws-client-lock needs uv; install it (pip install uv) and run it again" >&2; exit 1; }
	cd requirements && uv pip compile aws-client.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make aws-client-lock" -o aws-client.txt

clean:  ## Remove .venv and the demo's state (.sagestack, and .sagestack-cluster of make demo-cluster).
	rm -rf $(VENV) .sagestack $(CLUSTER_HOME)
