"""The course-equivalence table (CONTRACT §4.6): parsing, errors that name the line, default keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.core.courses import CourseKeys, load_equivalences, parse_equivalences
from bridge.core.events import Platform
from bridge.errors import ConfigurationError, EquivalenceTableError

GOOD = (
    "course_key,platform,course_id\n"
    "digital-skills,union,ACFTU-SK-0012\n"
    "digital-skills,ou,NOU-08123\n"
    "safety-basics,union,ACFTU-SF-0001\n"
)


def write(tmp_path: Path, content: str | bytes, name: str = "equivalences.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def test_good_table_maps_both_platforms_to_one_key() -> None:
    keys = parse_equivalences(GOOD)
    assert keys.key_for("union", "ACFTU-SK-0012") == "digital-skills"
    assert keys.key_for("ou", "NOU-08123") == "digital-skills"
    assert keys.key_for("union", "ACFTU-SF-0001") == "safety-basics"
    assert dict(keys.table) == {
        ("union", "ACFTU-SK-0012"): "digital-skills",
        ("ou", "NOU-08123"): "digital-skills",
        ("union", "ACFTU-SF-0001"): "safety-basics",
    }


def test_mapping_is_per_platform() -> None:
    # The same course id on the other platform is a different course.
    keys = parse_equivalences(GOOD)
    assert keys.key_for("ou", "ACFTU-SK-0012") == "ou:ACFTU-SK-0012"


@pytest.mark.parametrize(
    ("platform", "course_id", "expected"),
    [("union", "ACFTU-XX-9999", "union:ACFTU-XX-9999"), ("ou", "NOU-00001", "ou:NOU-00001"), ("ou", "X", "ou:X")],
)
def test_unmapped_course_is_its_own_key(platform: Platform | str, course_id: str, expected: str) -> None:
    assert parse_equivalences(GOOD).key_for(platform, course_id) == expected
    assert CourseKeys().key_for(platform, course_id) == expected


def test_unknown_platform_in_a_lookup_is_an_error() -> None:
    with pytest.raises(ValueError):
        CourseKeys().key_for("moodle", "C1")


def test_the_table_cannot_be_changed_after_loading() -> None:
    keys = parse_equivalences(GOOD)
    with pytest.raises(TypeError):
        keys.table[("union", "NEW")] = "x"  # type: ignore[index]


def test_byte_order_mark_is_accepted_in_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    keys = load_equivalences(str(path))
    assert keys.key_for("ou", "NOU-08123") == "digital-skills"


def test_windows_line_endings_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("\n", "\r\n"))
    assert load_equivalences(str(path)).key_for("union", "ACFTU-SK-0012") == "digital-skills"


def test_blank_lines_and_cell_padding_are_ignored() -> None:
    text = "\n\ncourse_key, platform ,course_id\n\n digital-skills ,union, ACFTU-SK-0012 \n,,\n\n"
    keys = parse_equivalences(text)
    assert dict(keys.table) == {("union", "ACFTU-SK-0012"): "digital-skills"}


def test_header_only_is_an_empty_table() -> None:
    assert dict(parse_equivalences("course_key,platform,course_id\n").table) == {}


def test_repeating_the_same_mapping_is_harmless() -> None:
    keys = parse_equivalences(GOOD + "digital-skills,ou,NOU-08123\n")
    assert keys.key_for("ou", "NOU-08123") == "digital-skills"


def test_no_path_means_no_equivalences() -> None:
    assert dict(load_equivalences(None).table) == {}


# -- errors name the line -----------------------------------------------------------------------


def _error(text: str) -> EquivalenceTableError:
    with pytest.raises(EquivalenceTableError) as caught:
        parse_equivalences(text, "table.csv")
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("course,platform,id\ndigital-skills,union,A\n", 1, "header"),
        ("\n\nkey,platform,course_id\n", 3, "header"),
        ("digital-skills,union,ACFTU-SK-0012\n", 1, "header"),
        ("course_key,platform\n", 1, "header"),
        ("course_key,platform,course_id,extra\n", 1, "header"),
        ("", 1, "header"),
        ("\n  \n", 1, "header"),
    ],
)
def test_bad_or_missing_header(text: str, line: int, words: str) -> None:
    error = _error(text)
    assert error.line == line
    assert words in error.problem
    assert str(error).startswith(f"table.csv, line {line}:")


@pytest.mark.parametrize(
    ("row", "found"),
    [("digital-skills,union", 2), ("digital-skills,union,A,B", 4), ("digital-skills", 1)],
)
def test_wrong_column_count_names_the_line(row: str, found: int) -> None:
    error = _error(GOOD + "\n" + row + "\n")
    assert error.line == 6
    assert f"3 columns, found {found}" in error.problem


@pytest.mark.parametrize("platform", ["UNION", "moodle", "", "o u"])
def test_bad_platform_names_the_line(platform: str) -> None:
    error = _error(f"course_key,platform,course_id\nk1,ou,C1\nk2,{platform},C2\n")
    assert error.line == 3
    assert "platform must be one of ou, union, vocational" in error.problem


@pytest.mark.parametrize("row", [",union,C1", "k1,ou,", " ,ou, ", "k1,union,  "])
def test_empty_cells_name_the_line(row: str) -> None:
    error = _error("course_key,platform,course_id\nk0,ou,C0\n" + row + "\n")
    assert error.line == 3
    assert "must not be empty" in error.problem


def test_conflicting_mapping_names_the_line_and_the_earlier_key() -> None:
    error = _error(GOOD + "other-key,ou,NOU-08123\n")
    assert error.line == 5
    assert "NOU-08123" in error.problem
    assert "digital-skills" in error.problem


def test_line_numbers_count_blank_lines_and_quoted_newlines() -> None:
    text = 'course_key,platform,course_id\n\n"multi\nline key",union,C1\n\nk2,bad,C2\n'
    assert _error(text).line == 6


def test_errors_are_configuration_errors() -> None:
    # The worker's start-up treats every ConfigurationError as "refuse to start".
    assert isinstance(_error("nope\n"), ConfigurationError)


def test_a_file_error_names_the_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "k,union\n")
    with pytest.raises(EquivalenceTableError) as caught:
        load_equivalences(str(path))
    assert caught.value.path == str(path)
    assert caught.value.line == 5
    assert str(caught.value).startswith(f"{path}, line 5:")


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(EquivalenceTableError) as caught:
        load_equivalences(str(missing))
    assert caught.value.path == str(missing)
    assert "cannot read the file" in caught.value.problem


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(EquivalenceTableError) as caught:
        load_equivalences(str(tmp_path))
    assert "cannot read the file" in caught.value.problem


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    path.chmod(0)
    try:
        with pytest.raises(EquivalenceTableError) as caught:
            load_equivalences(str(path))
        assert "cannot read the file" in caught.value.problem
    finally:
        path.chmod(0o600)


def test_a_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "course_key,platform,course_id\n数字技能,union,A\n".encode("gb18030"))
    with pytest.raises(EquivalenceTableError) as caught:
        load_equivalences(str(path))
    assert "not UTF-8" in caught.value.problem
    assert caught.value.path == str(path)
