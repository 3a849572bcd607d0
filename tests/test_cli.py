"""The console script: every subcommand in the table is real, documented and reachable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli import main as cli


def test_top_level_help_lists_every_command(capsys):
    parser = cli.build_parser()
    text = parser.format_help()
    for name in cli.COMMANDS:
        assert name in text


def test_help_does_not_import_torch_or_verl():
    code = (
        "import sys; from cli import main as cli; cli.build_parser().format_help();"
        "print(sorted(m for m in ('torch', 'verl', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_has_working_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"guardreasoner-vl {name}" in out


def test_user_error_is_one_line_and_exit_code_1(capsys):
    # clip-schedule with an impossible step count is a user error, not a traceback.
    assert cli.main(["clip-schedule", "--total-steps", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("guardreasoner-vl clip-schedule: error:")
    assert "Traceback" not in err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("guardreasoner-vl ")
