"""Identity evidence normalisation (CONTRACT §3.2): resident IDs, other documents, name and mobile keys."""

from __future__ import annotations

from datetime import date

import pytest

from bridge.core.events import DocumentProblem, DocumentType, IdentityDocument
from bridge.core.normalise import (
    InvalidDocument,
    mobile_key,
    name_key,
    normalise_document,
    normalise_resident_id,
    person_evidence,
    resident_id_check_character,
)

VALID = "11010519491231002X"
TODAY = date(2024, 6, 1)


def _with_check(first17: str) -> str:
    return first17 + resident_id_check_character(first17)


# --- resident ID: accepted shapes -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "11010519491231002X",
        "11010519491231002x",  # lower-case x (the contract's example)
        "１１０１０５１９４９１２３１００２ｘ",  # full-width digits and x
        "110105 19491231 002x",
        " 110105\u300019491231\t002X\n",  # ideographic space, tab, newline
        "\u200b110105\u200d19491231\ufeff002X\u2060",  # zero-width characters from copy-paste
    ],
)
def test_resident_id_variants_normalise_to_the_same_number(raw: str) -> None:
    assert normalise_resident_id(raw, today=TODAY) == VALID


def test_legacy_15_digit_number_is_upgraded() -> None:
    # 110105 491231 002 -> 110105 19 491231 002 + check character
    assert normalise_resident_id("110105491231002", today=TODAY) == VALID


def test_upgraded_15_digit_number_gets_a_digit_check_character() -> None:
    assert normalise_resident_id("130503670401001", today=TODAY) == _with_check("13050319670401001")


def test_birth_date_today_is_valid_but_tomorrow_is_not() -> None:
    born_today = _with_check("11010520240601001")
    born_tomorrow = _with_check("11010520240602001")
    assert normalise_resident_id(born_today, today=TODAY) == born_today
    with pytest.raises(InvalidDocument) as caught:
        normalise_resident_id(born_tomorrow, today=TODAY)
    assert caught.value.problem is DocumentProblem.BAD_DATE


def test_leap_day_birth_date_is_real() -> None:
    number = _with_check("11010520000229001")
    assert normalise_resident_id(number, today=TODAY) == number


# --- resident ID: every problem kind -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", DocumentProblem.EMPTY_NUMBER),
        ("   ", DocumentProblem.EMPTY_NUMBER),
        ("\u3000\u200b", DocumentProblem.EMPTY_NUMBER),
        ("1101051949123100", DocumentProblem.BAD_LENGTH),  # 16 digits
        ("1101051949123100201", DocumentProblem.BAD_LENGTH),  # 19 digits
        ("123", DocumentProblem.BAD_LENGTH),
        ("11010519491231002Y", DocumentProblem.BAD_CHARACTERS),
        ("110105-19491231-002X", DocumentProblem.BAD_CHARACTERS),  # only spaces are removed
        ("X1010519491231002X", DocumentProblem.BAD_CHARACTERS),  # X only as the check character
        ("11010549123100X", DocumentProblem.BAD_CHARACTERS),  # a legacy number has no X
        ("\u0661" * 18, DocumentProblem.BAD_CHARACTERS),  # Arabic-Indic digits are not ASCII
        ("1101051949123100ß", DocumentProblem.BAD_CHARACTERS),  # upper() would make it ASCII
        (_with_check("11010519491331002"), DocumentProblem.BAD_DATE),  # month 13
        (_with_check("11010519490230002"), DocumentProblem.BAD_DATE),  # 30 February
        (_with_check("11010518991231002"), DocumentProblem.BAD_DATE),  # before 1900
        ("110105491331002", DocumentProblem.BAD_DATE),  # legacy number, month 13
        ("110105194912310021", DocumentProblem.BAD_CHECKSUM),
        ("110105194912310020", DocumentProblem.BAD_CHECKSUM),
    ],
)
def test_resident_id_problems(raw: str, problem: DocumentProblem) -> None:
    with pytest.raises(InvalidDocument) as caught:
        normalise_resident_id(raw, today=TODAY)
    assert caught.value.problem is problem


def test_invalid_document_is_a_value_error_whose_message_hides_the_number() -> None:
    number = "110105194912310021"
    with pytest.raises(ValueError) as caught:
        normalise_resident_id(number)
    assert isinstance(caught.value, InvalidDocument)
    assert number not in str(caught.value)
    assert "bad_checksum" in str(caught.value)


def test_today_defaults_to_the_current_date() -> None:
    assert normalise_resident_id(VALID) == VALID
    with pytest.raises(InvalidDocument):
        normalise_resident_id(_with_check(f"110105{date.today().year + 1}0101001"))


def test_check_character_needs_17_ascii_digits() -> None:
    assert resident_id_check_character("11010519491231002") == "X"
    with pytest.raises(ValueError):
        resident_id_check_character("１１０１０５１９４９１２３１００２")


# --- other documents ---------------------------------------------------------------------------


