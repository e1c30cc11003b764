"""Validate Kubernetes objects offline: KubeRay CRDs via jsonschema, core kinds via kubernetes-validate.

The CRDs' OpenAPI v3 schemas are turned into JSON Schema the way the API server reads them:
`x-kubernetes-int-or-string` accepts both, `nullable` allows null, and objects without
`x-kubernetes-preserve-unknown-fields` reject unknown fields (strict field validation; the
server would otherwise prune a mistyped field silently). CEL rules (`x-kubernetes-validations`)
are not evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

__all__ = ["ObjectValidator"]

_KUBE_VERSION = "1.33.0"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 40k lines


class ObjectValidator:
    """Validate any object `helm template` or `k8s/` produces; returns readable error lines."""

    def __init__(self, crd_dir: Path) -> None:
        self._crd_validators: dict[tuple[str, str], jsonschema.Draft7Validator] = {}
        for path in sorted(crd_dir.glob("*.yaml")):
            crd = yaml.load(path.read_text(), Loader=_LOADER)
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _to_json_schema(version["schema"]["openAPIV3Schema"])
                self._crd_validators[(f"{group}/{version['name']}", kind)] = (
                    jsonschema.Draft7Validator(schema)
                )

    def errors(self, obj: dict[str, Any]) -> list[str]:
        """Every schema violation of `obj`, as `<kind>/<name>: <path>: <message>` lines."""
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        validator = self._crd_validators.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if validator is not None:
            return [
                f"{where}: {'.'.join(str(p) for p in err.absolute_path)}: {err.message}"
                for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
            ]
        try:
            kubernetes_validate.validate(obj, _KUBE_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{where}: no schema for {obj.get('apiVersion')} {obj.get('kind')}"]
        except kubernetes_validate.ValidationError as exc:
            return [f"{where}: {'.'.join(str(p) for p in exc.absolute_path)}: {exc.message}"]
        return []


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out
