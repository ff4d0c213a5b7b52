"""The state table in moto from template.yaml's `StateTable`, for the tests (one implementation:
`node_fleet.stack.aws`, shared with the integration tests and `make demo`)."""

from node_fleet.stack.aws import (
    DEFAULT_TABLE_NAME,
    REPO_ROOT,
    STATE_TABLE,
    create_state_table,
    load_template,
    state_table_properties,
)

__all__ = [
    "DEFAULT_TABLE_NAME",
    "REPO_ROOT",
    "STATE_TABLE",
    "create_state_table",
    "load_template",
    "state_table_properties",
]
