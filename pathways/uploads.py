"""Checks on files users upload, before and while they are read.

The planner works on aggregate data only: small areas with a population count, sites
with a capacity. Three things are checked here, for the web app and the library alike:

- **Size**: an upload larger than ``PATHWAYS_MAX_UPLOAD_MB`` megabytes (default
  :data:`DEFAULT_MAX_UPLOAD_MB`) is refused before it is read, and a zipped Shapefile
  may not unpack to more than :data:`ZIP_EXPANSION_LIMIT` times that (a "zip bomb").
- **Patient-level data**: a table with a column of NHS numbers (10 digits with a valid
  modulus-11 check digit), a date-of-birth column, or (for areas) a column of full UK
  postcodes, one per row, describes people rather than areas, and is refused with a
  message saying why (the web app also deletes the file at once and says so).
- **File names**: a name given by a browser is reduced to a plain file name (letters,
  digits, ``.``, ``-``, ``_``, brackets and spaces) before it is used on disk.

Every refusal is an :class:`~pathways.errors.InputError` naming the file, and where it
can the row and field.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pathways.errors import InputError, Problem

log = logging.getLogger(__name__)

ENV_MAX_UPLOAD_MB = "PATHWAYS_MAX_UPLOAD_MB"
#: Largest upload accepted by default, in megabytes (10**6 bytes).
DEFAULT_MAX_UPLOAD_MB = 20.0
#: A zipped Shapefile may unpack to at most this many times the upload limit.
ZIP_EXPANSION_LIMIT = 5
#: A column counts as holding NHS numbers / postcodes / dates when at least this share
#: of its non-blank cells do, and at least ``MIN_MATCHES`` cells do.
PERSONAL_SHARE = 0.8
MIN_MATCHES = 2
#: ... and, for dates and postcodes, more than this share of those cells differ.
DISTINCT_SHARE = 0.5
#: Names of columns that hold a date of birth (compared without case, spaces, ``_``,
#: ``-`` or ``.``).
BIRTH_COLUMN_NAMES = frozenset({"dob", "dateofbirth", "birthdate", "birthday", "birth", "bdate"})
NHS_NUMBER_COLUMN_NAMES = frozenset({"nhsnumber", "nhsno", "nhsnum"})

AGGREGATE_ONLY = (
    "only aggregate data may be uploaded (a count of people per small area, a capacity "
    "per site), never records of individual people"
)

# A full UK postcode (outward and inward code), e.g. "BN1 1AA", "SW1A 2AA", "M1 1AE".
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")
_DATE_PATTERNS = (
    (re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T].*)?$"), "%Y-%m-%d"),
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "%d/%m/%Y"),
    (re.compile(r"^\d{1,2}-\d{1,2}-\d{4}$"), "%d-%m-%Y"),
    (re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$"), "%d.%m.%Y"),
)
_SAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ ()-]+")
MAX_NAME_LENGTH = 100


# --------------------------------------------------------------------------- size


def max_upload_bytes() -> int:
    """The upload size limit in bytes: ``PATHWAYS_MAX_UPLOAD_MB`` megabytes, else 20 MB.

    A value that is not a positive number is ignored (with a warning in the log), so a
    typo in the environment cannot switch the limit off.
    """
    raw = os.environ.get(ENV_MAX_UPLOAD_MB, "").strip()
    megabytes = DEFAULT_MAX_UPLOAD_MB
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if value > 0 and value != float("inf"):
            megabytes = value
        else:
            log.warning("%s=%r is not a positive number; using %g MB", ENV_MAX_UPLOAD_MB, raw,
                        DEFAULT_MAX_UPLOAD_MB)  # fmt: skip
    return int(megabytes * 1_000_000)


def browser_max_bytes() -> int:
    """Files larger than this are not even sent by the browser (``dcc.Upload(max_size=...)``).

    Three times the limit: a file a little over the limit is sent and refused with a
    message that says the limit; a far larger one would only cost the server memory.
    """
    return 3 * max_upload_bytes()


def request_max_bytes() -> int:
    """Largest request body the server reads (Flask ``MAX_CONTENT_LENGTH``): the largest
    file the browser sends, base64-encoded (4/3 as long), plus room for the session."""
    return browser_max_bytes() * 4 // 3 + 5_000_000


def limit_text() -> str:
    """The limit as the upload boxes state it: ``"Files up to 20 MB."``."""
    return f"Files up to {describe_size(max_upload_bytes())}."


def describe_size(n_bytes: float) -> str:
    """A size as people read it: ``"20 MB"``, ``"1.5 MB"``, ``"800 KB"``."""
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:.1f}".rstrip("0").rstrip(".") + " MB"
    return f"{max(n_bytes / 1000, 0.1):.1f}".rstrip("0").rstrip(".") + " KB"


def check_size(n_bytes: int, name: str, limit: int | None = None) -> None:
    """Refuse an upload of ``n_bytes`` over the limit, before any of it is read."""
    limit = max_upload_bytes() if limit is None else limit
    if n_bytes > limit:
        raise InputError(
            Problem(
                name,
                None,
                None,
                f"the file is {describe_size(n_bytes)}, more than the {describe_size(limit)} "
                "the app accepts; upload a smaller file (for example only your ICB's areas, or "
                f"a zipped Shapefile). The limit is set by {ENV_MAX_UPLOAD_MB}.",
            )
        )


def check_zip(path: str | Path, name: str, limit: int | None = None) -> None:
    """Refuse a zip that is not one, unpacks to far more than the upload limit, or names
    files outside itself (``../``, absolute paths)."""
    limit = max_upload_bytes() if limit is None else limit
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        # zipfile refuses damaged archives and unsupported versions in all these ways
        raise InputError(Problem(name, None, None, "this is not a readable zip file")) from None
    unpacked = sum(m.file_size for m in members)
    if unpacked > ZIP_EXPANSION_LIMIT * limit:
        raise InputError(
            Problem(
                name,
                None,
                None,
                f"the zip file unpacks to {describe_size(unpacked)}, more than the "
                f"{describe_size(ZIP_EXPANSION_LIMIT * limit)} allowed",
            )
        )
    for m in members:
        parts = Path(m.filename.replace("\\", "/")).parts
        if m.filename.startswith(("/", "\\")) or ".." in parts or "\x00" in m.filename:
            raise InputError(
                Problem(
                    name, None, None, f"the zip file holds a file outside itself ({m.filename!r})"
                )
            )


# --------------------------------------------------------------------------- names


def safe_file_name(filename: str | None, default: str = "upload") -> str:
    """A file name that is safe to create in a folder the app controls.

    Keeps only the last part of the name (after any ``/`` or ``\\``), replaces every
    character other than letters, digits, ``.``, ``-``, ``_``, brackets and space by ``_``, drops
    leading dots and spaces (no hidden files, no ``..``) and keeps at most
    :data:`MAX_NAME_LENGTH` characters, extension included.
    """
    text = str(filename or "")
    text = re.split(r"[/\\]", text)[-1]
    text = _SAFE_NAME_CHARS.sub("_", text).lstrip(". ").rstrip(" ")
    if not text or set(text) <= {"_", "."}:
        text = default
    if len(text) > MAX_NAME_LENGTH:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:10] if dot else ""
        keep = MAX_NAME_LENGTH - len(ext) - (1 if ext else 0)
        text = (stem or text)[:keep] + (f".{ext}" if ext else "")
    return text


# --------------------------------------------------------------------------- patient-level data


def is_nhs_number(text: str) -> bool:
    """A 10-digit NHS number with a valid modulus-11 check digit (spaces and ``-`` allowed).

    Weights 10..2 on the first nine digits; the check digit is 11 minus the remainder of
    the weighted sum by 11 (11 becomes 0; 10 means the number is not valid).
    """
    digits = re.sub(r"[\s-]", "", str(text))
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def is_full_postcode(text: str) -> bool:
    """A full UK postcode (``BN1 1AA``), not a district (``BN1``) or a sector (``BN1 1``)."""
    return bool(_POSTCODE.match(re.sub(r"\s+", " ", str(text).strip().upper())))


def is_birth_date(text: str, today: dt.date | None = None) -> bool:
    """A calendar date from 1900 to today, written as a date is in a spreadsheet."""
    value = str(text).strip()
    for pattern, fmt in _DATE_PATTERNS:
        if pattern.match(value):
            try:
                day = dt.datetime.strptime(value[:10].strip(), fmt).date()
            except ValueError:
                return False
            return dt.date(1900, 1, 1) <= day <= (today or dt.date.today())
    return False


def _plain_name(column: str) -> str:
    return re.sub(r"[\s_.\-]", "", str(column).lower())


def _cells(values: pd.Series) -> list[str]:
    """The column's non-blank cells as text."""
    text = values.astype("string").fillna("").str.strip()
    return [v for v in text.tolist() if v]


