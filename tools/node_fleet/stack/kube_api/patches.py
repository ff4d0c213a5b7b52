"""The three JSON patch formats the API server accepts, applied to plain dicts.

- JSON merge patch (RFC 7386, `application/merge-patch+json`): objects merge, `null` deletes a
  key, lists are replaced whole.
- Strategic merge patch (`application/strategic-merge-patch+json`): a merge patch where the
  lists that Kubernetes declares with a merge key are merged element by element (see
  `MERGE_KEYS`); every other list, `spec.taints` among them, is replaced whole, as on a real
  server. Supported directives: `$patch: replace` and `$patch: delete` (in an object and in a
  merged list's element); `$setElementOrder/...`, `$retainKeys` and `$deleteFromPrimitiveList/...`
  are ignored.
- JSON patch (RFC 6902, `application/json-patch+json`): add, remove, replace, test, copy, move.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (the API server answers 422)."""


class PatchTestFailed(PatchError):
    """A JSON patch `test` operation did not hold."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Lists that strategic merge patch merges by key in the object kinds the fake serves.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "addresses": "type",
    "imagePullSecrets": "name",
}
_DELETE = object()


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    result = _smp(target, patch)
    return {} if result is _DELETE else result


def _smp(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp(result.get(key), value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key])
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list, patch: list, merge_key: str) -> list:
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return [copy.deepcopy(e) for e in patch if not (isinstance(e, dict) and e.get("$patch") == "replace")]
    merged = list(current)
    for element in patch:
        if not isinstance(element, dict) or merge_key not in element:
            raise PatchError(f"map in a merged list must have the merge key {merge_key!r}: {element!r}")
        at = next(
            (i for i, e in enumerate(merged) if isinstance(e, dict) and e.get(merge_key) == element[merge_key]), None
        )
        if element.get("$patch") == "delete":
            if at is not None:
                del merged[at]
        elif at is None:
            merged.append(copy.deepcopy(element))
        else:
            merged[at] = _smp(merged[at], element)
    return merged


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _put(doc, path, copy.deepcopy(op["value"]), insert=True)
        elif kind == "remove":
            doc, _ = _take(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _put(doc, path, copy.deepcopy(op["value"]), insert=False)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchTestFailed(f"testing value {path} failed")
        elif kind in ("copy", "move"):
            source = op["from"]
            if kind == "move":
                doc, value = _take(doc, source)
            else:
                value = copy.deepcopy(_get(doc, source))
            doc = _put(doc, path, value, insert=True)
        else:
            raise PatchError(f"unsupported JSON patch operation {kind!r}")
    return doc


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _get(doc: Any, path: str) -> Any:
    return _walk(doc, _pointer(path), path)


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    value = doc
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return value


def _put(doc: Any, path: str, value: Any, *, insert: bool) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (0 if insert else 1):
            if insert:
                parent.insert(int(last), value)
            else:
                parent[int(last)] = value
        else:
            raise PatchError(f"index {last!r} out of range in {path!r}")
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def _take(doc: Any, path: str) -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return doc, parent.pop(int(last))
    raise PatchError(f"path {path!r} does not exist")
