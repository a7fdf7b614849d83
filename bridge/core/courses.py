"""Canonical course keys (CONTRACT §4.6)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bridge.core import platforms
from bridge.errors import EquivalenceTableError

HEADER = ("course_key", "platform", "course_id")


@dataclass(frozen=True)
class CourseKeys:
    """Maps a platform course to its canonical ``course_key``.

    A course not in the equivalence table is its own key, ``<platform>:<course_id>``.
    """

    table: Mapping[tuple[str, str], str] = field(default_factory=lambda: MappingProxyType({}))

    def key_for(self, platform: str, course_id: str) -> str:
        if not platforms.is_known(platform):
            raise ValueError(f"unknown platform; the registered platforms are {', '.join(platforms.names())}")
        return self.table.get((platform, course_id)) or f"{platform}:{course_id}"


def parse_equivalences(text: str, source: str = "<equivalences>") -> CourseKeys:
    """Parse the CSV ``course_key,platform,course_id``; errors name the line."""
    rows = csv.reader(io.StringIO(text))
    table: dict[tuple[str, str], str] = {}
    seen_header = False
    for row in rows:
        line = rows.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = tuple(cell.strip() for cell in row)
        if not seen_header:
            if cells != HEADER:
                raise EquivalenceTableError(source, line, f"expected the header {','.join(HEADER)}")
            seen_header = True
            continue
        if len(cells) != 3:
            raise EquivalenceTableError(source, line, f"expected 3 columns, found {len(cells)}")
        course_key, platform, course_id = cells
        if not course_key or not course_id:
            raise EquivalenceTableError(source, line, "course_key and course_id must not be empty")
        known = platforms.names()
        if platform not in known:
            raise EquivalenceTableError(source, line, f"platform must be one of {', '.join(known)}, not {platform!r}")
        previous = table.get((platform, course_id))
        if previous is not None and previous != course_key:
            raise EquivalenceTableError(
                source, line, f"{platform} course {course_id} is already mapped to {previous}"
            )
        table[(platform, course_id)] = course_key
    if not seen_header:
        raise EquivalenceTableError(source, 1, f"empty table: expected the header {','.join(HEADER)}")
    return CourseKeys(MappingProxyType(table))


def load_equivalences(path: str | None) -> CourseKeys:
    """Read the table from ``path`` (``None``: no equivalences)."""
    if path is None:
        return CourseKeys()
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except OSError as exc:
        raise EquivalenceTableError(str(path), 0, f"cannot read the file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise EquivalenceTableError(str(path), 0, "the file is not UTF-8") from exc
    return parse_equivalences(text, str(path))
