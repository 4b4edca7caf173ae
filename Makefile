# Two entry points (README quick start): `make plan` and `make test`.
# Both create .venv when missing and install what they need; `make test` also installs
# Debian's packer, qemu-utils and cloud-init (its `schema -c` checks the user data) when they are
# missing and we are root.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= staging

.PHONY: plan test lint tools lock

# Installs come from the hash-locked files (requirements.lock: the program, the CLI and the policy pack;
# requirements-dev.lock: that plus tests and tools), so every machine and CI get the same bytes. The
# project itself is installed on its own (an editable install has no hash to check).
PIP := $(PY) -m pip install -q --disable-pip-version-check

$(VENV)/.runtime: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r requirements.lock
	$(PIP) --no-deps -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	$(PIP) --require-hashes -r requirements-dev.lock
	@touch $@

# After editing requirements.txt, policy/requirements.txt or requirements-dev.txt: re-resolve the locks
# (pip-tools, from PyPI; review the diff like any dependency bump). The dev lock is constrained by the
# runtime one, so both install the same versions of what they share.
LOCK_FLAGS := --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -q
lock: $(VENV)/.runtime
	$(PIP) pip-tools
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --output-file requirements.lock requirements.txt policy/requirements.txt
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --output-file requirements-dev.lock requirements-dev.in

# The main job on the local default: the offline view of the staging stack (no cloud, no credentials).
# Exit 1 when a guardrail is violated, 2 on bad input.
plan: $(VENV)/.runtime
	$(PY) -m fleet plan --stack $(STACK)

tools:
	@missing=""; command -v packer >/dev/null || missing="$$missing packer"; \
	command -v qemu-img >/dev/null || missing="$$missing qemu-utils"; \
	command -v mkfs.ext4 >/dev/null || missing="$$missing e2fsprogs"; \
	command -v cloud-init >/dev/null || missing="$$missing cloud-init"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "please install Debian packages:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; \
	fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

# pytest's exit 5 ("no tests collected") counts as a failure.
test: $(VENV)/.dev tools lint
	$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status
