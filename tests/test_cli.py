"""The command line starts fast: `--help` and `--version` (and each command's `--help`) import
none of the heavy packages; those load only when a command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devmesh import __version__
from devmesh.cli import COMMANDS, main

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("kubernetes", "docker", "textual", "git")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DEVMESH_DEBUG", None)
    return env


def _imported_after(args: list[str]) -> tuple[set[str], str]:
    """Top-level packages imported by `devmesh ARGS` in a fresh interpreter, and its output."""
    probe = (
        "import json, sys\n"
        "from devmesh.cli import main\n"
        f"sys.argv = ['devmesh', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stdout.flush()\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    return set(json.loads(done.stderr.strip().splitlines()[-1])), done.stdout


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], []])
def test_help_and_version_import_no_heavy_package(args: list[str]) -> None:
    imported, out = _imported_after(args)
    assert out.strip()
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_imports_no_heavy_package(command: str) -> None:
    imported, out = _imported_after([command, "--help"])
    assert "Usage:" in out
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_importtime_shows_no_heavy_package() -> None:
    """The same seen by the interpreter itself: -X importtime lists every module it loaded."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "devmesh", "--help"],
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    loaded = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "cumulative" not in line
    }
    assert "devmesh" in loaded and "click" in loaded  # the listing is real
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_probe_would_see_a_heavy_import() -> None:
    """The check above can fail: running doctor does load the docker SDK."""
    imported, _ = _imported_after(["doctor", "--json"])
    assert "docker" in imported


def _status(argv: list[str]) -> int:
    """main()'s exit status: it returns for --help/--version and exits otherwise."""
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _status(["--version"]) == 0
    assert capsys.readouterr().out == f"devmesh, version {__version__}\n"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert _status(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, _, summary) in COMMANDS.items():
        assert f"{name}  " in out
        assert summary.split()[0] in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _status(["frobnicate"]) == 2
    assert "No such command 'frobnicate'" in capsys.readouterr().err


def test_console_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "devmesh", "--version"], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"devmesh, version {__version__}\n")


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly() -> None:
    """`devmesh presets | head -1`: no traceback, no message, the status SIGPIPE would give.

    The reader's end is closed before the command writes, so its first write fails (with a
    live reader the output could fit in the pipe's buffer and never fail).
    """
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "devmesh", "presets"], env=_env(), cwd=REPO,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == 141


@pytest.mark.parametrize(("args", "says"), [
    (["canary", "api", "--weight", "101"], "error: Invalid value for '--weight' / '-w': 101 is not in the range 0<=x<=100."),
    (["mirror", "api", "--percent", "0"], "error: Invalid value for '--percent' / '-p': 0.0 is not in the range 0<x<=100."),
    (["frobnicate"], "error: No such command 'frobnicate'."),
    (["up", "--no-such-flag"], "error: No such option '--no-such-flag'."),
])
def test_a_usage_error_is_one_line_and_exit_2(args: list[str], says: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input on the command line is one clear line, as every other mistake; the way to the
    command's options goes in the same line."""
    monkeypatch.chdir(tmp_path)
    assert _status(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(says), captured.err
    assert captured.out == ""
