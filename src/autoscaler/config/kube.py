"""How the Cluster adapter reaches the API server, from the environment, one of:
    K8S_API_URL       https://<server>:6443, the API server (http:// only for a loopback host)
    K8S_TOKEN_PARAM   name of the SSM SecureString parameter that holds the bearer token
    K8S_CA_PARAM      name of the SSM parameter that holds the cluster CA certificate (PEM)
or, for local use when K8S_API_URL is not set:
    KUBECONFIG        path(s) of a kubeconfig (":"-separated, as kubectl reads it)
    K8S_CONTEXT       its context to use (default: the current context)
and, for either:
    K8S_VERIFY_SSL    true (default) | false: verify the server's certificate
    K8S_PAGE_SIZE     items per list page, 10..5000 (default 500)
    K8S_TIMEOUT_S     read timeout of one request in seconds, 1..300 (default 15)

Nothing here reads SSM: the caller reads the parameters `secret_parameter_names` names and passes
their values to `KubeOptions.from_env`, so the secrets stay out of the environment and the logs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from autoscaler.config.environ import ConfigError, boolean, loopback, text

DEFAULT_PAGE_SIZE = 500
DEFAULT_TIMEOUT_S = 15.0


def secret_parameter_names(environ: Mapping[str, str]) -> dict[str, str]:
    """The SSM parameters the caller must read for `KubeOptions.from_env`: {"token": name, "ca": name}
    for those configured."""
    variables = {"token": "K8S_TOKEN_PARAM", "ca": "K8S_CA_PARAM"}  # nosec B105  # names of the variables, not values
    return {k: name for k, variable in variables.items() if (name := text(environ, variable))}


@dataclass(frozen=True)
class KubeOptions:
    """How to reach the API server: a URL, a bearer token and a CA, or a kubeconfig."""

    api_url: str | None = None
    token: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    kubeconfig: str | None = None
    context: str | None = None
    verify_ssl: bool = True
    page_size: int = DEFAULT_PAGE_SIZE
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, token: str | None = None, ca_pem: str | None = None
    ) -> KubeOptions:
        """Options from the environment; `token` and `ca_pem` are the values of the SSM parameters
        named by K8S_TOKEN_PARAM and K8S_CA_PARAM. Raises ConfigError naming the variable at fault."""
        verify = _env_bool(environ, "K8S_VERIFY_SSL", True)
        page_size = int(_env_number(environ, "K8S_PAGE_SIZE", DEFAULT_PAGE_SIZE, 10, 5000, int))
        timeout_s = _env_number(environ, "K8S_TIMEOUT_S", DEFAULT_TIMEOUT_S, 1, 300, float)
        common = {"verify_ssl": verify, "page_size": page_size, "timeout_s": timeout_s}
        url = text(environ, "K8S_API_URL")
        if url:
            return cls(api_url=_api_url(url), token=_token(environ, token), ca_pem=_ca(environ, ca_pem), **common)
        kubeconfig = text(environ, "KUBECONFIG")
        if kubeconfig:
            return cls(kubeconfig=kubeconfig, context=text(environ, "K8S_CONTEXT"), **common)
        raise ConfigError(
            "K8S_API_URL is not set: set it (with K8S_TOKEN_PARAM and K8S_CA_PARAM naming the SSM parameters "
            "that hold the API token and CA certificate), or set KUBECONFIG for local use"
        )


def _env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = text(environ, name)
    if not raw:
        return default
    value = boolean(raw)
    if value is None:
        raise ConfigError(f"{name}={environ[name]!r} is not a valid bool: allowed true or false")
    return value


def _env_number(
    environ: Mapping[str, str], name: str, default: float, low: float, high: float, kind: Callable[[str], float]
) -> float:
    raw = text(environ, name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if not (low <= value <= high) or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(f"{name}={value!r} is out of range: allowed {low:g}..{high:g}")
    return value


def _api_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or parts.query or parts.fragment:
        raise ConfigError(f"K8S_API_URL={url!r} is not a valid URL: allowed https://<host>[:<port>]")
    if parts.scheme == "http" and not loopback(host):
        raise ConfigError(
            f"K8S_API_URL={url!r} uses http://: allowed https:// (http:// only for a loopback host), "
            "so the bearer token never crosses the network in clear"
        )
    return url.rstrip("/")


def _token(environ: Mapping[str, str], token: str | None) -> str:
    param = text(environ, "K8S_TOKEN_PARAM")
    if not param:
        raise ConfigError(
            "K8S_TOKEN_PARAM must name the SSM parameter that holds the API token when K8S_API_URL is set"
        )
    token = (token or "").strip()
    if not token:
        raise ConfigError(f"K8S_TOKEN_PARAM={param!r}: the API token read from it is empty")
    if any(ch.isspace() for ch in token):
        raise ConfigError(f"K8S_TOKEN_PARAM={param!r}: the API token read from it contains whitespace")
    return token


def _ca(environ: Mapping[str, str], ca_pem: str | None) -> str | None:
    param = text(environ, "K8S_CA_PARAM")
    if not param:
        if ca_pem:
            raise ConfigError("K8S_CA_PARAM is not set, but a CA certificate was given")
        return None
    if not ca_pem or "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ConfigError(f"K8S_CA_PARAM={param!r}: the value read from it is not a PEM certificate")
    return ca_pem.strip() + "\n"
