"""Fixtures of the template tests (helpers live in template_helpers.py)."""

from typing import Any

import pytest

from template_helpers import read_template


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml, parsed once; short tags in their long forms ({"Ref": ...})."""
    return read_template()
