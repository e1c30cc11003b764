#!/usr/bin/env bash
# End-to-end test on a local kind cluster (needs Docker, kind, kubectl, helm, python3):
#   create cluster -> KubeRay operator (Helm, pinned) -> build + kind-load the image (with a
#   generated dataset) -> helm install helm/tsdl with the CPU smoke preset -> wait for the RayJob
#   to succeed -> check the MLflow run and its metrics -> tear down.
# Idempotent: reuses an existing cluster/operator/image and replaces an earlier smoke RayJob.
# A cluster that existed before the script ran is never deleted; one it created is, unless
# KEEP_CLUSTER=1. Each run logs to its own MLflow experiment, so runs left by an earlier use of
# the cluster cannot make the check pass.
# Fits a default Docker Desktop VM (4 CPUs, 8 GB): the smoke pods request 1.85 CPU and 5.75Gi.
# Usage: scripts/kind-e2e.sh            (make e2e)
#        KEEP_CLUSTER=1 scripts/kind-e2e.sh   keep the cluster afterwards for inspection
set -euo pipefail

KUBERAY_VERSION="${KUBERAY_VERSION:-1.7.0}"          # v1.7.0: newest 1.7 tag of ray-project/kuberay
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
CLUSTER="${CLUSTER:-tsdl-e2e}"
NAMESPACE="${NAMESPACE:-tsdl-e2e}"
RELEASE="${RELEASE:-tsdl-smoke}"
IMAGE="${IMAGE:-tsdl:dev}"
E2E_IMAGE="${E2E_IMAGE:-tsdl:e2e}"
TIMEOUT_S="${TIMEOUT_S:-1800}"                        # whole run, after the image build
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
RUN_ID="${RUN_ID:-$(date -u +%Y%m%d%H%M%S)-$$}"
EXPERIMENT="kind-smoke-${RUN_ID}"                      # unique per run: no stale-run passes
CREATED_CLUSTER=0
DATA_PATH="/home/ray/data/smoke.csv"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRESET="${REPO}/helm/tsdl/ci/kind-cpu-values.yaml"
WORK="$(mktemp -d)"
START_S="${SECONDS}"

log() { printf '\n==> [%4ss] %s\n' "$((SECONDS - START_S))" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
remaining() { echo $((TIMEOUT_S - (SECONDS - START_S))); }

require_tools() {
  local tool
  for tool in docker kind kubectl helm python3; do
    command -v "${tool}" >/dev/null || die "${tool} is not installed (see docs/deploy.md)"
  done
  docker info >/dev/null 2>&1 || die "no Docker engine is reachable (is the daemon running?)"
}

# A small long-format dataset (2 hourly series, 400 steps, daily season + noise), stdlib only.
generate_dataset() {
  local out="$1"
  python3 - "${out}" <<'PY'
import csv, math, random, sys
from datetime import datetime, timedelta
random.seed(0)
start = datetime(2024, 1, 1)
with open(sys.argv[1], "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["unique_id", "ds", "y"])
    for series, level in (("a", 10.0), ("b", 20.0)):
        for t in range(400):
            y = level + 3 * math.sin(2 * math.pi * t / 24) + 0.01 * t + random.gauss(0, 0.3)
            writer.writerow([series, (start + timedelta(hours=t)).isoformat(), f"{y:.4f}"])
PY
}

# Values layered over the CPU smoke preset: the e2e image and the generated dataset.
write_e2e_values() {
  local out="$1"
  cat >"${out}" <<EOF
image: ${E2E_IMAGE}
imagePullPolicy: IfNotPresent
name: ${RELEASE}
data:
  inImage: true
# A fresh results claim per run: the entrypoint resumes a study of the job's name if the storage
# holds one, and a reused cluster keeps its claims (helm.sh/resource-policy: keep).
storage:
  claimName: ${RELEASE}-results-${RUN_ID}
config:
  experiment:
    name: ${EXPERIMENT}
  data:
    path: ${DATA_PATH}
    name: smoke
    freq: h
EOF
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
    log "kind cluster ${CLUSTER} exists; reusing it (it will not be deleted)"
  else
    log "creating kind cluster ${CLUSTER} (${KIND_NODE_IMAGE})"
    CREATED_CLUSTER=1
    kind create cluster --name "${CLUSTER}" --image "${KIND_NODE_IMAGE}" --wait 300s
  fi
  kubectl config use-context "kind-${CLUSTER}" >/dev/null
}

install_operator() {
  log "installing the KubeRay operator ${KUBERAY_VERSION} with Helm"
  helm repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update >/dev/null
  helm upgrade --install kuberay-operator kuberay/kuberay-operator \
    --version "${KUBERAY_VERSION}" --namespace kuberay-system --create-namespace \
    --wait --timeout 300s
  kubectl wait --for=condition=Established crd/rayjobs.ray.io --timeout=60s
}

# The Dockerfile's CPU target on the Ray image of this machine's architecture (no CUDA stack:
# a fraction of the GPU image's size, and it runs natively on Apple Silicon).
cpu_build_args() {
  case "$(uname -m)" in
    arm64 | aarch64) echo "--build-arg RAY_CPU_IMAGE=rayproject/ray:2.60.0-py311-aarch64" ;;
    *) echo "" ;;
  esac
}

