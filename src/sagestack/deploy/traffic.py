"""A/B production variants: the traffic split between variant A (``@champion``) and B (``@challenger``).

One split, rendered two ways: a Gateway API ``HTTPRoute`` for a cluster and an nginx upstream
for the local topology, so both routers always carry the same weights (course 3: 50/50, then
0/100). A variant takes production traffic only when its registered version is Approved.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sagestack.data.atomic import atomic_file
from sagestack.errors import ConfigError, RegistryError

# Variant name -> the registry alias it serves.
VARIANTS = {"A": "champion", "B": "challenger"}
ENDPOINT_PORT = 3000  # the BentoML container's port behind each variant's Service
ROUTE_NAME = "sentiment"
GATEWAY_NAME = "sagestack-gateway"


@dataclass(frozen=True)
class TrafficSplit:
    """Percentages of requests sent to variant A and variant B (whole numbers adding up to 100)."""

    a: int = 50
    b: int = 50

    def __post_init__(self) -> None:
        for name, value in (("a", self.a), ("b", self.b)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
                raise ConfigError(f"--{name} must be a whole percentage from 0 to 100, got {value!r}")
        if self.a + self.b != 100:
            raise ConfigError(f"--a and --b must add up to 100, got {self.a} + {self.b} = {self.a + self.b}")

    def weights(self) -> dict[str, int]:
        """Weight per variant name."""
        return {"A": self.a, "B": self.b}

    def save(self, path: Path) -> None:
        """Write the split as JSON (atomically)."""
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> "TrafficSplit":
        """The split saved at ``path``, or 50/50 when none was saved."""
        return cls(**json.loads(path.read_text())) if path.is_file() else cls()


def service_name(variant: str) -> str:
    """The Kubernetes Service (and Deployment) of a variant's endpoint."""
    return f"sentiment-{variant.lower()}"


def httproute(split: TrafficSplit, namespace: str | None = None) -> dict:
    """The Gateway API ``HTTPRoute`` that splits ``/`` between the two variants' Services by weight.

    A variant at weight 0 stays listed (a Gateway sends it nothing), so shifting back is one edit.
    """
    metadata: dict = {"name": ROUTE_NAME, "labels": {"app.kubernetes.io/part-of": "sagestack"}}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": {
            "parentRefs": [{"name": GATEWAY_NAME}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": service_name(v), "port": ENDPOINT_PORT, "weight": w}
                                for v, w in split.weights().items()],
            }],
        },
    }


def httproute_yaml(split: TrafficSplit) -> str:
    """:func:`httproute` as the YAML file kept in ``k8s/base``, with a header saying what writes it."""
    import yaml

    header = ("# Written by `sagestack deploy shift-traffic --a A --b B` (the same weights as the local\n"
              "# topology's nginx router); edit the weights with that command.\n")
    return header + yaml.safe_dump(httproute(split), sort_keys=False)


def write_route(path: Path, split: TrafficSplit) -> None:
    """Rewrite the HTTPRoute manifest at ``path`` with the split (atomically)."""
    with atomic_file(path) as tmp:
        tmp.write_text(httproute_yaml(split))


def nginx_config(split: TrafficSplit, upstreams: dict[str, str], *, listen: str, state_dir: Path) -> str:
    """An nginx configuration that routes to the variants' endpoints in the split's proportions.

    Args:
        upstreams: ``host:port`` of each variant's endpoint by variant name.
        listen: ``host:port`` nginx listens on.
        state_dir: where nginx keeps its pid, logs and temporary files.

    A variant at weight 0 is left out (nginx has no weight 0). A request that finds its endpoint
    down (refused, reset, 502/503) is retried once on the other one, so a dead variant costs no
    client a failure; ``max_fails``/``fail_timeout`` then keep it out for a few seconds.
    """
    servers = "\n".join(f"        server {upstreams[v]} weight={w} max_fails=1 fail_timeout=5s;"
                        for v, w in split.weights().items() if w > 0)
    logs = state_dir / "logs"
    return f"""# Rendered by sagestack from the traffic split {split.a}/{split.b} (A/B); see sagestack.deploy.traffic.
worker_processes 1;
daemon off;
pid {state_dir / 'nginx.pid'};
error_log {logs / 'nginx-error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log {logs / 'nginx-access.log'};
    client_body_temp_path {state_dir / 'tmp' / 'body'};
    proxy_temp_path {state_dir / 'tmp' / 'proxy'};
    fastcgi_temp_path {state_dir / 'tmp' / 'fastcgi'};
    uwsgi_temp_path {state_dir / 'tmp' / 'uwsgi'};
    scgi_temp_path {state_dir / 'tmp' / 'scgi'};
    client_max_body_size 2m;
    upstream sentiment {{
{servers}
        keepalive 64;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://sentiment;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def check_servable(variant: str, info) -> None:
    """Refuse a version that is not Approved for production traffic.

    Raises:
        RegistryError: ``info`` (a registry version) is pending or rejected.
    """
    if info.status != "Approved":
        raise RegistryError(
            f"variant {variant} would serve {info.name} version {info.version}, which is {info.status}; "
            f"approve it first with `sagestack models approve {info.name}/{info.version}`")
