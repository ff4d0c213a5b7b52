"""The verbs of the fake API server (list, get, create, patch, replace, delete, evict) over its
store; the caller holds the store's lock."""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
from collections.abc import Mapping
from typing import Any

from .disruption import needs_budget, take_disruption
from .patches import PatchError, PatchTestFailed, json_patch, merge_patch, strategic_merge_patch
from .resources import PDBS, PODS, ApiError, ApiResource, conflict, now
from .selectors import SelectorError, field_selector, label_selector
from .store import Entry, ObjectStore

PATCH_TYPES = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


def get(store: ObjectStore, res: ApiResource, namespace: str, name: str) -> bytes:
    return json.dumps(store.entry(res, namespace, name).obj).encode()


def list_objects(store: ObjectStore, res: ApiResource, namespace: str, query: Mapping[str, str]) -> bytes:
    try:
        by_label = label_selector(query.get("labelSelector", ""))
        by_field = field_selector(query.get("fieldSelector", ""), res.plural)
    except SelectorError as err:
        raise ApiError(400, "BadRequest", str(err)) from None
    try:
        limit = int(query.get("limit") or 0)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid limit {query['limit']!r}") from None
    table = store.tables[res]
    keys = table.ordered()
    list_rv = str(store.rv)
    start = 0
    if query.get("continue"):
        list_rv, after = decode_continue(query["continue"])
        start = bisect.bisect_right(keys, after)
    filtered = bool(query.get("labelSelector") or query.get("fieldSelector"))
    items: list[bytes] = []
    last: tuple[str, str] | None = None
    more = remaining = 0
    for key in keys[start:]:
        if namespace and key[0] != namespace:
            continue
        entry = table.entries[key]
        obj = entry.obj
        if not (by_label(obj["metadata"].get("labels") or {}) and by_field(obj)):
            continue
        if limit and len(items) >= limit:
            more = 1
            if filtered:
                break
            remaining += 1
            continue
        if entry.item_json is None:
            item = obj if not res.builtin else {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
            entry.item_json = json.dumps(item).encode()
        items.append(entry.item_json)
        last = key
    meta: dict[str, Any] = {"resourceVersion": list_rv}
    if more and last is not None:
        meta["continue"] = encode_continue(list_rv, last)
        if not filtered:
            meta["remainingItemCount"] = remaining
    head = json.dumps({"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta})
    return head[:-1].encode() + b',"items":[' + b",".join(items) + b"]}"


def create(store: ObjectStore, res: ApiResource, namespace: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    if res.namespaced:
        if meta.get("namespace") not in (None, namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        meta["namespace"] = namespace
    meta.pop("resourceVersion", None)
    stored = store.stamp(obj, res)
    key = (namespace, meta["name"])
    table = store.tables[res]
    if key in table.entries:
        raise ApiError(
            409,
            "AlreadyExists",
            f'{res.plural}{"." + res.group if res.group else ""} "{meta["name"]}" already exists',
            {"name": meta["name"], **({"group": res.group} if res.group else {}), "kind": res.plural},
        )
    table.put(key, Entry(stored))
    if res in (PODS, PDBS):
        store.sync_pdbs()
    return stored


def patch(
    store: ObjectStore, res: ApiResource, namespace: str, name: str, content_type: str | None, body: Any
) -> dict[str, Any]:
    entry = store.entry(res, namespace, name)
    apply = PATCH_TYPES.get(content_type or "")
    if apply is None:
        raise ApiError(
            415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types "
            f"include: {', '.join(PATCH_TYPES)}",
        )  # fmt: skip
    if apply is not json_patch:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the patch must be a JSON object")
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != entry.obj["metadata"]["resourceVersion"]:
            raise conflict(res, name)
    try:
        patched = apply(entry.obj, body)
    except PatchTestFailed as err:
        raise ApiError(422, "Invalid", str(err)) from None
    except (PatchError, KeyError, TypeError) as err:
        raise ApiError(422, "Invalid", f"the patch could not be applied: {err}") from None
    meta = patched.get("metadata") or {}
    if meta.get("name") != name or meta.get("namespace", "") != entry.obj["metadata"].get("namespace", ""):
        raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Invalid value: field is immutable")
    if meta.get("uid") != entry.obj["metadata"]["uid"]:
        raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {meta.get('uid')}")
    patched["metadata"]["resourceVersion"] = store.next_rv()
    patched["kind"], patched["apiVersion"] = res.kind, res.api_version
    entry.obj, entry.item_json = patched, None
    if res in (PODS, PDBS):
        store.sync_pdbs()
    return patched


def replace(store: ObjectStore, res: ApiResource, namespace: str, name: str, body: Any) -> dict[str, Any]:
    entry = store.entry(res, namespace, name)
    if not isinstance(body, dict) or (body.get("metadata") or {}).get("name") != name:
        raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
    wanted_rv = body["metadata"].get("resourceVersion")
    if wanted_rv is not None and wanted_rv != entry.obj["metadata"]["resourceVersion"]:
        raise conflict(res, name)
    obj = copy.deepcopy(body)
    obj["metadata"]["uid"] = entry.obj["metadata"]["uid"]
    obj["metadata"]["creationTimestamp"] = entry.obj["metadata"]["creationTimestamp"]
    if res.namespaced:
        obj["metadata"]["namespace"] = namespace
    obj["metadata"]["resourceVersion"] = store.next_rv()
    obj["kind"], obj["apiVersion"] = res.kind, res.api_version
    entry.obj, entry.item_json = obj, None
    return obj


def delete(store: ObjectStore, res: ApiResource, namespace: str, name: str) -> dict[str, Any]:
    entry = store.delete(res, namespace, name)
    if res in (PODS, PDBS):
        store.sync_pdbs()
    return entry.obj


def evict(store: ObjectStore, namespace: str, name: str, body: Any, mode: str) -> tuple[int, dict[str, Any]]:
    if not isinstance(body, dict) or body.get("kind") != "Eviction":
        raise ApiError(400, "BadRequest", "the body of an eviction must be an Eviction")
    if body.get("apiVersion") not in ("policy/v1", "policy/v1beta1"):
        raise ApiError(400, "BadRequest", f"unsupported Eviction apiVersion {body.get('apiVersion')!r}")
    if (body.get("metadata") or {}).get("name") not in (None, name):
        raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
    entry = store.entry(PODS, namespace, name)
    pod = entry.obj
    success = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    if pod["metadata"].get("deletionTimestamp"):
        return 201, success
    if needs_budget(pod):
        pdbs = store.pdbs_selecting(namespace, pod["metadata"].get("labels") or {})
        if take_disruption([e.obj for e in pdbs], name) is not None:
            pdbs[0].obj["metadata"]["resourceVersion"] = store.next_rv()
            pdbs[0].item_json = None
    if mode == "terminate":
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        pod["metadata"]["deletionTimestamp"] = now()
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        pod["metadata"]["resourceVersion"] = store.next_rv()
        entry.item_json = None
    else:
        store.tables[PODS].drop((namespace, name))
    store.sync_pdbs()
    return 201, success


def encode_continue(rv: str, after: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": "/".join(after).lstrip("/") + "\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start = raw["start"].rstrip("\x00")
        namespace, _, name = start.rpartition("/")
        return str(raw["rv"]), (namespace, name)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(
            400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None
