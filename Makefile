# Each target bootstraps the local virtualenv by itself, so a fresh clone needs nothing else.
# `make demo` installs the project with only what the demo needs ([demo]); the other targets add the
# test toolchain ([dev], which includes [demo]) to the same virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed-dev

# The SAM CLI and cfn-lint live in their own virtualenv: their pins must not meet the project's.
SAM_VENV := .venv-sam
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)

# Prometheus (server and promtool) comes from the Debian package; root installs it, others via sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The Kubernetes control plane the controlplane tests start (tools/controlplane): built from
# Kubernetes' own Go modules once per machine, into a cache outside the clone keyed by the Go
# version, the Kubernetes release and a hash of the program's sources, so a fresh clone reuses it
# and an edit rebuilds it. The tests find it through NODE_FLEET_CONTROLPLANE.
GO ?= go
CONTROLPLANE_SRC := tools/controlplane
KUBE_RELEASE := $(shell sed -n 's|^[[:space:]]*k8s.io/kubernetes v||p' $(CONTROLPLANE_SRC)/go.mod)
GO_VERSION := $(shell $(GO) env GOVERSION 2>/dev/null)
CONTROLPLANE_HASH := $(shell cat $(CONTROLPLANE_SRC)/go.mod $(CONTROLPLANE_SRC)/go.sum $(CONTROLPLANE_SRC)/*.go | sha256sum | cut -c1-12)
CONTROLPLANE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/node-fleet
export NODE_FLEET_CONTROLPLANE := $(CONTROLPLANE_CACHE)/controlplane-$(GO_VERSION)-k8s$(KUBE_RELEASE)-$(CONTROLPLANE_HASH)/controlplane

# sops and age (tools/sops): the encrypted Secrets of gitops/ and their test. Built the same way, once per
# machine, keyed by the Go version and the pinned modules (go.mod and go.sum); the tests find the folder
# through NODE_FLEET_SOPS_DIR.
SOPS_SRC := tools/sops
SOPS_VERSION := $(shell sed -n 's|^[[:space:]]*github.com/getsops/sops/v3 v\([^ ]*\).*|\1|p' $(SOPS_SRC)/go.mod)
AGE_VERSION := $(shell sed -n 's|^[[:space:]]*filippo.io/age v\([^ ]*\).*|\1|p' $(SOPS_SRC)/go.mod)
SOPS_HASH := $(shell cat $(SOPS_SRC)/go.mod $(SOPS_SRC)/go.sum | sha256sum | cut -c1-12)
export NODE_FLEET_SOPS_DIR := $(CONTROLPLANE_CACHE)/sops-$(GO_VERSION)-sops$(SOPS_VERSION)-age$(AGE_VERSION)-$(SOPS_HASH)

.PHONY: demo test fuzz lint bench clean sam prometheus controlplane controlplane-path sops sops-path

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION)
	touch $(SAM_STAMP)

sam: $(SAM_STAMP)

# sam build runs pip under the functions' runtime, python3.12, which must come first on PATH: pyenv's shim
# runs only the active version, so node_fleet/runtime_python.py finds a real one (or says how to get it).
# The first deploy asks for the parameters: make deploy SAM_DEPLOY_ARGS=--guided
.PHONY: build deploy
build: $(SAM_STAMP)
	runtime="$$($(PYTHON) tools/node_fleet/runtime_python.py)" && \
	  PATH="$$runtime:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build

deploy: build
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy $(SAM_DEPLOY_ARGS)

prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  echo "installing the Debian package prometheus"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

demo: $(DEMO_STAMP) prometheus
	$(BIN)/node-fleet demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tools tests bench
	$(BIN)/ruff format --check src tools tests bench

# nice: the cold build takes many minutes of both cores; the binary appears only when complete.
# -buildvcs=false: the version stamp would need git to read a clone it may not own.
$(NODE_FLEET_CONTROLPLANE):
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go is needed to build the control plane ($(CONTROLPLANE_SRC))"; exit 1; }
	@mkdir -p $(@D)
	@echo "building the Kubernetes $(KUBE_RELEASE) control plane with $(GO_VERSION) (once per machine, several minutes)"
	cd $(CONTROLPLANE_SRC) && nice $(GO) build -buildvcs=false -o $@.tmp . && mv $@.tmp $@

# Builds no test run has used for 14 days (another Go version, release or source) are removed:
# each is some 170 MB. The one in use is marked used on every run.
controlplane: $(NODE_FLEET_CONTROLPLANE)
	@touch $(<D)
	@find $(CONTROLPLANE_CACHE) -mindepth 1 -maxdepth 1 -name 'controlplane-*' -mtime +14 -exec rm -rf {} +

# Where the binary is (or will be): the tests ask here when NODE_FLEET_CONTROLPLANE is not set.
controlplane-path:
	@echo $(NODE_FLEET_CONTROLPLANE)

# nice, as above (some three minutes of both cores); the folder appears only when all three are built.
$(NODE_FLEET_SOPS_DIR)/sops:
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go is needed to build sops and age ($(SOPS_SRC))"; exit 1; }
	@echo "building sops $(SOPS_VERSION) and age $(AGE_VERSION) with $(GO_VERSION) (once per machine, a few minutes)"
	@rm -rf $(@D).tmp && mkdir -p $(@D).tmp
	cd $(SOPS_SRC) && nice $(GO) build -buildvcs=false -trimpath -ldflags=-s -o $(@D).tmp/ tool && rm -rf $(@D) && mv $(@D).tmp $(@D)

sops: $(NODE_FLEET_SOPS_DIR)/sops
	@touch $(NODE_FLEET_SOPS_DIR)
	@find $(CONTROLPLANE_CACHE) -mindepth 1 -maxdepth 1 -name 'sops-*' -mtime +14 -exec rm -rf {} +

sops-path:
	@echo $(NODE_FLEET_SOPS_DIR)

test: lint sam prometheus controlplane sops
	$(BIN)/pytest

# The fuzzing and the invariant suite with hypothesis' long profile: ten times the examples.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/pytest tests/reliability/test_fuzz_*.py tests/unit/test_invariants.py tests/unit/test_placement_property.py

# Every benchmark of the project; bench/README.md keeps the latest figures.
bench: $(STAMP) sam
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/floor.py
	$(BIN)/python bench/coldstart.py
	$(BIN)/python bench/bundle.py
	$(BIN)/python bench/cycle.py
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) $(SAM_VENV) build *.egg-info src/*.egg-info