def _mostly(cells: list[str], test, distinct: bool = False) -> bool:
    """Whether most of a column's cells pass ``test`` (see :data:`PERSONAL_SHARE`).

    ``distinct``: the matching values must also mostly differ from row to row (one date
    repeated down a column is a date the table was made, not a birthday per row).
    """
    hits = [v for v in cells if test(v)]
    enough = len(hits) >= min(MIN_MATCHES, len(cells)) and len(hits) >= PERSONAL_SHARE * len(cells)
    if enough and distinct and len(hits) > 1:
        enough = len(set(hits)) > DISTINCT_SHARE * len(hits)
    return bool(cells) and enough


def _first_row(values: pd.Series, cell: str, rows: Iterable[int]) -> int | None:
    text = values.astype("string").fillna("").str.strip().tolist()
    for value, row in zip(text, rows, strict=False):
        if value == cell:
            return int(row)
    return None


def personal_columns(table: pd.DataFrame, what: str) -> list[tuple[str, str]]:
    """Columns of ``table`` that describe individual people: ``(column, what it holds)``.

    ``what`` is ``"areas"`` or ``"sites"``: a site has an address, so a postcode per row
    is expected in a sites file and looked for in areas files only.
    """
    found: list[tuple[str, str]] = []
    for column in table.columns:
        cells = _cells(table[column])
        if not cells:
            continue
        plain = _plain_name(column)
        if plain in NHS_NUMBER_COLUMN_NAMES or _mostly(cells, is_nhs_number):
            found.append((str(column), "NHS numbers"))
        elif plain in BIRTH_COLUMN_NAMES or "dateofbirth" in plain or "birthdate" in plain:
            found.append((str(column), "dates of birth"))
        elif what == "areas" and _mostly(cells, is_birth_date, distinct=True):
            found.append((str(column), "dates (of birth, or of individual events)"))
        elif what == "areas" and _mostly(cells, is_full_postcode, distinct=True):
            found.append((str(column), "full postcodes, one per row"))
    return found


