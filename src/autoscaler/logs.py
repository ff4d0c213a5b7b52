"""Logging set-up of both functions: the libraries that log what goes over the wire stay quiet.

With a function's ApplicationLogLevel at DEBUG, Lambda puts the root logger at DEBUG, and every logger
without a level of its own follows it: botocore then logs each response body, and SSM GetParameter's
carries the decrypted secret. A level on those libraries' loggers drops their records before any handler
sees them, whatever the root level and whichever handlers Lambda, Powertools or a test attach. A redaction
filter was the other choice: it would have to know every secret in every encoding it can take (a basic-auth
header in base64, a key in hex, a PEM across lines) and sit on every handler, and it fails open.
"""

from __future__ import annotations

import logging

WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "requests")
"""Loggers that write request or response bodies and headers at DEBUG."""


def quiet_wire_loggers() -> None:
    """Keep WIRE_LOGGERS at WARNING (their warnings carry no bodies), even under a DEBUG root logger."""
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
