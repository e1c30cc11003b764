"""`python -m tests.deploy.cluster`: start the e2e cluster, print its kubeconfig, wait for Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time

from tests.deploy.cluster import E2ECluster, unavailable


def main() -> int:
    reason = unavailable()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    cluster = E2ECluster()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.up()
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in cluster.timings.items())
        print(f"cluster up ({timings}); export KUBECONFIG={cluster.kubeconfig}", flush=True)
        print(
            f"workdir {cluster.workdir}; S3 at {cluster.s3_endpoint}; Ctrl-C stops it", flush=True
        )
        while True:
            time.sleep(5)
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.down()


if __name__ == "__main__":
    sys.exit(main())
