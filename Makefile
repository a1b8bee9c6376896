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
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z0-9_-]+:.*## /{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

# --- kubernetes: CRDs, images, a local kind cluster (docs/kubernetes.md) ---------------------

IMAGE        ?= cobstack:dev
GPU_IMAGE    ?= cobstack-gpu:dev
KIND_CLUSTER ?= cobstack
OPERATOR_NS  ?= cobstack-system
HELM         ?= $(if $(wildcard .tools/bin/helm),.tools/bin/helm,helm)

.PHONY: crds
crds: install ## Regenerate crds/ and charts/cobstack/crds/ from the CobStack and config models
	$(PY) -m cobstack_operator.crdgen

.PHONY: images
images: ## Build the CPU image (components + operator) and the GPU trainer image (needs Docker)
	@hack/kind/require.sh images docker
	docker build -f docker/Dockerfile -t $(IMAGE) .
	docker build -f docker/Dockerfile.gpu -t $(GPU_IMAGE) .

.PHONY: kind-up
kind-up: ## Create the local kind cluster (KIND_CLUSTER, default cobstack; needs Docker and kind)
	@hack/kind/require.sh kind-up docker kind
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' \
	  || kind create cluster --name $(KIND_CLUSTER) --config hack/kind/cluster.yaml

.PHONY: kind-load
kind-load: ## Build the CPU image and load it into the kind cluster (the sample trains on CPU)
	@hack/kind/require.sh kind-load docker kind
	docker build -f docker/Dockerfile -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)

.PHONY: deploy
deploy: ## helm install the operator, then apply examples/cobstack.yaml (simulated venues)
	@hack/kind/require.sh deploy kubectl $(HELM)
	$(HELM) upgrade --install cobstack charts/cobstack -n $(OPERATOR_NS) --create-namespace --wait \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE)))
	kubectl apply -f examples/cobstack.yaml

.PHONY: kind-e2e
kind-e2e: ## Wait for the sample CobStack to be Ready, check snapshots flow and the dashboard answers
	@hack/kind/require.sh kind-e2e kubectl curl
	hack/kind/e2e.sh

.PHONY: kind-down
kind-down: ## Delete the local kind cluster
	@hack/kind/require.sh kind-down kind
	kind delete cluster --name $(KIND_CLUSTER)
