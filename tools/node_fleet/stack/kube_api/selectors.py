"""Label and field selectors as the API server evaluates them (the fake's own implementation).

Written apart from the adapter's matcher on purpose, so one is a check on the other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]


class SelectorError(ValueError):
    """A selector the API server would refuse with 400 BadRequest."""


_SET_REQ = re.compile(r"^\s*(?P<key>[A-Za-z0-9_./-]+)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\s*$")
_EQ_REQ = re.compile(r"^\s*(?P<key>[A-Za-z0-9_./-]+)\s*(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)\s*$")
_EXISTS_REQ = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[A-Za-z0-9_./-]+)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on the commas that are not inside `( )`."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    parts.append("".join(current))
    return parts


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """Compile a `labelSelector` query string (`a=b,c!=d,e in (f,g),!h,i`) to a predicate over labels."""
    text = text.strip()
    if not text:
        return lambda labels: True
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for raw in _split_top_level(text):
        if m := _SET_REQ.match(raw):
            key, values = m["key"], frozenset(v.strip() for v in m["values"].split(",") if v.strip())
            if m["op"] == "in":
                checks.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: k not in labels or labels[k] not in vs)
        elif m := _EQ_REQ.match(raw):
            key, value = m["key"], m["value"]
            if m["op"] == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        elif m := _EXISTS_REQ.match(raw):
            key = m["key"]
            if m["neg"]:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
        else:
            raise SelectorError(f"unable to parse requirement: {raw.strip()!r}")
    return lambda labels: all(check(labels) for check in checks)


# The fields each resource accepts in a fieldSelector (a subset of the real server's lists).
FIELDS: dict[str, frozenset[str]] = {
    "pods": frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "nodes": frozenset({"metadata.name", "spec.unschedulable"}),
}
DEFAULT_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_BOOL_FIELDS = frozenset({"spec.unschedulable", "spec.hostNetwork"})
_FIELD_REQ = re.compile(r"^\s*(?P<key>[A-Za-z.]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^,]*?)\s*$")


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The value of a dotted field as a fieldSelector compares it: a string, "" when absent."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if path in _BOOL_FIELDS:
        return "true" if value else "false"
    return "" if value is None else str(value)


def field_selector(text: str, plural: str) -> Predicate:
    """Compile a `fieldSelector` (`spec.nodeName=n1,status.phase!=Failed`) to a predicate over an object."""
    text = text.strip()
    if not text:
        return lambda obj: True
    allowed = FIELDS.get(plural, DEFAULT_FIELDS)
    checks: list[Predicate] = []
    for raw in text.split(","):
        m = _FIELD_REQ.match(raw)
        if not m:
            raise SelectorError(f"invalid selector: {raw.strip()!r}; can't understand it")
        key, value = m["key"], m["value"]
        if key not in allowed:
            raise SelectorError(f'field label not supported: "{key}"')
        if m["op"] == "!=":
            checks.append(lambda obj, k=key, v=value: field_value(obj, k) != v)
        else:
            checks.append(lambda obj, k=key, v=value: field_value(obj, k) == v)
    return lambda obj: all(check(obj) for check in checks)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A structured LabelSelector (matchLabels + matchExpressions), with policy/v1's PDB rules:
    a missing selector selects nothing, an empty one selects every pod of the namespace."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr["key"], expr["operator"], expr.get("values") or ()
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise SelectorError(f"{op!r} is not a valid label selector operator")
        if not ok:
            return False
    return True
