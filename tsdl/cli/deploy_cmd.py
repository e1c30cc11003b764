"""`tsdl render|submit|status|logs|cancel`: a config as a KubeRay RayJob, and following it."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tsdl.cli._common import add_config_args, config_from_args
from tsdl.config import TsdlConfig

if TYPE_CHECKING:
    from tsdl.deploy import RayJobClient

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    render = subparsers.add_parser(
        "render", help="print the RayJob (and its ConfigMap) for a config"
    )
    _add_build_args(render)
    render.add_argument(
        "--values", action="store_true", help="print Helm values for helm/tsdl instead of manifests"
    )
    render.set_defaults(handler=_render)

    submit = subparsers.add_parser("submit", help="create the RayJob on the current kube context")
    _add_build_args(submit)
    submit.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    submit.add_argument(
        "--timeout",
        type=float,
        default=24 * 3600,
        metavar="S",
        help="--wait limit (default: 1 day)",
    )
    submit.add_argument(
        "--poll",
        type=float,
        default=10.0,
        metavar="S",
        help="--wait polling interval (default: 10)",
    )
    submit.set_defaults(handler=_submit)

    status = subparsers.add_parser("status", help="status of a RayJob (all tsdl jobs without JOB)")
    status.add_argument("job", nargs="?", metavar="JOB")
    _add_namespace(status)
    status.set_defaults(handler=_status)

    logs = subparsers.add_parser("logs", help="driver output of a RayJob (its submitter pod)")
    logs.add_argument("job", metavar="JOB")
    logs.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    logs.add_argument(
        "--previous",
        action="store_true",
        help="every submitter attempt still kept, oldest first (after a head loss the newest one "
        "shows only the resumed job)",
    )
    _add_namespace(logs)
    logs.set_defaults(handler=_logs)

    cancel = subparsers.add_parser("cancel", help="delete a RayJob; KubeRay tears its cluster down")
    cancel.add_argument("job", metavar="JOB")
    _add_namespace(cancel)
    cancel.set_defaults(handler=_cancel)


def _add_build_args(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, required=True)
    _add_namespace(parser, default=None)
    parser.add_argument("--image", help="container image (deploy.image)")
    parser.add_argument(
        "--gpus-per-worker", type=int, metavar="N", help="GPUs per worker pod (deploy.worker.gpu)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="worker pods (deploy.worker.replicas)"
    )
    parser.add_argument(
        "--storage",
        metavar="URI|CLAIM",
        help="results and checkpoints: s3://BUCKET/PREFIX (deploy.storage.uri) or an existing "
        "ReadWriteMany claim (deploy.storage.claim_name)",
    )


def _add_namespace(parser: argparse.ArgumentParser, default: str | None = "default") -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        default=default,
        help=f"Kubernetes namespace (default: {default or 'deploy.namespace'})",
    )


def _config(args: argparse.Namespace) -> TsdlConfig:
    from tsdl.deploy import with_overrides

    return with_overrides(
        config_from_args(args),
        namespace=args.namespace,
        image=args.image,
        gpus_per_worker=args.gpus_per_worker,
        workers=args.workers,
        storage=args.storage,
    )


def _render(args: argparse.Namespace) -> int:
    from tsdl.deploy import build_manifests, chart_values_yaml
    from tsdl.deploy._yaml import dump_manifests

    config = _config(args)
    _check_pod_access(config)
    if args.values:
        sys.stdout.write(chart_values_yaml(config))
        return 0
    manifests = build_manifests(config)
    sys.stdout.write(dump_manifests(manifests))
    return 0


def _check_pod_access(config: TsdlConfig) -> None:
    """Refuse a data.path the pods cannot read; say (stderr) when the pods' tracking URI
    replaces the config's own, so stdout stays a clean manifest."""
    from tsdl.deploy.access import check_data_path, tracking_note

    check_data_path(config)
    note = tracking_note(config)
    if note:
        print(note, file=sys.stderr)


def _submit(args: argparse.Namespace) -> int:
    from tsdl.deploy import build_manifests

    config = _config(args)
    _check_pod_access(config)
    manifests = build_manifests(config)
    client = _client(config.deploy.namespace)
    config = _with_claims_access_modes(config, client)
    manifests = build_manifests(config)
    created = client.submit(manifests)
    print(f"created RayJob {config.deploy.namespace}/{created.name} ({config.deploy.mode})")
    if not args.wait:
        print(f"follow it: tsdl status {created.name} -n {config.deploy.namespace}")
        return 0
    final = client.wait(
        created.name,
        timeout_s=args.timeout,
        poll_s=args.poll,
        on_change=lambda s: print(s.one_line()),
    )
    print(f"RayJob {created.name} succeeded")
    return 0 if final.succeeded else 1


def _with_claims_access_modes(config, client):
    """The config with the results claim's real access modes: a ReadWriteOnce claim keeps the
    head on the worker's node, a ReadWriteMany one leaves the scheduler free (N1)."""
    from tsdl.deploy.rayjob import claim_name

    storage = config.deploy.storage
    if storage.uri is not None:
        return config
    modes = client.claim_access_modes(claim_name(config.deploy))
    if not modes or modes == storage.access_modes:
        return config
    storage = storage.model_copy(update={"access_modes": modes})
    return config.model_copy(update={"deploy": config.deploy.model_copy(update={"storage": storage})})


def _status(args: argparse.Namespace) -> int:
    client = _client(args.namespace, args.job)
    statuses = [client.status(args.job)] if args.job else client.list()
    if not statuses:
        print(f"no tsdl RayJobs in namespace {args.namespace}")
    for status in statuses:
        print(status.one_line())
        if not status.finished:
            for line in client.pod_waits(status.name):  # what its pods wait on, if anything
                print(f"  {line}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    sys.stdout.write(_client(args.namespace, args.job).logs(args.job, tail_lines=args.tail, previous=args.previous))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    _client(args.namespace, args.job).cancel(args.job)
    print(f"deleted RayJob {args.namespace}/{args.job}; KubeRay removes its Ray cluster")
    return 0


def _client(namespace: str, job: str | None = None) -> RayJobClient:
    """A client whose retry notices ("... retrying in 8 s (attempt 2 of 6)") go to stderr, one
    line each, so stdout keeps only the job's statuses.

    The namespace and job name become parts of API URLs: the namespace is checked like
    deploy.namespace, the job like every tsdl name (tsdl.config.names), before any request.
    """
    from tsdl.config import parse_config
    from tsdl.config.names import check_name
    from tsdl.deploy import RayJobClient

    parse_config({}, overrides=[("deploy.namespace", namespace)], source="-n/--namespace")
    if job is not None:
        check_name(job, "JOB")

    return RayJobClient(namespace=namespace, notify=lambda line: print(line, file=sys.stderr))
