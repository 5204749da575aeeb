"""Locating and reading the data files of the data-backed targets (LGCP, logistic regression).

Data files are never shipped with the package. A target takes an explicit
path, or reads ``<LOGZ_DATA_DIR>/<file>`` where ``LOGZ_DATA_DIR`` is an
environment variable (CI sets it to ``../shared/data`` relative to the repo).

Errors are meant to be read by a person:

- a missing file raises :class:`DataFileNotFound` (a ``FileNotFoundError``)
  naming the path that was tried and the environment variable;
- a malformed CSV raises :class:`MalformedDataFile` (a ``ValueError``)
  naming the file and the 1-based line number.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]

#: Environment variable naming the directory with the benchmark data files.
DATA_DIR_ENV = "LOGZ_DATA_DIR"


class DataFileNotFound(FileNotFoundError):
    """A data file the user asked for does not exist (message names the path and ``LOGZ_DATA_DIR``)."""


class MalformedDataFile(ValueError):
    """A data file exists but cannot be parsed (message names the file and line)."""


def data_dir() -> Optional[Path]:
    """The directory named by ``$LOGZ_DATA_DIR`` (relative paths resolved from the cwd), or None if unset."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def find_data_file(filename: str) -> Optional[Path]:
    """``$LOGZ_DATA_DIR/filename`` if the variable is set and the file exists, else None."""
    d = data_dir()
    if d is None:
        return None
    p = d / filename
    return p if p.is_file() else None


SOURCES = {
    "sonar.csv": "the UCI Machine Learning Repository's Connectionist Bench (Sonar) data, "
                 "208 x 60 with the label first in {-1, 1}",
    "ionosphere.csv": "the UCI Machine Learning Repository's Ionosphere data, 351 x 34 with the "
                      "label first in {-1, 1}",
    "pines.csv": "the Finnish pines point pattern (Moller et al. 1998; spatstat's finpines), "
                 "coordinates rescaled to the unit square",
}
"""Where each data file comes from, for the message that says it is missing."""


def _source(filename: str) -> str:
    return f" ({filename} is {SOURCES[filename]})" if filename in SOURCES else ""


def resolve_data_file(filename: str, path: Optional[PathLike] = None, what: str = "data set") -> Path:
    """Path of a required data file: ``path`` if given, else ``$LOGZ_DATA_DIR/filename``.

    Raises:
        DataFileNotFound: naming the path tried (or that ``LOGZ_DATA_DIR`` is unset)
            and how to fix it.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataFileNotFound(
                f"{what}: data file {str(p)!r} (resolved: {str(p.resolve())!r}) does not exist; "
                f"pass an existing path, or omit it to read {filename!r} from ${DATA_DIR_ENV}")
        return p
    d = data_dir()
    if d is None:
        raise DataFileNotFound(
            f"{what}: no path given and the environment variable {DATA_DIR_ENV} is not set, so "
            f"{filename!r} cannot be found; set {DATA_DIR_ENV} to the directory holding {filename!r} "
            f"(e.g. {DATA_DIR_ENV}=../shared/data) or pass path=...{_source(filename)}")
    p = d / filename
    if not p.is_file():
        raise DataFileNotFound(
            f"{what}: data file {str(p)!r} does not exist ({DATA_DIR_ENV}={os.environ[DATA_DIR_ENV]!r}); "
            f"put {filename!r} there, point {DATA_DIR_ENV} at the right directory, or pass path=..."
            f"{_source(filename)}")
    return p


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (recorded with reference log Z values)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_numeric_csv(path: PathLike, num_columns: Optional[int] = None,
                     min_columns: int = 1) -> tuple[Optional[list[str]], np.ndarray]:
    """Read a comma-separated file of numbers (quoted fields allowed).

    The first non-blank line is a header if any of its fields is not a number.
    Blank lines are skipped. Every data line must have the same number of
    fields (``num_columns`` if given), all parseable as finite floats.

    Args:
        path: the file.
        num_columns: required number of fields per line (None: that of the first line).
        min_columns: minimum number of fields per line.
    Returns:
        (header or None, array float64 [rows, columns]).
    Raises:
        MalformedDataFile: naming the file and the 1-based line number of the first bad line.
    """
    path = Path(path)
    header: Optional[list[str]] = None
    rows: list[list[float]] = []
    width = num_columns
    with open(path, newline="") as f:
        for lineno, fields in enumerate(csv.reader(f), start=1):
            fields = [s.strip() for s in fields]
            if not fields or all(s == "" for s in fields):
                continue
            if header is None and not rows and not all(_is_number(s) for s in fields):
                header = fields
                if width is None:
                    width = len(fields)
                if len(fields) != width or width < min_columns:
                    raise MalformedDataFile(
                        f"{path}, line {lineno} (header): expected {max(width, min_columns)} fields, "
                        f"got {len(fields)}")
                continue
            if width is None:
                width = len(fields)
            if len(fields) != width or width < min_columns:
                raise MalformedDataFile(
                    f"{path}, line {lineno}: expected {max(width, min_columns)} comma-separated fields, "
                    f"got {len(fields)}: {','.join(fields)[:120]!r}")
            vals = []
            for col, s in enumerate(fields, start=1):
                try:
                    v = float(s)
                except ValueError:
                    raise MalformedDataFile(
                        f"{path}, line {lineno}, field {col}: cannot parse {s!r} as a number") from None
                if not np.isfinite(v):
                    raise MalformedDataFile(f"{path}, line {lineno}, field {col}: value {s!r} is not finite")
                vals.append(v)
            rows.append(vals)
    if not rows:
        raise MalformedDataFile(f"{path}: no data lines found")
    return header, np.asarray(rows, dtype=np.float64)


def data_line_numbers(path: PathLike) -> list[int]:
    """1-based line numbers of the data lines of a CSV read by :func:`read_numeric_csv` (for messages)."""
    out: list[int] = []
    seen_header = False
    with open(path, newline="") as f:
        for lineno, fields in enumerate(csv.reader(f), start=1):
            fields = [s.strip() for s in fields]
            if not fields or all(s == "" for s in fields):
                continue
            if not seen_header and not out and not all(_is_number(s) for s in fields):
                seen_header = True
                continue
            out.append(lineno)
    return out


__all__ = ["DATA_DIR_ENV", "DataFileNotFound", "MalformedDataFile", "data_dir", "find_data_file",
           "resolve_data_file", "file_sha256", "read_numeric_csv", "data_line_numbers"]
