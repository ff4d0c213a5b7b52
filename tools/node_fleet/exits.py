"""The exit codes of every `node-fleet` command; README.md ("Exit codes") lists them for users."""

OK = 0
FAILED = 1
"""Input it cannot use (a missing file, bad JSON, a bad setting, no AWS credentials: one line says which), an
unexpected error (one line; `--traceback` shows it), or the demo's expectations not met."""
CANNOT_START = 2
"""The command line is wrong (argparse's code), or a tool it needs is missing (Prometheus, for the demo and
`invoke --local`)."""
ANSWER_FAILED = 3
"""`invoke`: the handler answered with a rejection or an error (`"status": "rejected"` or `"error"`, or an
HTTP status of 400 or more for a Function URL request). Lambda does not retry such an answer."""
GATE_HOLDS = 3
"""`gate`: the gate holds scale-down now (the JSON on stdout names what holds). Same code as ANSWER_FAILED:
the answer is "no" either way, and no command gives both."""
RAISED = 4
"""`invoke`: the handler raised. Lambda would deliver an asynchronous event again."""
INTERRUPTED = 130
"""Ctrl-C (or SIGTERM for the demo): everything started was stopped first."""
