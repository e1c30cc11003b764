"""Render `helm/tsdl` with the real Helm engine, and generate the plain manifests in `k8s/`.

Uses `helm-python-sdk` (Helm v4 as a shared library, no binary needed; in the `dev` extra).
`python -m tsdl.deploy.chart` rewrites `k8s/`; tests/deploy fails when `k8s/` has drifted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tsdl.deploy._yaml import dump_manifests
from tsdl.errors import DeployError

__all__ = [
    "CHART_DIR",
    "K8S_DIR",
    "K8S_VARIANTS",
    "k8s_manifest_text",
    "main",
    "render_chart",
]

_REPO = Path(__file__).resolve().parents[2]
CHART_DIR = _REPO / "helm" / "tsdl"
K8S_DIR = _REPO / "k8s"
# The job files use the prerequisites file's ServiceAccount and claim instead of their own, so
# `kubectl delete -f k8s/rayjob-train.yaml` never deletes what the tune job still uses.
_SHARED = {
    "serviceAccount": "tsdl",
    "storage": {"claimName": "tsdl-results", "createClaim": False},
    "mlflow": {"trackingUri": "http://tsdl-mlflow:5000", "server": {"enabled": False}},
    "rbac": {"create": False},
}
# k8s/<file>: (release name, values), from the chart's documented defaults.
K8S_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "prerequisites.yaml": ("tsdl", {"job": {"enabled": False}}),
    "rayjob-tune.yaml": ("tsdl-tune", {"mode": "tune", **_SHARED}),
    "rayjob-train.yaml": ("tsdl-train", {"mode": "train", **_SHARED}),
}
# Rendered in this namespace, which is then removed: `kubectl apply -n NS` picks the namespace.
_RENDER_NAMESPACE = "default"
# Dependency order for `kubectl apply -f`: what the RayJob references comes first.
_KIND_ORDER = (
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "PersistentVolumeClaim",
    "ConfigMap",
    "NetworkPolicy",
)


def render_chart(
    values: dict[str, Any] | None = None,
    *,
    release: str = "tsdl",
    namespace: str = "default",
    chart_dir: Path = CHART_DIR,
) -> list[dict[str, Any]]:
    """`helm template` of the chart: schema-validated values -> parsed Kubernetes objects.

    Returns:
        The rendered objects (NOTES.txt excluded), ordered so that `kubectl apply` succeeds.

    Raises:
        DeployError: when the values fail the chart's schema or a template's `fail` check.
    """
    try:
        import helm_python as helm
    except ImportError:
        raise DeployError(
            "rendering the chart needs helm-python-sdk", hint="pip install -e '.[dev]'"
        ) from None
    try:
        with helm.Chart.load(chart_dir) as chart:
            rendered = chart.render(values=values or {}, name=release, namespace=namespace)
    except helm.HelmError as exc:
        raise DeployError(
            f"helm template {chart_dir} failed: {' '.join(str(exc).split())}",
            hint="fix the values named above (see helm/tsdl/values.yaml)",
        ) from None
    objects = [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    return sorted(objects, key=_apply_rank)


def k8s_manifest_text(filename: str) -> str:
    """The expected content of `k8s/<filename>`, rendered from the chart's defaults.

    The objects carry no namespace (`kubectl apply -n NS` sets it), are labelled
    `managed-by: kubectl`, and lose Helm's `resource-policy` annotation, which kubectl ignores.
    """
    release, values = K8S_VARIANTS[filename]
    objects = [
        _for_kubectl(obj)
        for obj in render_chart(values, release=release, namespace=_RENDER_NAMESPACE)
    ]
    overrides = " ".join(_set_flags(values))
    if filename == "prerequisites.yaml":
        usage = (
            "# Once per namespace: kubectl apply -n NS -f k8s/prerequisites.yaml (ServiceAccount,\n"
            "# submitter Role, MLflow server tsdl-mlflow, ReadWriteOnce results claim: one node;\n"
            "# across nodes use storage.uri or a ReadWriteMany claim, docs/deploy.md). `kubectl\n"
            "# delete -f` of this file deletes the claim.\n"
        )
    else:
        usage = (
            f"# Needs the KubeRay operator and k8s/prerequisites.yaml in the namespace\n"
            f"# (docs/deploy.md). Apply: kubectl apply -n NS -f k8s/{filename}\n"
        )
    header = (
        f"# Generated from helm/tsdl by `python -m tsdl.deploy.chart`; do not edit by hand.\n"
        f"# Equivalent: helm template {release} helm/tsdl {overrides}\n" + usage
    )
    return header + dump_manifests(objects)


def _set_flags(values: dict[str, Any], prefix: str = "") -> list[str]:
    flags: list[str] = []
    for key, value in values.items():
        if isinstance(value, dict):
            flags += _set_flags(value, f"{prefix}{key}.")
        else:
            flags.append(
                f"--set {prefix}{key}={str(value).lower() if isinstance(value, bool) else value}"
            )
    return flags


def _for_kubectl(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop the namespace and Helm's bookkeeping from one rendered object (recursively for the
    labels of pod templates)."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            labels = node.get("labels")
            if isinstance(labels, dict) and labels.get("app.kubernetes.io/managed-by") == "Helm":
                labels["app.kubernetes.io/managed-by"] = "kubectl"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    metadata = obj.get("metadata", {})
    metadata.pop("namespace", None)
    annotations = metadata.get("annotations", {})
    annotations.pop("helm.sh/resource-policy", None)
    if "annotations" in metadata and not annotations:
        del metadata["annotations"]
    walk(obj)
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite `k8s/` from the chart (`--check` only reports drift)."""
    parser = argparse.ArgumentParser(prog="python -m tsdl.deploy.chart", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if k8s/ is out of date")
    args = parser.parse_args(argv)
    stale = []
    for filename in K8S_VARIANTS:
        path = K8S_DIR / filename
        text = k8s_manifest_text(filename)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if args.check and stale:
        print(f"out of date: {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0


def _apply_rank(obj: dict[str, Any]) -> tuple[int, str]:
    kind = obj.get("kind", "")
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return rank, obj.get("metadata", {}).get("name", "")


if __name__ == "__main__":
    sys.exit(main())
