"""The install path ops use: a wheel, built offline, installed into a fresh virtualenv.

The wheel is built from a copy of the sources as an sdist would hold them (`pip wheel
--no-build-isolation`, nothing fetched). The fresh virtualenv gets okrsync from that wheel
only (`pip install --no-index --find-links DIST`); its dependencies are the ones this test
runs on, offered through a path file that lists a folder of links to every distribution in
this interpreter's site-packages except okrsync itself (the local wheel mirror lacks some of
them, google-re2 among them, and CI must not download). pip still checks every requirement
of the wheel's metadata against them. Then `okrsync` runs from an empty folder, far from the
checkout, as an operator would run it.

`okrsync init` itself (files, refusal to overwrite, --force, --print) is tested here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from okrsync.cli_init import example_config
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
SDIST_PARTS = ("pyproject.toml", "README.md", "okrsync", "connectors", "config.example.toml")
SDIST_PARTS_DIRS = ("mappings", "docs")
NOT_DEPENDENCIES = ("okrsync", "__editable__", "_distutils_hack", "pip", "setuptools", "pkg_")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _copy_sources(dest: Path) -> Path:
    """The files an sdist holds (no .venv, .git, tests or build leftovers)."""
    dest.mkdir()
    for part in (*SDIST_PARTS, *SDIST_PARTS_DIRS):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=IGNORE)
        else:
            shutil.copy2(source, dest / part)
    return dest


def _dependency_view(dest: Path) -> Path:
    """A folder of links to this interpreter's installed distributions, okrsync excluded."""
    dest.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name
        if name.startswith(NOT_DEPENDENCIES) or name.endswith(".pth") or name == "__pycache__":
            continue
        (dest / name).symlink_to(entry)
    return dest


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OKRSYNC_"))}
    return {**env, "COLUMNS": "200", "NO_COLOR": "1", "PIP_NO_INDEX": "1"}


def _run(*argv: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding okrsync installed from its wheel (bin/ of that venv)."""
    root = tmp_path_factory.mktemp("install")
    src = _copy_sources(root / "src")
    dist = root / "dist"
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", dist, src, cwd=root,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    target = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", target, cwd=root)
    assert made.returncode == 0, made.stderr
    python = target / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = _run(python, "-c", code, cwd=root)
    deps = _dependency_view(root / "deps")
    (Path(purelib.stdout.strip()) / "okrsync_test_deps.pth").write_text(f"{deps}\n")
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-index",
        "--find-links", dist, "okrsync", cwd=root,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return target / "bin"


def test_wheel_ships_the_examples_config_and_schema(venv: Path, tmp_path: Path) -> None:
    """The installed package carries the example mappings, config, signals doc and schema."""
    code = "import okrsync, pathlib; print(pathlib.Path(okrsync.__file__).parent)"
    package = Path(_run(venv / "python", "-c", code, cwd=tmp_path).stdout.strip())
    assert package.is_relative_to(venv.parent), package  # the wheel's copy, not the checkout
    for name in (
        "examples/config.example.toml",
        "examples/mappings/okrs.toml",
        "examples/docs/signals.md",
        "schema/export.schema.json",
    ):
        assert (package / name).is_file(), name


def test_installed_help_and_demo_run_from_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    """`okrsync --help` and `okrsync demo` work from a wheel install, in a folder with nothing."""
    helped = _run(venv / "okrsync", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "init" in helped.stdout
    assert "demo" in helped.stdout
    demo = _run(venv / "okrsync", "demo", cwd=tmp_path, timeout=180)
    assert demo.returncode == 0, demo.stderr
    assert "mapping path does not exist" not in demo.stderr
    assert "the OKR report" in demo.stdout
    assert "Traceback" not in demo.stderr
    assert (tmp_path / ".okrsync-demo" / "okrsync.db").is_file()
    footer = demo.stdout.rsplit("What each signal, status and flag means:", 1)[1]
    footer = footer.split("dashboard:", 1)[0]  # the demo's last line says how to open it
    signals = Path("".join(footer.split()))  # a long path is folded onto the next lines
    assert signals.is_file(), footer  # where every signal is defined: the wheel's copy
    assert signals.is_relative_to(venv.parent), footer


def test_installed_init_writes_a_config_that_loads(venv: Path, tmp_path: Path) -> None:
    """From a wheel, `okrsync init` writes okrsync.toml and mappings/ that load cleanly."""
    made = _run(venv / "okrsync", "init", "deploy", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "deploy" / "okrsync.toml"
    assert (tmp_path / "deploy" / "mappings" / "okrs.toml").is_file()
    checked = _run(venv / "okrsync", "-c", config, "mappings", "check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no errors" in checked.stdout


def test_init_writes_commented_config_and_example_mappings(tmp_path: Path) -> None:
    """`okrsync init DIR` writes the commented example config as okrsync.toml and mappings/."""
    r = run_cli("init", "site", cwd=tmp_path)
    assert r.code == 0, r.stderr
    written = (tmp_path / "site" / "okrsync.toml").read_text(encoding="utf-8")
    assert written.startswith("# Written by `okrsync init`")
    assert written.endswith(example_config())
    mapping = (tmp_path / "site" / "mappings" / "okrs.toml").read_text(encoding="utf-8")
    assert mapping == (REPO / "mappings" / "okrs.toml").read_text(encoding="utf-8")
    assert "okrsync.toml" in r.stdout
    assert "mappings check" in r.stdout


def test_init_refuses_to_overwrite_and_names_the_files(tmp_path: Path) -> None:
    """An existing okrsync.toml or mapping file: exit 2 naming it, nothing written; --force."""
    (tmp_path / "okrsync.toml").write_text("# mine\n", encoding="utf-8")
    r = run_cli("init", cwd=tmp_path)
    assert r.code == 2
    assert "okrsync.toml" in r.stderr
    assert "--force" in r.stderr
    assert "Traceback" not in r.stderr
    assert (tmp_path / "okrsync.toml").read_text(encoding="utf-8") == "# mine\n"
    assert not (tmp_path / "mappings").exists()
    (tmp_path / "okrsync.toml").unlink()
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "okrs.toml").write_text("# mine\n", encoding="utf-8")
    r = run_cli("init", cwd=tmp_path)
    assert r.code == 2
    assert "okrs.toml" in r.stderr
    assert not (tmp_path / "okrsync.toml").exists()
    r = run_cli("init", "--force", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert (tmp_path / "mappings" / "okrs.toml").read_text(encoding="utf-8") != "# mine\n"


def test_init_print_shows_every_key_and_writes_nothing(tmp_path: Path) -> None:
    """`okrsync init --print` prints the commented example config, the one errors point at."""
    r = run_cli("init", "--print", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert r.stdout == (REPO / "config.example.toml").read_text(encoding="utf-8")
    assert list(tmp_path.iterdir()) == []


def test_config_errors_name_a_command_that_prints_the_example(tmp_path: Path) -> None:
    """An unknown or missing key's error names `okrsync init --print`, which documents the key."""
    (tmp_path / "okrsync.toml").write_text('[store]\nurll = "sqlite:///x.db"\n', encoding="utf-8")
    r = run_cli("mappings", "check", cwd=tmp_path)
    assert r.code == 2
    message = " ".join(r.stderr.split())
    assert "okrsync.toml:2" in message
    assert "`okrsync init --print` prints" in message
    printed = run_cli("init", "--print", cwd=tmp_path).stdout
    assert "\nurl = " in printed
