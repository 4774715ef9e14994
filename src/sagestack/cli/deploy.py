"""``sagestack up`` / ``down`` (the scaled-out topology on loopback) and ``sagestack deploy`` (A/B traffic)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, emit, progress, settings

app = typer.Typer(help="Production variants: shift traffic between variant A (@champion) and B (@challenger).",
                  no_args_is_help=True)


def _topology():
    from sagestack.deploy.topology import Topology
    from sagestack.bento.launch import serve_command

    return Topology(settings(), serve_command)


def up(json_output: bool = JsonOpt) -> None:
    """Start the scaled-out topology on loopback: PostgreSQL + MLflow server, Redis + Feast feature server,
    endpoints A and B, nginx as the weighted router. Run it again after the pipeline to start the endpoints."""
    topology = _topology()
    statuses = topology.up(progress(json_output) or (lambda line: None))
    env_file = topology.env_file
    lines = [f"{s.name:11} {s.state:8} {s.url or ''} {s.detail}".rstrip() for s in statuses]
    lines += [f"router: {topology.url('nginx')}",
              f"clients use the same settings as the services: source {env_file}"]
    emit({"services": [vars(s) for s in statuses], "router": topology.url("nginx"), "env_file": str(env_file)},
         json_output, lines)


def down(json_output: bool = JsonOpt) -> None:
    """Stop every service of the topology (its data stays for the next `up`)."""
    stopped = _topology().down()
    emit({"stopped": stopped}, json_output, [f"stopped: {', '.join(stopped) or 'nothing was running'}"])


@app.command("shift-traffic")
def shift_traffic(
    a: int = typer.Option(..., "--a", help="Percent of requests to variant A (@champion)."),
    b: int = typer.Option(..., "--b", help="Percent of requests to variant B (@challenger)."),
    route_file: Optional[Path] = typer.Option(
        None, "--route-file", metavar="PATH",
        help="The HTTPRoute manifest to patch (default: k8s/base/endpoint/httproute.yaml when run in the checkout); "
             "a new file gets sagestack's route, an existing HTTPRoute keeps all but the two variants' weights."),
    json_output: bool = JsonOpt,
) -> None:
    """Set the A/B weights: in the HTTPRoute manifest and, live, in the local topology's router.

    On a cluster, apply the patched manifest (`kubectl apply -k k8s/overlays/...`) to move the traffic. With
    neither a manifest (outside the checkout, no --route-file) nor a local topology there is nothing to change:
    that is an error. A variant given traffic (weight above 0) needs an Approved version behind its alias
    (reviews-sentiment@champion for A, @challenger for B); a refused shift changes nothing.
    """
    from sagestack.deploy.traffic import ROUTE_FILE, TrafficSplit
    from sagestack.errors import ConfigError

    split = TrafficSplit(a, b)
    if route_file is not None and not route_file.parent.is_dir():
        raise ConfigError(f"{route_file.parent} is not a folder; pass the HTTPRoute file of your k8s/ checkout")
    target = route_file or (ROUTE_FILE if ROUTE_FILE.parent.is_dir() else None)
    reloaded = _topology().shift_traffic(split, target)
    lines = [f"traffic: A {split.a} % / B {split.b} %",
             f"manifest: {target} patched" if target else "manifest: none here (pass --route-file PATH)",
             "router: reloaded" if reloaded else "router: not running (the split applies at the next `sagestack up`)"]
    emit({"a": split.a, "b": split.b, "route_file": str(target) if target else None, "router_reloaded": reloaded},
         json_output, lines)
