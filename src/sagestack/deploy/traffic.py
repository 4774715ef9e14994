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
# The manifest `shift-traffic` patches when run in the checkout (relative to its root).
ROUTE_FILE = Path("k8s") / "base" / "endpoint" / "httproute.yaml"


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


ROUTE_HEADER = ("# Written by `sagestack deploy shift-traffic --a A --b B` (the same weights as the local\n"
                "# topology's nginx router); edit the weights with that command.\n")


def httproute_yaml(split: TrafficSplit) -> str:
    """:func:`httproute` as the YAML file kept in ``k8s/base``, with a header saying what writes it."""
    import yaml

    return ROUTE_HEADER + yaml.safe_dump(httproute(split), sort_keys=False)


def route_text(path: Path, split: TrafficSplit) -> str:
    """The new content of the HTTPRoute manifest at ``path`` for ``split``.

    A new file, or one this module wrote (it starts with its header), gets the whole rendering;
    a user's own manifest keeps everything but the weights of the two variants' ``backendRefs``
    (comments are not kept: PyYAML drops them).

    Raises:
        ConfigError: the file is not YAML, or holds no HTTPRoute sending to both variants' Services.
    """
    import yaml

    path = Path(path)
    if not path.is_file() or path.read_text(encoding="utf-8").startswith(ROUTE_HEADER):
        return httproute_yaml(split)
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not a YAML manifest ({str(exc).splitlines()[0]}); pass the HTTPRoute to patch") from None
    weights = {service_name(v): w for v, w in split.weights().items()}
    patched: set[str] = set()
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != "HTTPRoute":
            continue
        for rule in (document.get("spec") or {}).get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if isinstance(ref, dict) and ref.get("name") in weights:
                    ref["weight"] = weights[ref["name"]]
                    patched.add(ref["name"])
    if patched != set(weights):
        raise ConfigError(f"{path} has no HTTPRoute whose backendRefs name both {' and '.join(weights)}; pass the route "
                          "that sends to the variants (k8s/base/endpoint/httproute.yaml in the checkout)")
    return yaml.safe_dump_all(documents, sort_keys=False)


def write_route(path: Path, split: TrafficSplit, text: str | None = None) -> None:
    """Rewrite the HTTPRoute manifest at ``path`` with the split (atomically); ``text`` is
    :func:`route_text`'s result when the caller checked the file beforehand."""
    text = route_text(path, split) if text is None else text
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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


def check_split_servable(settings, split: TrafficSplit, model_name: str | None = None) -> None:
    """Refuse a split that sends traffic to a variant that cannot serve.

    Every variant with a weight above 0 needs its alias (``@champion`` for A, ``@challenger``
    for B) on a version of ``model_name`` in the registry of ``settings``, and that version must
    be Approved; a variant at 0 % is not checked (shifting away from a variant is always allowed).
    Nothing is written: a local registry that does not exist yet is not created.

    Args:
        settings: where the registry is (the same one the variants' endpoints load from).
        split: the split to check.
        model_name: the registered model the variants serve (default: ``reviews-sentiment``).

    Raises:
        RegistryError: one line naming the variant, what it lacks and the command that fixes it.
    """
    from sagestack.registry import DEFAULT_MODEL_NAME, registry_exists, resolve_ref

    name = model_name or DEFAULT_MODEL_NAME
    for variant, weight in split.weights().items():
        if weight == 0:
            continue
        alias = VARIANTS[variant]
        lacks = f"variant {variant} has no version to take {weight} % of the traffic: {name}@{alias}"
        if not registry_exists(settings):
            raise RegistryError(f"{lacks} does not exist (nothing is registered in {settings.mlflow_uri}); "
                                "register and approve a version first (`sagestack pipeline run`)")
        try:
            info = resolve_ref(settings, f"{name}@{alias}")
        except RegistryError:
            raise RegistryError(f"{lacks} does not exist; point it at an approved version with "
                                f"`sagestack models promote {name}/VERSION --alias {alias}`") from None
        check_servable(variant, info)


def check_servable(variant: str, info) -> None:
    """Refuse a version that is not Approved for production traffic.

    Raises:
        RegistryError: ``info`` (a registry version) is pending or rejected.
    """
    if info.status != "Approved":
        raise RegistryError(
            f"variant {variant} would serve {info.name} version {info.version}, which is {info.status}; "
            f"approve it first with `sagestack models approve {info.name}/{info.version}`")
