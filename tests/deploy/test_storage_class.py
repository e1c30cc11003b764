"""N6: a claim of the default StorageClass on a cluster without one fails `helm install` at once.

`helm template` (and helm-python-sdk) contacts no cluster, so `lookup` returns an empty map there and
the check is skipped. The check itself is the chart's `tsdl.checkDefaultClass` helper; these tests
run it in the real Helm engine on what `lookup "storage.k8s.io/v1" "StorageClass" "" ""` returns
from a cluster (a List with `items`). The cluster e2e proves the `lookup` wiring itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from tsdl.deploy.chart import CHART_DIR, render_chart


def _check(tmp_path: Path, classes: dict) -> str:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.0.1\n")
    shutil.copy(CHART_DIR / "templates" / "_helpers.tpl", chart / "templates" / "_helpers.tpl")
    (chart / "templates" / "probe.yaml").write_text(
        '{{- include "tsdl.checkDefaultClass" (dict "classes" .Values.classes "what" '
        '"storage.storageClassName") }}\nkind: ConfigMap\n'
    )
    with helm.Chart.load(str(chart)) as loaded:
        return loaded.render(values={"classes": classes}, name="p", namespace="ml")["probe/templates/probe.yaml"]


def _class(name: str, default: bool = False) -> dict:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}}


def test_no_default_class_fails_naming_the_classes_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(helm.HelmError) as caught:
        _check(tmp_path, {"items": [_class("gp2"), _class("efs-sc")]})
    text = str(caught.value)
    assert "no default StorageClass" in text and "gp2, efs-sc" in text
    assert "storage.storageClassName=CLASS" in text and "is-default-class" in text


def test_no_class_at_all_says_to_install_a_csi_driver(tmp_path: Path) -> None:
    with pytest.raises(helm.HelmError, match="EBS CSI add-on"):
        _check(tmp_path, {"items": []})


def test_a_default_class_or_no_cluster_passes(tmp_path: Path) -> None:
    _check(tmp_path, {"items": [_class("gp2"), _class("gp3", default=True)]})
    _check(tmp_path, {})  # helm template: lookup is empty, nothing to check


def test_the_chart_wires_the_check_to_both_claims() -> None:
    """Without a cluster the chart still renders; with a class set, no lookup is needed."""
    kinds = [o["kind"] for o in render_chart({"job": {"enabled": False}})]
    assert kinds.count("PersistentVolumeClaim") == 2
    for template in ("pvc.yaml", "mlflow.yaml"):
        text = (CHART_DIR / "templates" / template).read_text()
        assert 'lookup "storage.k8s.io/v1" "StorageClass" "" ""' in text
    assert yaml.safe_load((CHART_DIR / "values.yaml").read_text())["storage"]["storageClassName"] is None
