"""CloudFormation's template language, as far as a local run can take it: the short tags (!Ref, !Sub...)
read into their long forms, and the intrinsics that need no deployed stack resolved (Ref to a parameter or a
pseudo parameter, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If over Conditions). What only CloudFormation
can resolve (a resource's Ref or attribute, a parameter without a value) raises `Unresolved`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

LIST_PARAMETER = re.compile(r"^(CommaDelimitedList|List<.+>)$")
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
STACK_NAME = "local"
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Unresolved(Exception):
    """An intrinsic that only CloudFormation can resolve (a resource's Ref or attribute, a missing value)."""


def cfn_loader() -> type:
    import yaml  # imported on first use: `node-fleet --help` need not pay for it

    class CfnLoader(yaml.SafeLoader):
        """A SafeLoader that turns CloudFormation's short tags (!Ref, !Sub, !GetAtt...) into their long forms."""

    def intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        name = "Ref" if suffix == "Ref" else "Condition" if suffix == "Condition" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    CfnLoader.add_multi_constructor("!", intrinsic)
    return CfnLoader


def stringify(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None or isinstance(value, (dict, list, tuple)):
        raise Unresolved(f"not a scalar: {value!r}")
    return str(value)


class Resolver:
    """Resolves the intrinsics that need no deployed stack."""

    def __init__(self, template: Mapping[str, Any], parameter_overrides: Mapping[str, str]) -> None:
        self.parameters: dict[str, Any] = template.get("Parameters") or {}
        self.conditions: dict[str, Any] = template.get("Conditions") or {}
        self.overrides = {k: str(v) for k, v in parameter_overrides.items()}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.pseudo: dict[str, Any] = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::NotificationARNs": [],
        }
        self._condition_cache: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::Sub":
            return self.sub(arg)
        if key == "Fn::Join":
            delimiter, items = arg
            items = self.resolve(items)
            if not isinstance(items, list):
                raise Unresolved(f"Fn::Join over {items!r}")
            return str(delimiter).join(stringify(self.resolve(i)) for i in items)
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = self.resolve(arg)
            return str(text).split(str(delimiter))
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key.startswith("Fn::") or key == "Condition":
            raise Unresolved(f"{key} cannot be resolved locally")
        return {key: self.resolve(arg)}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            raise Unresolved("AWS::NoValue")
        parameter = self.parameters.get(name)
        if parameter is None:
            raise Unresolved(f"Ref {name} names a resource")
        if name in self.overrides:
            raw: Any = self.overrides[name]
        elif "Default" in parameter:
            raw = parameter["Default"]
        else:
            raise Unresolved(f"parameter {name} has no Default and no override")
        if LIST_PARAMETER.match(str(parameter.get("Type", ""))):
            return [part.strip() for part in stringify(raw).split(",")] if stringify(raw) else []
        return raw

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return stringify(variables[name])
            if "." in name and not name.startswith("AWS::"):
                raise Unresolved(f"${{{name}}} is a resource attribute")
            return stringify(self.ref(name))

        return _SUB_VARIABLE.sub(replace, str(text))

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise Unresolved(f"no condition {name}")
            self._condition_cache[name] = self.evaluate(self.conditions[name])
        return self._condition_cache[name]

    def evaluate(self, expression: Any) -> bool:
        if not isinstance(expression, dict) or len(expression) != 1:
            raise Unresolved(f"not a condition: {expression!r}")
        ((key, arg),) = expression.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return stringify(left) == stringify(right)
        if key == "Fn::Not":
            return not self.evaluate(arg[0])
        if key == "Fn::And":
            return all(self.evaluate(a) for a in arg)
        if key == "Fn::Or":
            return any(self.evaluate(a) for a in arg)
        raise Unresolved(f"{key} in a condition")
