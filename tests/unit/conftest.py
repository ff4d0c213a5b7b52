"""Unit tests are pure: any socket they open is a bug."""

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_sockets():
    disable_socket(allow_unix_socket=False)
    yield
    enable_socket()
