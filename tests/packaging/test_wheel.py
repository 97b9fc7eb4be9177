"""The wheel: `pip wheel --no-deps .` builds one that holds the whole package, and it
installs and runs in a fresh venv."""

from __future__ import annotations

import tomllib
import zipfile

from tests.packaging.conftest import REPO, WheelCheck

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"
]


def test_wheel_holds_every_module_of_the_package(wheel_check: WheelCheck) -> None:
    """Each .py file under stovectl/ is in the wheel, which is pure Python."""
    assert wheel_check.wheel.name == f"stovectl-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel_check.wheel) as wheel:
        names = set(wheel.namelist())
    sources = {
        str(path.relative_to(REPO)) for path in (REPO / "stovectl").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources, "no sources found"
    assert sources - names == set()
    assert f"stovectl-{VERSION}.dist-info/entry_points.txt" in names


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel_check: WheelCheck) -> None:
    """stovectl installed from the wheel, with its dependencies, reports its version."""
    assert wheel_check.version_output.strip() == f"stovectl, version {VERSION}"
    assert (wheel_check.venv / "bin" / "stovectl").is_file()
