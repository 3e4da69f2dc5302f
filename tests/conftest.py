"""Shared fixtures: keep this file small."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import geopandas as gpd
import pytest

REPO = Path(__file__).resolve().parents[1]

#: NHS Sussex Integrated Care Board.
SUSSEX = "E54000053"


@pytest.fixture(scope="session")
def sussex_footprint() -> gpd.GeoDataFrame:
    """The Sussex ICB LSOAs from the bundled table (read once per session)."""
    from pathways.geography import load_footprint

    return load_footprint(SUSSEX)


@pytest.fixture
def sussex(sussex_footprint: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy of the Sussex footprint that a test may change."""
    return sussex_footprint.copy()


def load_build_script(name: str) -> ModuleType:
    """``data/build/<name>.py`` as a module (the build scripts are not part of the package)."""
    path = REPO / "data" / "build" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the script look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ft() -> ModuleType:
    """The travel-model fitting script, ``data/build/fit_travel.py``."""
    return load_build_script("fit_travel")
