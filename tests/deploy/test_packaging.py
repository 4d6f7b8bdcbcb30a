"""The package a non-editable install builds (the Dockerfile's `pip install .`) holds every package of the tree:
setuptools' package list is written by hand, and a folder missing from it works in the editable checkout and
fails only in the image."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"kloset": "kloset", "services": "kloset/services", "workers": "kloset/workers"}  # folder -> package


def packages_in_tree() -> set[str]:
    found = set()
    for folder, package in SOURCES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add("/".join([package, *init.parent.relative_to(ROOT / folder).parts]))
    return found


def test_the_wheel_holds_every_package_of_the_tree(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", "dist"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("kloset-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert packages_in_tree() - in_wheel == set()
