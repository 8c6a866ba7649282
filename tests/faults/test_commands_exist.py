"""Every ``eeflow ...`` command that README.md's code blocks or an error message name exists.

The sub-command path of each (the words before its first option or argument) must be a command of
the CLI, and ``eeflow <path> --help`` must exit 0; the commands themselves are not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
WORD = re.compile(r"^[a-z][a-z0-9_-]*$")


def _click_root():
    import typer.main

    from tasks.cli.root import _register_subcommands, app

    if not any(group.name == "polar" for group in app.registered_groups):
        _register_subcommands()
    return app, typer.main.get_command(app)


def readme_commands() -> list[str]:
    """``eeflow ...`` lines of README.md's fenced code blocks (continuation lines joined)."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("eeflow ") and WORD.match(line.split()[1]):
                commands.append(line.split("#", 1)[0].strip())
    return commands


def message_commands() -> list[str]:
    """``eeflow <group> <command>`` named in tasks/ (git-tracked files; brace lists expanded)."""
    import subprocess

    _, root = _click_root()
    groups = "|".join(sorted(name for name, cmd in root.commands.items()
                             if hasattr(cmd, "commands")))
    files = subprocess.run(["git", "ls-files", "tasks/*.py", "tasks/**/*.py"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    found = set()
    pattern = re.compile(rf"eeflow ({groups}) (\{{[a-z|-]+\}}|[a-z][a-z-]*)")
    for name in sorted(set(files)):
        for group, rest in pattern.findall((REPO / name).read_text()):
            names = rest.strip("{}").split("|")
            found.update(f"eeflow {group} {name}" for name in names)
    return sorted(found)


def command_path(line: str) -> list[str]:
    """The sub-command words of an ``eeflow ...`` line; fails on a word that is no command."""
    _, root = _click_root()
    words, current = [], root
    for token in line.split()[1:]:
        commands = getattr(current, "commands", None)
        if commands is None or not WORD.match(token):
            break  # a leaf command: the rest are its options and arguments
        assert token in commands, (
            f"{line!r}: {' '.join(['eeflow', *words])} has no command {token!r}; "
            f"commands: {sorted(commands)}"
        )
        words.append(token)
        current = commands[token]
    return words


def test_readme_names_commands():
    lines = readme_commands()
    assert len(lines) >= 15 and any(line.startswith("eeflow polar patches") for line in lines)


@pytest.mark.parametrize("line", readme_commands() + message_commands())
def test_named_command_exists(line):
    app, _ = _click_root()
    words = command_path(line)
    assert words, f"{line!r} names no sub-command"
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, f"{line!r}: eeflow {' '.join(words)} --help: {result.output}"
