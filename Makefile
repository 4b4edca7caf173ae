# Two entry points (README quick start): `make plan` and `make test`.
# Both create .venv when missing and install what they need; `make test` also installs
# Debian's packer, qemu-utils and e2fsprogs when they are missing and we are root. cloud-init is
# never installed (Debian's package enables its boot services): only the JSON schema its `schema`
# command checks user data with is unpacked from the downloaded package into the venv.
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
	@echo "make: installing the locked requirements into $(VENV) (first run, or requirements.lock changed; a few minutes)" >&2
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r requirements.lock
	$(PIP) --no-deps -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	@echo "make: installing the locked test tools into $(VENV) (requirements-dev.lock)" >&2
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
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "please install Debian packages:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; \
	fi

# cloud-init's cloud-config schema, for the user data test: downloaded (apt-get download needs no
# root) and unpacked, never installed.
CLOUD_INIT_SCHEMA := $(VENV)/cloud-init-schema.json
$(CLOUD_INIT_SCHEMA):
	@echo "make: unpacking cloud-init's schema from Debian's package (not installing it) into $@" >&2
	@tmp=$$(mktemp -d) && (cd $$tmp && apt-get download -qq cloud-init || \
	{ echo "make: apt-get download cloud-init failed (run apt-get update first)" >&2; exit 1; }) && \
	dpkg-deb --fsys-tarfile $$tmp/cloud-init_*.deb | \
	tar -xO ./usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json > $@.tmp && \
	mv $@.tmp $@; status=$$?; rm -rf $$tmp; exit $$status

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

# pytest's exit 5 ("no tests collected") counts as a failure. One worker per core (pytest-xdist): most
# tests wait on a moto server, Packer or a child process, so a second worker fills those waits.
test: $(VENV)/.dev tools $(CLOUD_INIT_SCHEMA) lint
	$(PY) -m pytest -q -n auto; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status