def check_aggregate_only(
    table: pd.DataFrame, name: str, what: str, rows: Iterable[int] | None = None
) -> None:
    """Refuse a table that looks like records of individual people (see the module doc).

    ``rows``: the row number, as the user sees it, of each row of ``table`` (used to point
    at the first offending cell).
    """
    found = personal_columns(table, what)
    if not found:
        return
    row_numbers = list(rows) if rows is not None else list(range(2, len(table) + 2))
    problems = []
    for column, holds in found:
        cells = _cells(table[column])
        row = _first_row(table[column], cells[0], row_numbers) if cells else None
        problems.append(
            Problem(
                name,
                row,
                column,
                f"this column holds {holds}, so the file looks like patient-level data: "
                + AGGREGATE_ONLY,
            )
        )
    raise InputError(problems)


__all__ = [
    "AGGREGATE_ONLY",
    "DEFAULT_MAX_UPLOAD_MB",
    "browser_max_bytes",
    "limit_text",
    "request_max_bytes",
    "ENV_MAX_UPLOAD_MB",
    "check_aggregate_only",
    "check_size",
    "check_zip",
    "describe_size",
    "is_birth_date",
    "is_full_postcode",
    "is_nhs_number",
    "max_upload_bytes",
    "personal_columns",
    "safe_file_name",
]
