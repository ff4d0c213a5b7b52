"""The fake API server's memory: one table of objects a served kind, the resourceVersion counter,
and the disruption controller that keeps PDB statuses current after every change."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .disruption import pdb_status, selects
from .resources import BUILTIN, PDBS, PODS, ApiError, ApiResource, not_found, now


@dataclass
class Entry:
    obj: dict[str, Any]
    item_json: bytes | None = None
    """The object serialized as a list item, cached until it changes."""


@dataclass
class Table:
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)
    sorted_keys: list[tuple[str, str]] | None = None

    def ordered(self) -> list[tuple[str, str]]:
        if self.sorted_keys is None:
            self.sorted_keys = sorted(self.entries)
        return self.sorted_keys

    def put(self, key: tuple[str, str], entry: Entry) -> None:
        if key not in self.entries:
            self.sorted_keys = None
        self.entries[key] = entry

    def drop(self, key: tuple[str, str]) -> Entry | None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.sorted_keys = None
        return entry


class ObjectStore:
    """Every object by kind and (namespace, name). Callers hold `lock` across a read-modify-write."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.resources: dict[tuple[str, str, str], ApiResource] = {(r.group, r.version, r.plural): r for r in BUILTIN}
        self.tables: dict[ApiResource, Table] = {r: Table() for r in BUILTIN}
        self.pinned_pdbs: set[tuple[str, str]] = set()
        """PDBs seeded with `status.disruptionsAllowed`: only evictions change that value."""
        self.rv = 1000

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def install(self, res: ApiResource) -> None:
        self.resources[(res.group, res.version, res.plural)] = res
        self.tables.setdefault(res, Table())

    def uninstall(self, res: ApiResource) -> None:
        self.resources.pop((res.group, res.version, res.plural), None)
        self.tables.pop(res, None)

    def clear(self) -> None:
        for table in self.tables.values():
            table.entries.clear()
            table.sorted_keys = None
        self.pinned_pdbs.clear()

    def served(self, group: str, version: str, plural: str) -> ApiResource | None:
        return self.resources.get((group, version, plural))

    def resource(self, plural: str, group: str = "") -> ApiResource:
        for res in self.resources.values():
            if res.plural == plural and res.group == group:
                return res
        raise KeyError(f"{plural}.{group} is not installed")

    def resource_of(self, obj: Mapping[str, Any]) -> ApiResource:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        for res in self.resources.values():
            if res.group == group and res.version == version and res.kind == kind:
                return res
        raise KeyError(f"{api_version} {kind} is not served (install it first)")

    def entry(self, res: ApiResource, namespace: str, name: str) -> Entry:
        entry = self.tables[res].entries.get((namespace, name))
        if entry is None:
            raise not_found(res, name)
        return entry

    def stamp(self, obj: dict[str, Any], res: ApiResource) -> dict[str, Any]:
        """What the server sets on a stored object: namespace, uid, creation time, resourceVersion, kind."""
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value: name is required")
        if res.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta["resourceVersion"] = self.next_rv()
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        return obj

    def seed(self, obj: dict[str, Any]) -> None:
        """Store `obj` as given, replacing any of the same name (the test's seeding, not a create)."""
        res = self.resource_of(obj)
        pinned = res is PDBS and "disruptionsAllowed" in (obj.get("status") or {})
        stored = self.stamp(obj, res)
        key = (stored["metadata"].get("namespace", ""), stored["metadata"]["name"])
        self.tables[res].put(key, Entry(stored))
        if pinned:
            self.pinned_pdbs.add(key)
        elif res is PDBS:
            self.pinned_pdbs.discard(key)

    def delete(self, res: ApiResource, namespace: str, name: str) -> Entry:
        entry = self.entry(res, namespace, name)
        self.tables[res].drop((namespace, name))
        if res is PDBS:
            self.pinned_pdbs.discard((namespace, name))
        return entry

    def pdbs_selecting(self, namespace: str, labels: Mapping[str, str]) -> list[Entry]:
        return [e for e in self.tables[PDBS].entries.values() if selects(e.obj, namespace, labels)]

    def sync_pdbs(self) -> None:
        """What the disruption controller does: recompute the status of every PDB whose status
        was not pinned by the test, from the pods it selects."""
        pods = self.tables[PODS].entries
        for key, entry in self.tables[PDBS].entries.items():
            if key in self.pinned_pdbs:
                continue
            namespace = entry.obj["metadata"]["namespace"]
            selected = (
                e.obj
                for (ns, _), e in pods.items()
                if ns == namespace and selects(entry.obj, ns, e.obj["metadata"].get("labels") or {})
            )
            status = pdb_status(entry.obj, selected)
            if entry.obj.get("status") != status:
                entry.obj["status"] = status
                entry.obj["metadata"]["resourceVersion"] = self.next_rv()
                entry.item_json = None
