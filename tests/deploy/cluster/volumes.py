"""Local disks as PersistentVolumes with node affinity: what a local-volume provisioner makes.

Behind the default `WaitForFirstConsumer` class, a ReadWriteOnce claim binds where the scheduler
puts its first Pod and pins every later Pod to that Node, as a cloud disk does.
"""

from __future__ import annotations

from pathlib import Path

from tests.deploy.cluster.api import Api
from tests.deploy.cluster.controlplane import STORAGE_CLASS


def make_local_volumes(api: Api, disks: Path, node: str, count: int) -> None:
    """Local disks of this node as PersistentVolumes (what a local-volume provisioner makes)."""
    for i in range(count):
        name = f"{node}-disk-{i}"
        path = disks / name
        path.mkdir(parents=True, exist_ok=True)
        api.delete(f"/api/v1/persistentvolumes/{name}")
        api.create(
            "/api/v1/persistentvolumes",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"tsdl-e2e/node": node}},
                "spec": {
                    "capacity": {"storage": "200Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "local": {"path": str(path)},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": [node],
                                        }
                                    ]
                                }
                            ]
                        }
                    },
                },
            },
        )
