"""docs/deploy.md "For platform teams": its commands install what it says, its YAML is valid,
and its table of defaults quotes the chart's actual defaults."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

from tests.deploy._helm_cli import helm_cli_merge as _helm_cli_merge
from tsdl.deploy.chart import CHART_DIR, render_chart

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _section() -> str:
    text = DOCS.read_text()
    return text[text.index("## For platform teams") :]


def _helm_install_values(command: str) -> tuple[str, str, dict[str, Any]]:
    """Release, namespace and values of a documented `helm install`, parsed by Helm itself."""
    args = shlex.split(command.replace("\\\n", " "))
    release, namespace, values = args[2], "default", {}
    for index, arg in enumerate(args):
        if arg == "-n":
            namespace = args[index + 1]
        elif arg == "--set":
            values = _helm_cli_merge(values, helm.parse_set_string(args[index + 1]))
        elif arg == "--set-json":
            values = _helm_cli_merge(values, helm.parse_set_json(args[index + 1]))
    return release, namespace, values


def test_the_documented_install_creates_exactly_the_listed_prerequisites() -> None:
    block = re.search(r"```bash\n(helm install tsdl .*?)\n#", _section(), re.DOTALL)
    assert block is not None
    release, namespace, values = _helm_install_values(block.group(1))
    objects = render_chart(values, release=release, namespace=namespace)
    created = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert created == {
        ("ServiceAccount", "tsdl"),
        ("Role", "tsdl-submitter"),
        ("RoleBinding", "tsdl-submitter"),
        ("PersistentVolumeClaim", "tsdl-results"),
        ("Deployment", "tsdl-mlflow"),
        ("Service", "tsdl-mlflow"),
        ("PersistentVolumeClaim", "tsdl-mlflow"),
        ("NetworkPolicy", "tsdl-mlflow"),
    }
    for kind, name in created - {("RoleBinding", "tsdl-submitter")}:
        assert f"{kind} `{name}`" in _section()
    binding = next(o for o in objects if o["kind"] == "RoleBinding")
    assert binding["subjects"][0]["name"] == "team-a"


def test_the_documented_yaml_is_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", _section(), re.DOTALL)
    core = [d for b in blocks for d in yaml.safe_load_all(b) if d["apiVersion"] == "v1"]
    assert [d["kind"] for d in core] == ["ResourceQuota"]
    for document in core:
        kubernetes_validate.validate(document, "1.33.0", strict=True)
    kinds = [d["kind"] for b in blocks for d in yaml.safe_load_all(b)]
    assert {"ClusterQueue", "LocalQueue"} <= set(kinds)


def test_the_cost_table_quotes_the_real_defaults() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    table = _section().split("### What each default costs", 1)[1]
    for key in ("ttlSecondsAfterFinished", "preRunningDeadlineSeconds", "activeDeadlineSeconds"):
        assert f"`{key}: {values[key]}`" in table
    assert f"`rayAuth: {values['rayAuth']}`" in table
    assert f"`autoscaling: {str(values['autoscaling']).lower()}`" in table
    assert values["networkPolicy"]["allowedNamespaces"] == ["kuberay-system"]
    assert "`[kuberay-system]`" in _section()
