"""Where the bundled data lives.

The bundled tables sit in the repository's ``data/`` folder. Set
``PATHWAYS_DATA_DIR`` to point the library at another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def data_dir() -> Path:
    """Folder holding the bundled tables (``lsoa.parquet`` and friends)."""
    env = os.environ.get("PATHWAYS_DATA_DIR")
    return Path(env) if env else REPO_DIR / "data"