@pytest.mark.parametrize("doc_type", [DocumentType.PASSPORT, DocumentType.HK_MACAO_TAIWAN_PERMIT])
@pytest.mark.parametrize(
    ("raw", "number"),
    [("E12345678", "E12345678"), (" e1234 5678 ", "E12345678"), ("Ｅ１２３４５６７８", "E12345678"),
     ("C1234", "C1234"), ("A" * 20, "A" * 20)],
)
def test_other_documents_normalise(doc_type: DocumentType, raw: str, number: str) -> None:
    assert normalise_document(doc_type, raw) == IdentityDocument(type=doc_type, number=number)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", DocumentProblem.EMPTY_NUMBER),
        ("\u3000", DocumentProblem.EMPTY_NUMBER),
        ("E-1234567", DocumentProblem.BAD_CHARACTERS),
        ("E1234567ß", DocumentProblem.BAD_CHARACTERS),
        ("护照12345", DocumentProblem.BAD_CHARACTERS),
        ("E123", DocumentProblem.BAD_LENGTH),
        ("E" * 21, DocumentProblem.BAD_LENGTH),
    ],
)
def test_other_document_problems(raw: str, problem: DocumentProblem) -> None:
    with pytest.raises(InvalidDocument) as caught:
        normalise_document(DocumentType.PASSPORT, raw)
    assert caught.value.problem is problem


def test_resident_id_documents_use_the_resident_id_rules() -> None:
    doc = normalise_document(DocumentType.RESIDENT_ID, "110105491231002", today=TODAY)
    assert doc == IdentityDocument(type=DocumentType.RESIDENT_ID, number=VALID)
    with pytest.raises(InvalidDocument) as caught:
        normalise_document(DocumentType.RESIDENT_ID, "110105194912310021")
    assert caught.value.problem is DocumentProblem.BAD_CHECKSUM


# --- name keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["张伟", "张　伟", "张 伟", " 张伟\t", "张\u200b伟", "\ufeff张伟"])
def test_name_key_ignores_spaces_and_invisible_characters(raw: str) -> None:
    assert name_key(raw) == "张伟"


@pytest.mark.parametrize(
    "raw",
    ["阿依古丽·买买提", "阿依古丽•买买提", "阿依古丽・买买提", "阿依古丽･买买提", "阿依古丽‧买买提",
     "阿依古丽∙买买提", "阿依古丽⋅买买提", "阿依古丽.买买提", "阿依古丽．买买提", "阿依古丽 · 买买提"],
)
def test_name_key_unifies_middle_dots(raw: str) -> None:
    assert name_key(raw) == "阿依古丽\u00b7买买提"


def test_name_key_folds_case_and_width() -> None:
    assert name_key("ＺＨＡＮＧ Wei") == name_key("zhangwei") == "zhangwei"
    assert name_key("Straße") == name_key("STRASSE")


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000", "\u200b\u2060"])
def test_name_key_of_no_name_is_none(raw: str | None) -> None:
    assert name_key(raw) is None


def test_different_names_keep_different_keys() -> None:
    assert name_key("张伟") != name_key("张炜")


# --- mobile keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "138 0013 8000",
        "+86 138-0013-8000",
        "0086 13800138000",
        "+8613800138000",
        "8613800138000",
        "(+86) 138.0013.8000",
        "１３８００１３８０００",  # full-width digits
        "＋８６　１３８　００１３　８０００",  # full-width plus and ideographic spaces
        "\u200b13800138000",
    ],
)
def test_mobile_key_shapes(raw: str) -> None:
    assert mobile_key(raw) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "12800138000",  # second digit must be 3-9
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "+1 415 555 0100",  # another country
        "+85291234567",  # Hong Kong
        "1380013800a",
        "138/0013/8000",
        "010-12345678",  # a landline
        "\u0661\u0663\u0668\u0660\u0660\u0661\u0663\u0668\u0660\u0660\u0660",  # Arabic-Indic
        "13800+138000",
    ],
)
def test_mobile_key_rejects_other_shapes(raw: str | None) -> None:
    assert mobile_key(raw) is None


# --- person evidence ---------------------------------------------------------------------------


def test_person_evidence_with_a_valid_document() -> None:
    evidence = person_evidence(doc_type=DocumentType.RESIDENT_ID, number="11010519491231002x",
                               name="张　伟", mobile="138 0013 8000")
    assert evidence.document == IdentityDocument(type=DocumentType.RESIDENT_ID, number=VALID)
    assert evidence.document_problem is None
    assert (evidence.name_key, evidence.mobile_key) == ("张伟", "13800138000")


def test_person_evidence_with_an_invalid_document_records_the_problem() -> None:
    evidence = person_evidence(doc_type=DocumentType.RESIDENT_ID, number="110105194912310021",
                               name=None, mobile="not a phone")
    assert evidence.document is None
    assert evidence.document_problem is DocumentProblem.BAD_CHECKSUM
    assert evidence.name_key is None and evidence.mobile_key is None


@pytest.mark.parametrize(("doc_type", "number"), [(DocumentType.RESIDENT_ID, None), (None, "E12345678")])
def test_person_evidence_without_a_document(doc_type: DocumentType | None, number: str | None) -> None:
    evidence = person_evidence(doc_type=doc_type, number=number, name=None, mobile=None)
    assert evidence.document is None and evidence.document_problem is None


def test_person_evidence_repr_hides_personal_values() -> None:
    evidence = person_evidence(doc_type=DocumentType.RESIDENT_ID, number=VALID,
                               name="张伟", mobile="13800138000")
    for value in (VALID, "张伟", "13800138000"):
        assert value not in repr(evidence)
