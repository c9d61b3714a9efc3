"""Packaging: a built wheel ships the MNIST data, and the installed package finds it.

The wheel is built from a copy of the source tree in tmp_path (setuptools builds in-tree, and the
working tree must not get build/ or *.egg-info folders from a test run), offline
(``--no-build-isolation --no-deps``). The test is skipped, not failed, when pip or setuptools is
missing or pip reports a network problem.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs",
                                "report", "out", ".venv", "venv", "*.pyc")
NETWORK_HINTS = ("Could not fetch", "NewConnectionError", "Temporary failure in name resolution",
                 "Network is unreachable", "No matching distribution found")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_wheel_ships_the_data_and_finds_it_when_installed(tmp_path):
    pytest.importorskip("setuptools")
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not available in this interpreter")
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORE)
    wheels = tmp_path / "wheels"
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(wheels), str(source)], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0 and any(h in result.stdout + result.stderr for h in NETWORK_HINTS):
        pytest.skip(f"pip needs the network here: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stdout + result.stderr
    built = sorted(wheels.glob("bornmachine-*.whl"))
    assert len(built) == 1, list(wheels.iterdir())

    with zipfile.ZipFile(built[0]) as whl:
        names = set(whl.namelist())
        assert "bornmachine/data/mnist5k.npz" in names
        assert "bornmachine/data/README.md" in names
        assert "bornmachine/__init__.py" in names and "bornmachine/__main__.py" in names
        assert not any(n.startswith("tests/") for n in names)
        # the shipped copies are the files in data/
        assert sha256(whl.read("bornmachine/data/mnist5k.npz")) == sha256((ROOT / "data" / "mnist5k.npz").read_bytes())
        assert whl.read("bornmachine/data/README.md") == (ROOT / "data" / "README.md").read_bytes()
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        assert entry_points is not None
        assert "bornmachine = bornmachine.cli:main" in whl.read(entry_points).decode()
        # "install" by unpacking the wheel (pure Python) into a fresh folder
        site = tmp_path / "site"
        whl.extractall(site)

    # the unpacked package loads its own data copy, from a folder with no data/ beside it
    probe = ("import bornmachine, bornmachine.datasets as d; "
             "p = d._data_path('mnist5k.npz'); x, y = d.load('mnist5k', split='test'); "
             "print(bornmachine.__file__); print(p); print(x.shape)")
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONNOUSERSITE="1")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    module_file, data_file, shape = result.stdout.strip().splitlines()
    assert Path(module_file).resolve().is_relative_to(site.resolve())
    assert Path(data_file).resolve() == (site / "bornmachine" / "data" / "mnist5k.npz").resolve()
    assert shape == "(1000, 784)"
