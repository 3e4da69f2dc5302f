"""Shared fixtures: keep this file small."""

from __future__ import annotations

import geopandas as gpd
import pytest

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
