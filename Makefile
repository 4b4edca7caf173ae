# Two entry points (README quick start): `make plan` and `make test`.
# Both create .venv when missing and install what they need; `make test` also installs
# Debian's packer, qemu-utils and cloud-init (its `schema -c` checks the user data) when they are
# missing and we are root.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= staging

.PHONY: plan test lint tools

$(VENV)/.runtime: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

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
