# cobstack — every developer and user action is a target. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY_SYS   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed-$(shell cat pyproject.toml 2>/dev/null | md5sum | cut -c1-12)
DEB_PKGS := redis-server chromium
ARGS     ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- setup (idempotent, cached) -------------------------------------------------------------

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dashboard,operator,train,dev]'
	@rm -f $(VENV)/.installed-*; touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install cobstack with every extra (cached)

.PHONY: system-deps
system-deps: ## Install Debian packages the tests need (redis-server, chromium) when missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: could not apt-get install$$missing; install them by hand and rerun" >&2; exit 1; }; \
	fi

# --- run ------------------------------------------------------------------------------------

.PHONY: run
run: install ## Run the whole stack in one process on simulated venues (dashboard on 127.0.0.1:8000)
	$(VENV)/bin/cobstack up --sim $(ARGS)

.PHONY: test
test: install system-deps tools ## Run the whole suite (installs redis-server, chromium, builds the control plane; starts its own)
	$(PY) -m pytest -q $(ARGS)

.PHONY: bench
bench: install ## Run the benchmarks (writes figures to stdout; see docs/benchmarks.md)
	$(VENV)/bin/cobstack bench $(ARGS)

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

# --- tools: pinned control-plane binaries for the k8s tests (docs/testing-k8s.md) ------------

.PHONY: tools
tools: ## Build pinned etcd, kube-apiserver, kube-controller-manager, kubectl, helm into .tools/bin (cached)
	@hack/tools/build.sh

.PHONY: tools-gomod
tools-gomod: ## Regenerate hack/tools/*/go.mod from hack/tools/versions.env (after a version bump)
	@hack/tools/gen-gomods.sh
