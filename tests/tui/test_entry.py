"""The `devmesh` console script: the TUI for no arguments (in a project) and `devmesh tui`,
the CLI for everything else, and no Textual import for --help/--version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.entry import split_tui_args

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("textual", "docker", "kubernetes", "git")


def _imported_after(args: list[str], cwd: Path) -> tuple[set[str], str, str, int]:
    probe = (
        "import json, sys\n"
        "from tui.entry import main\n"
        f"sys.argv = ['devmesh', *{args!r}]\n"
        "code = 0\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    code = exc.code or 0\n"
        "sys.stdout.flush()\n"
        "print(json.dumps([code, sorted({n.split('.')[0] for n in sys.modules})]), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DEVMESH_DEBUG", None)
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    *err, last = done.stderr.strip().splitlines()
    code, modules = json.loads(last)
    return set(modules), done.stdout, "\n".join(err), int(code)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["tui", "--help"], []])
def test_help_and_version_do_not_import_textual(args: list[str], tmp_path: Path) -> None:
    imported, out, _, code = _imported_after(args, tmp_path)
    assert code == 0 and out.strip()
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_help_lists_tui(tmp_path: Path) -> None:
    _, out, _, _ = _imported_after(["--help"], tmp_path)
    assert "tui " in out and "Open the terminal UI" in out


def test_tui_outside_a_project_says_what_to_do(tmp_path: Path) -> None:
    imported, _, err, code = _imported_after(["tui"], tmp_path)
    assert code == 2
    assert "error: no devmesh.yaml in" in err and "hint: run 'devmesh init'" in err
    assert "Traceback" not in err and "textual" not in imported


def test_other_commands_go_to_the_cli(tmp_path: Path) -> None:
    _, _, err, code = _imported_after(["frobnicate"], tmp_path)
    assert code == 2 and "No such command 'frobnicate'" in err


def test_python_m_devmesh_tui_points_to_the_console_script(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "devmesh", "tui"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 2 and "run 'devmesh tui'" in done.stderr


def test_which_arguments_open_the_tui(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert split_tui_args(["tui", "--branch", "b"]) == ["--branch", "b"]
    assert split_tui_args(["--config", "x.yaml", "--debug", "tui"]) == ["--config", "x.yaml", "--debug"]
    assert split_tui_args(["up"]) is None
    assert split_tui_args(["--debug", "ls"]) is None
    # No arguments: the TUI only on a terminal, in a project; else the help as before.
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert split_tui_args([]) is None
    (tmp_path / "devmesh.yaml").write_text("app: x\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert split_tui_args([]) == []
    assert split_tui_args(["--debug"]) == ["--debug"]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert split_tui_args([]) is None


def test_the_demo_opens_the_tui_on_what_it_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`devmesh demo` runs the CLI's demo, then the TUI on the demo's devmesh.yaml — on a
    terminal, and not with --no-tui, --help, or when the demo did not come up."""
    import types

    import devmesh.cli
    import tui.entry

    made = types.SimpleNamespace(root=tmp_path, config=tmp_path / "devmesh.yaml")
    ran: list[list[str]] = []
    results: list[object] = []
    monkeypatch.setattr(devmesh.cli, "main", lambda args: results.append(args) or made)

    def fake_tui(args: list[str]) -> None:
        ran.append(args)
        raise SystemExit(0)  # as the TUI ends

    monkeypatch.setattr(tui.entry, "run_tui", fake_tui)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    with pytest.raises(SystemExit):
        tui.entry.main(["demo", "--port", "8090"])
    assert results == [["demo", "--port", "8090"]]
    assert ran == [["--config", str(tmp_path / "devmesh.yaml")]]
    assert f"the demo keeps running in {tmp_path}" in capsys.readouterr().out
    for args in (["demo", "--no-tui"], ["--debug", "demo", "--help"], ["--config", "x.yaml", "ls"]):
        tui.entry.main(args)
    assert len(ran) == 1
    monkeypatch.setattr(devmesh.cli, "main", lambda args: None)
    tui.entry.main(["--debug", "demo"])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    monkeypatch.setattr(devmesh.cli, "main", lambda args: made)
    tui.entry.main(["demo"])
    assert len(ran) == 1