build_images() {
  log "building ${IMAGE} (Dockerfile target cpu)"
  # shellcheck disable=SC2046  # the build args are meant to split
  docker build --target cpu $(cpu_build_args) -t "${IMAGE}" "${REPO}"
  log "generating the smoke dataset and baking it into ${E2E_IMAGE}"
  mkdir -p "${WORK}/image"
  generate_dataset "${WORK}/image/smoke.csv"
  printf 'FROM %s\nCOPY --chown=1000:100 smoke.csv %s\n' "${IMAGE}" "${DATA_PATH}" \
    >"${WORK}/image/Dockerfile"
  docker build -t "${E2E_IMAGE}" "${WORK}/image"
  log "loading ${E2E_IMAGE} into kind"
  kind load docker-image "${E2E_IMAGE}" --name "${CLUSTER}"
}

install_chart() {
  log "installing helm/tsdl (${RELEASE}) with the CPU smoke preset"
  write_e2e_values "${WORK}/e2e-values.yaml"
  # A finished RayJob never runs again: replace the one from an earlier run.
  kubectl delete rayjob "${RELEASE}" -n "${NAMESPACE}" --ignore-not-found --wait --timeout=120s
  helm upgrade --install "${RELEASE}" "${REPO}/helm/tsdl" \
    --namespace "${NAMESPACE}" --create-namespace \
    -f "${PRESET}" -f "${WORK}/e2e-values.yaml" \
    --wait --timeout 300s
}

wait_for_job() {
  log "waiting for RayJob ${RELEASE} (up to $(remaining)s)"
  local state="" last=""
  while (($(remaining) > 0)); do
    state="$(kubectl get rayjob "${RELEASE}" -n "${NAMESPACE}" \
      -o jsonpath='{.status.jobDeploymentStatus}/{.status.jobStatus}' 2>/dev/null || true)"
    if [[ "${state}" != "${last}" ]]; then
      log "RayJob ${RELEASE}: ${state:-pending}"
      last="${state}"
    fi
    case "${state}" in
      Complete/SUCCEEDED) return 0 ;;
      Failed/* | ValidationFailed/* | Complete/*)
        kubectl describe rayjob "${RELEASE}" -n "${NAMESPACE}" | tail -n 30 >&2 || true
        kubectl logs -n "${NAMESPACE}" "job/${RELEASE}" --tail=100 >&2 || true
        describe_pending_pods
        die "RayJob ${RELEASE} ended as ${state}"
        ;;
    esac
    sleep 10
  done
  kubectl logs -n "${NAMESPACE}" "job/${RELEASE}" --tail=50 >&2 || true
  describe_pending_pods
  die "RayJob ${RELEASE} did not finish within ${TIMEOUT_S}s (last state: ${state:-none})"
}

# Why a pod does not run (Insufficient cpu/memory, an unbound claim, an image pull error).
describe_pending_pods() {
  local pod
  for pod in $(kubectl get pods -n "${NAMESPACE}" --field-selector=status.phase=Pending \
    -o name 2>/dev/null); do
    kubectl describe -n "${NAMESPACE}" "${pod}" | tail -n 15 >&2 || true
  done
}

check_mlflow() {
  # The cluster e2e's checks (tests/deploy/e2e_checks.py), through a port-forward: this
  # run's own experiment (its name holds RUN_ID, so nothing left from before can pass), the study
  # named after the RayJob FINISHED with metrics and artifacts, no run left RUNNING.
  log "checking the MLflow study ${RELEASE} in experiment ${EXPERIMENT}"
  local port=5000  # the server allows Host localhost:5000 (--allowed-hosts)
  kubectl port-forward -n "${NAMESPACE}" "svc/${RELEASE}-mlflow" "${port}:5000" >/dev/null 2>&1 &
  local forward=$!
  sleep 3
  local status=0
  (cd "${REPO}" && python3 -m tests.deploy.e2e_checks --tracking-uri "http://localhost:${port}" \
    --experiment "${EXPERIMENT}" --study "${RELEASE}") || status=$?
  kill "${forward}" 2>/dev/null || true
  return "${status}"
}

cleanup() {
  local rc=$?
  rm -rf "${WORK}"
  if [[ "${CREATED_CLUSTER}" != "1" ]]; then
    log "leaving kind cluster ${CLUSTER} alone (it existed before this run)"
  elif [[ "${KEEP_CLUSTER}" == "1" ]]; then
    log "keeping kind cluster ${CLUSTER} (kind delete cluster --name ${CLUSTER} removes it)"
  elif command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
    log "tearing down kind cluster ${CLUSTER}"
    kind delete cluster --name "${CLUSTER}" || true
  fi
  exit "${rc}"
}

main() {
  require_tools
  trap cleanup EXIT
  create_cluster
  install_operator
  build_images
  START_S="${SECONDS}"  # the timeout covers the cluster work, not the (cached) image build
  install_chart
  wait_for_job
  check_mlflow
  log "kind end-to-end test passed"
}

if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
  main "$@"
fi
