# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv on first use; nothing needs a GPU, Docker or a cluster.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The pinned torch: from PyPI this is the CUDA build (about 3 GB; it runs on the CPU too). Any
# torch in the pyproject range works for users who already have one.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test lint bench gpu-check e2e e2e-cluster clean image image-push constraints

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(BIN)/tsdl tune --example --budget smoke

# The suite on 2 pytest-xdist workers, slowest modules first (TSDL_TEST_WORKERS=N to change; 0 or 1
# runs it serially); scripts/run-tests.sh says why.
test: install
	bash scripts/run-tests.sh $(BIN)/python

lint: install
	$(BIN)/ruff check tsdl tests bench

# The peers benchmark needs NeuralForecast (the `bench` extra); naming TORCH_SPEC again keeps
# pip from swapping the CPU torch for another build while it resolves NeuralForecast's deps.
bench: install
	$(BIN)/pip install --quiet -e ".[dev,bench]" "$(TORCH_SPEC)"
	$(BIN)/python bench/run_all.py --smoke

# Everything that needs a CUDA GPU in one command (< 5 min): the `-m gpu` tests and fp32 vs
# bf16/fp16 windows/s, peak memory and loss agreement; writes bench/results/gpu_check.json, exits
# non-zero on any failure. Without CUDA it is a dry run: every step skipped with its reason, exit 0.
gpu-check: install
	$(BIN)/python bench/gpu_check.py

e2e:
	bash scripts/kind-e2e.sh

# tsdl's RayJobs on a cluster of real Kubernetes parts: etcd, kube-apiserver, controller-manager,
# scheduler, two kubelet nodes (CPU, tainted GPU) with containerd/runc, kube-proxy, CoreDNS and the
# KubeRay operator, from their Go modules and Debian's packages (cached in ~/.cache/tsdl-e2e), the
# pods running the project's image built from the Dockerfile with podman. Needs root (CI). One line.
e2e-cluster: install
	$(BIN)/python scripts/e2e-cluster.py

# The two images of the chart's defaults, built from this checkout (needs Docker; docs/deploy.md
# "Images"). Until a release is tagged and its GHCR packages made public, build and push your own:
#   make image-push IMAGE=registry.example.com/team/tsdl
# then install with --set image=$(IMAGE):$(VERSION)-gpu (the head's -cpu image follows).
IMAGE   ?= ghcr.io/tsdl/tsdl
VERSION ?= $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

image:
	docker build --target cpu -t $(IMAGE):$(VERSION)-cpu .
	docker build --target gpu -t $(IMAGE):$(VERSION)-gpu .

image-push: image
	docker push $(IMAGE):$(VERSION)-cpu
	docker push $(IMAGE):$(VERSION)-gpu

# docker/constraints.txt from the venv whose tests passed (the image installs those versions).
constraints: install
	$(BIN)/python -m tsdl.deploy.constraints

clean:
	rm -rf $(VENV) mlruns tsdl_results .pytest_cache
