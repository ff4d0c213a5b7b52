"""From a request path to a verb of the fake API server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from . import verbs
from .resources import NO_RESOURCE, PODS, ApiError
from .store import ObjectStore


def route(
    store: ObjectStore,
    evict_mode: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    content_type: str | None,
    body: Any,
) -> tuple[int, Any]:
    segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
    if segments == ["version"]:
        return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.3+k3s1", "platform": "linux/amd64"}
    if len(segments) >= 2 and segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        raise NO_RESOURCE
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        raise NO_RESOURCE
    with store.lock:
        res = store.served(group, version, rest[0])
        if res is None or (namespace and not res.namespaced):
            raise NO_RESOURCE
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and not (res is PODS and sub == "eviction")):
            raise NO_RESOURCE
        if name is None:
            if method == "GET":
                return 200, verbs.list_objects(store, res, namespace, query)
            if method == "POST":
                if res.namespaced and not namespace:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
                return 201, verbs.create(store, res, namespace, body)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if res.namespaced and not namespace:
            raise NO_RESOURCE
        if sub == "eviction":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return verbs.evict(store, namespace, name, body, evict_mode)
        if method == "GET":
            return 200, verbs.get(store, res, namespace, name)
        if method == "PATCH":
            return 200, verbs.patch(store, res, namespace, name, content_type, body)
        if method == "DELETE":
            return 200, verbs.delete(store, res, namespace, name)
        if method == "PUT":
            return 200, verbs.replace(store, res, namespace, name, body)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
