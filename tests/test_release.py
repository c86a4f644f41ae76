"""The release path (docs/releasing.md): the sdist and wheel build from a clean copy of the repository,
pass `twine check`, carry the distribution name, the supported Pythons and the schemas, ship no tests that
could not run, and the wheel installs into a fresh virtualenv with a working `tap-wootric` command."""

from __future__ import annotations

import email
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import tools

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "singer-tap-wootric"
SCHEMAS = sorted(path.name for path in (ROOT / "tap_wootric" / "schemas").glob("*.json"))
# Everything a clone holds that is not the source: virtualenvs, tools, build output.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", ".venv-*", ".tools", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".ruff_cache", "demo-output", ".venv-original",
                                    "singer-check-tap-data", ".meltano")


def pythons_make_test_runs():
    """The Pythons `make test` runs: the one running pytest and the Makefile's OTHER_PYTHONS."""
    others = re.search(r"^OTHER_PYTHONS \?= (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    return sorted({*others, f"{sys.version_info.major}.{sys.version_info.minor}"}, key=lambda v: tuple(map(int,
                                                                                                         v.split("."))))


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    source = tmp_path_factory.mktemp("release") / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    out = source.parent / "dist"
    twine = tools.ensure("build-twine")
    proc = subprocess.run([str(twine.parent / "python"), "-m", "build", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_sdist_and_wheel_pass_twine_check(dist):
    proc = subprocess.run([str(tools.ensure("build-twine")), "check", "--strict", *map(str, dist)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_wheel_metadata_names_the_distribution_and_the_pythons_make_test_runs(dist):
    _, wheel = dist
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        entry_points = archive.read(metadata_name.replace("METADATA", "entry_points.txt")).decode()
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Requires-Python"] == f">={pythons_make_test_runs()[0]}"
    classified = sorted((c.rsplit(" :: ", 1)[1] for c in metadata.get_all("Classifier")
                         if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)),
                        key=lambda v: tuple(map(int, v.split("."))))
    assert classified == pythons_make_test_runs()
    assert "tap-wootric = tap_wootric:main" in entry_points
    assert sorted(name.rsplit("/", 1)[1] for name in names if name.startswith("tap_wootric/schemas/")) == SCHEMAS
    assert not [name for name in names if name.startswith("tests/")]


@pytest.mark.slow
def test_sdist_ships_no_tests_it_cannot_run(dist):
    sdist, _ = dist
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    assert not [name for name in names if name.startswith("tests/")]
    assert {"README.md", "LICENSE", "setup.py", "pyproject.toml", "CHANGELOG.md"} <= set(names)
    assert {f"tap_wootric/schemas/{name}" for name in SCHEMAS} <= set(names)


@pytest.mark.slow
def test_the_wheel_installs_and_runs(dist, tmp_path, fake):
    """The wheel alone (its dependencies are borrowed from the test venv, to save their download) gives a working
    command that runs the wheel's own code and schemas."""
    _, wheel = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                           "--disable-pip-version-check", "--no-deps", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # A .pth adds the test venv's site-packages as a plain directory: its own .pth files (the editable install of
    # this checkout) are not processed, so tap_wootric can only come from the wheel.
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    (site_packages / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    command = str(venv / "bin" / "tap-wootric")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import tap_wootric; print(tap_wootric.__file__)"],
                           capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(site_packages)), where.stdout
    version = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("tap-wootric "), version.stderr
    about = json.loads(subprocess.run([command, "--about"], capture_output=True, text=True, timeout=60,
                                      check=True).stdout)
    assert about["supported_python_versions"] == pythons_make_test_runs()
    # Discovery (against the fake API) reads the packaged schemas.
    config = tmp_path / "config.json"
    config.write_text(json.dumps(fake.config()))
    discovered = subprocess.run([command, "--config", str(config), "--discover"], capture_output=True, text=True,
                                timeout=60)
    assert discovered.returncode == 0, discovered.stderr[-2000:]
    assert len(json.loads(discovered.stdout)["streams"]) == len(SCHEMAS)
