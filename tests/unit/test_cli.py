"""What every `node-fleet` command shares: --version, the exit codes in --help, one-line errors (the
traceback only with --traceback), and stdout that holds only the answer when a script asks for --json."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from node_fleet import cli, exits
from node_fleet.cli import main


def test_version_names_the_installed_distribution(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == exits.OK
    assert capsys.readouterr().out.strip() == f"node-fleet {version('node-fleet')}"


def test_help_lists_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code in (exits.OK, exits.FAILED, exits.CANNOT_START, exits.ANSWER_FAILED, exits.RAISED, exits.INTERRUPTED):
        assert f"\n  {code} " in out, f"exit code {code} is not listed:\n{out}"


def test_a_wrong_command_line_is_exit_code_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["plan"])
    assert done.value.code == exits.CANNOT_START
    assert "one of the arguments --cluster --kubeconfig is required" in capsys.readouterr().err


def _unexpected(args):
    raise ConnectionRefusedError(111, "Connection refused")


def _another(args):
    raise LookupError("no such context")


@pytest.mark.parametrize("fails", [_unexpected, _another], ids=["OSError", "LookupError"])
def test_an_error_is_one_line_without_a_traceback(monkeypatch, capsys, fails):
    monkeypatch.setattr(cli, "_gate", fails)
    assert main(["gate", "--kubeconfig", "kubeconfig"]) == exits.FAILED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("node-fleet: ") and "Traceback" not in err


def test_traceback_shows_an_unexpected_error(monkeypatch):
    monkeypatch.setattr(cli, "_gate", _another)
    with pytest.raises(LookupError, match="no such context"):
        main(["--traceback", "gate", "--kubeconfig", "kubeconfig"])


def test_ctrl_c_is_exit_code_130_in_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_gate", interrupted)
    assert main(["gate", "--kubeconfig", "kubeconfig"]) == exits.INTERRUPTED
    assert capsys.readouterr().err == "node-fleet: interrupted\n"


def test_simulate_json_with_a_plot_prints_only_the_json(tmp_path, capsys):
    png = tmp_path / "run.png"
    argv = ["simulate", "--scenario", "batch", "--policy", "node-fleet", "--json", "--plot", str(png)]
    assert main(argv) == exits.OK
    out, err = capsys.readouterr()
    assert json.loads(out)["workload"] == "batch"
    assert f"plot written to {png}" in err
