# make drill: set everything up on a fresh machine and run the main drill on the embedded lab.
# make test:  set everything up and run the test suite (lab-free tests on every core, then the
#             integration tests against the lab).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := ceph-mon ceph-osd radosgw ceph-common restic haproxy postgresql openssh-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: drill drill-quarterly test typecheck setup lab-deps test-deps venv lint clean lab-down

# Evidence is signed with the key in .keys/ (made on first use; never committed).
SIGNING_KEY := .keys/drillbook-signing

# `make drill QUARTERLY=1` (or `make drill-quarterly`) runs the quarterly drill instead: a random
# Tier 1 asset and a scenario that fits it, seeded (SEED=N to replay one; the seed is in evidence).
drill: setup
	$(BIN)/drillbook lab up
	$(BIN)/drillbook keygen --out $(SIGNING_KEY) --if-missing
ifeq ($(QUARTERLY),1)
	DRILLBOOK_SIGNING_KEY=$(SIGNING_KEY).key $(BIN)/drillbook drill --random-tier1 $(if $(SEED),--seed $(SEED))
else
	DRILLBOOK_SIGNING_KEY=$(SIGNING_KEY).key $(BIN)/drillbook run artifact-deletion --variant soft
	DRILLBOOK_SIGNING_KEY=$(SIGNING_KEY).key $(BIN)/drillbook run artifact-deletion --variant purge
	DRILLBOOK_SIGNING_KEY=$(SIGNING_KEY).key $(BIN)/drillbook run annotation-db-loss
	DRILLBOOK_SIGNING_KEY=$(SIGNING_KEY).key $(BIN)/drillbook run registry-loss
	DRILLBOOK_SIGNING_KEY=$(SIGNING_KEY).key $(BIN)/drillbook run gpu-node-loss --variant crash
	DRILLBOOK_SIGNING_KEY=$(SIGNING_KEY).key $(BIN)/drillbook run gpu-node-loss --variant drain --asset lab-mlp-k8s
endif
	$(BIN)/drillbook history --evidence-dir evidence

drill-quarterly:
	$(MAKE) drill QUARTERLY=1

# pytest with the plugins the suite uses named rather than autoloaded: autoloading imports every
# installed plugin (locust's among them) and has pytest rewrite the asserts of each plugin's whole
# distribution, ours included, again in every xdist worker. Compiled modules are cached in
# __pycache__ as Python does by default (this machine's PYTHONDONTWRITEBYTECODE would have every
# process compile everything again), and compiled once before the workers start.
PYTEST := PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest \
	-p harness.pytest_plugin -p xdist.plugin -p _hypothesis_pytestplugin -p pytest_html.plugin \
	-p pytest_metadata.plugin -p pytest_timeout -p testinfra.plugin

# Two runs: the lab-free tests on every core (pytest-xdist), then the lab tests in one process
# (they share the one lab a session fixture starts). Both always run; either failing fails.
test: setup test-deps typecheck
	@PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q harness lab scenarios reports
	@rc=0; \
	$(PYTEST) -q -m "not lab" -n auto || rc=$$?; \
	$(PYTEST) -q -m lab || rc=$$?; \
	exit $$rc

# The library and the README's example scenario (what a site's own `mypy --strict` sees).
typecheck: venv
	$(BIN)/mypy --strict harness scenarios reports examples/registry-alias

setup: venv lab-deps

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The lab's real components come from Debian; installed only when missing.
lab-deps:
	@missing=""; for b in radosgw ceph-mon ceph-osd restic haproxy sshd; do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; done; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing lab packages (missing:$$missing)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

# The report's browser test needs headless Chromium (Debian package); installed only when missing.
test-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (browser test of the HTML report)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

lint: venv
	$(BIN)/ruff check harness scenarios reports lab tests
	$(BIN)/mypy harness scenarios reports lab

lab-down:
	-$(BIN)/drillbook lab down

clean: lab-down
	rm -rf $(VENV) .lab evidence *.egg-info
