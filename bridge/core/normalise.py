"""Normalisation and validation of identity evidence (CONTRACT §3): pure functions, no I/O.

Also the text limits every input message must respect (CONTRACT §1), shared by the platform
adapters and the decision parser so that no store, HMAC or encoder is the first to meet bad text.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from bridge.core.events import DocumentProblem, DocumentType, IdentityDocument, PersonEvidence

# --- the limits every message must respect (CONTRACT §1) ----------------------------------------

#: A message's largest size in bytes (1 MiB), checked before it is decoded.
MAX_MESSAGE_BYTES = 1_048_576
#: Account numbers, event ids and course ids: at most this many characters of printable text.
MAX_ID_LENGTH = 128
#: Names: at most this many characters.
MAX_NAME_LENGTH = 64
#: A raw document or phone number longer than this is unusable evidence (a data-quality problem,
#: never bad input: CONTRACT §3.2 keeps processing the event). The longest real one, full-width and
#: spaced out, is well under half of it; the bound keeps NFKC and hashing away from huge values.
MAX_EVIDENCE_LENGTH = 64

# Unicode "graphic" characters (The Unicode Standard, §2.4): letters, marks, numbers, punctuation,
# symbols and space separators. Not printable: controls (Cc, NUL included), format characters (Cf:
# zero-width and bidirectional controls that make two identical-looking ids differ), surrogates (Cs),
# private-use (Co) and unassigned (Cn) code points, line and paragraph separators (Zl, Zp).
_GRAPHIC = frozenset(
    "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs".split()
)
# A NUL or an unpaired surrogate can reach a decoded JSON string only through a \u escape (strict
# UTF-8 decoding refuses encoded surrogates, strict JSON refuses raw control characters in strings).
_BAD_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_BAD_ESCAPE_BYTES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# Paired surrogates are joined by the JSON decoder, so any surrogate left in a string is unpaired.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def is_printable(text: str) -> bool:
    """Whether every character of ``text`` is a Unicode graphic character (see ``_GRAPHIC``).

    ``str.isprintable`` decides at C speed for almost every id; it also refuses the space separators
    other than U+0020 (a no-break or ideographic space), which are printable text, so those are
    looked at one character at a time.
    """
    return text.isprintable() or all(unicodedata.category(ch) in _GRAPHIC for ch in text)


def may_escape_bad_text(json_text: str | bytes) -> bool:
    """Whether raw JSON text holds a ``\\u0000`` or ``\\ud800``-``\\udfff`` escape (cheap; false positives only).

    Most messages hold no backslash at all: a one-character search (tens of nanoseconds) settles
    them; the others pay one regular-expression scan.
    """
    if isinstance(json_text, str):
        return "\\" in json_text and _BAD_ESCAPE.search(json_text) is not None
    return b"\\" in json_text and _BAD_ESCAPE_BYTES.search(json_text) is not None


def holds_bad_text(document: object) -> bool:
    """Whether any string of a decoded JSON document, object keys included, has a NUL or a surrogate.

    Walks with an explicit stack, so no nesting depth can exhaust Python's.
    """
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _BAD_TEXT.search(node):
                return True
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and _BAD_TEXT.search(key):
                    return True
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return False


# --- identity evidence ---------------------------------------------------------------------------

_RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_ID_CHECK = "10X98765432"

# Invisible characters that copy-paste leaves behind; NFKC keeps them and str.isspace() misses them.
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
# Separators people type inside a name (张·伟, 阿依古丽.买买提); "." is included because
# transliterated minority names are often entered with a full stop instead of the middle dot.
_NAME_DOTS = frozenset("\u00b7\u0387\u2022\u2027\u2219\u22c5\u2e31\u30fb\uff65.")
_MIDDLE_DOT = "\u00b7"
# Characters people use to group digits in a phone number; anything else makes it unusable.
_PHONE_SEPARATORS = frozenset("-().")

_RESIDENT_ID_CHARS = frozenset("0123456789X")
_ID18 = re.compile(r"[0-9]{17}[0-9X]")
_ID15 = re.compile(r"[0-9]{15}")
_OTHER_DOCUMENT = re.compile(r"[A-Z0-9]+")
_OTHER_DOCUMENT_LENGTH = range(5, 21)
_PHONE = re.compile(r"\+?[0-9]+")
_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")


class InvalidDocument(ValueError):
    """A document number that cannot be used; ``problem`` says why. The message never holds the number."""

    def __init__(self, problem: DocumentProblem) -> None:
        super().__init__(f"identity document number rejected: {problem.value}")
        self.problem = problem


def resident_id_check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected 17 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first17, _RESIDENT_ID_WEIGHTS))
    return _RESIDENT_ID_CHECK[total % 11]


def _compact(raw: str) -> str:
    """NFKC, then drop whitespace (full-width spaces included, NFKC maps them) and zero-width characters."""
    if raw.isascii():
        # NFKC leaves ASCII as it is, zero-width characters are not ASCII, and split() drops
        # exactly the characters isspace() names: the same result, without a loop per character.
        return "".join(raw.split())
    text = unicodedata.normalize("NFKC", raw)
    return "".join(ch for ch in text if not ch.isspace() and ch not in _ZERO_WIDTH)


def _compact_upper(raw: str) -> str:
    """A compacted document number, upper-cased; raises for an empty, over-long or non-ASCII one."""
    if len(raw) > MAX_EVIDENCE_LENGTH:
        raise InvalidDocument(DocumentProblem.BAD_LENGTH)
    number = _compact(raw)
    if not number:
        raise InvalidDocument(DocumentProblem.EMPTY_NUMBER)
    # Checked before upper() because some non-ASCII letters upper-case into ASCII ("ß" -> "SS").
    if not number.isascii():
        raise InvalidDocument(DocumentProblem.BAD_CHARACTERS)
    return number.upper()


def normalise_resident_id(raw: str, *, today: date | None = None) -> str:
    """Return the valid 18-character, upper-case resident ID number written in ``raw``.

    Follows CONTRACT §3.2: NFKC, whitespace and zero-width characters removed, ``x`` upper-cased;
    a 15-digit legacy number is upgraded to 18. The birth date must be a real date from 1900 up
    to ``today`` (default: the current date). Raises :class:`InvalidDocument` otherwise.
    """
    number = _compact_upper(raw)
    if not set(number) <= _RESIDENT_ID_CHARS:
        raise InvalidDocument(DocumentProblem.BAD_CHARACTERS)
    if len(number) == 15:
        if not _ID15.fullmatch(number):
            raise InvalidDocument(DocumentProblem.BAD_CHARACTERS)
        first17 = number[:6] + "19" + number[6:]
        _check_birth_date(first17[6:14], today)
        return first17 + resident_id_check_character(first17)
    if len(number) != 18:
        raise InvalidDocument(DocumentProblem.BAD_LENGTH)
    if not _ID18.fullmatch(number):
        raise InvalidDocument(DocumentProblem.BAD_CHARACTERS)
    _check_birth_date(number[6:14], today)
    if resident_id_check_character(number[:17]) != number[17]:
        raise InvalidDocument(DocumentProblem.BAD_CHECKSUM)
    return number


def _check_birth_date(yyyymmdd: str, today: date | None) -> None:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        raise InvalidDocument(DocumentProblem.BAD_DATE) from None
    if born.year < 1900 or born > (today or date.today()):
        raise InvalidDocument(DocumentProblem.BAD_DATE)


def normalise_document(doc_type: DocumentType, raw: str, *, today: date | None = None) -> IdentityDocument:
    """Validate and normalise a document number of the given type; raises :class:`InvalidDocument`.

    Resident IDs follow :func:`normalise_resident_id`. Passports and permits are NFKC-normalised,
    stripped of whitespace and zero-width characters, upper-cased, and must then be 5-20
    characters of ``A-Z`` and ``0-9``.
    """
    if doc_type is DocumentType.RESIDENT_ID:
        return IdentityDocument(type=doc_type, number=normalise_resident_id(raw, today=today))
    number = _compact_upper(raw)
    if not _OTHER_DOCUMENT.fullmatch(number):
        raise InvalidDocument(DocumentProblem.BAD_CHARACTERS)
    if len(number) not in _OTHER_DOCUMENT_LENGTH:
        raise InvalidDocument(DocumentProblem.BAD_LENGTH)
    return IdentityDocument(type=doc_type, number=number)


def name_key(raw: str | None) -> str | None:
    """The comparison key of a person's name, or ``None`` when there is no name.

    NFKC (folds width variants), no whitespace or zero-width characters, every middle-dot
    variant written as U+00B7, case-folded: "张　伟" and "张伟" share a key.
    """
    if raw is None:
        return None
    key = "".join(_MIDDLE_DOT if ch in _NAME_DOTS else ch for ch in _compact(raw)).casefold()
    return key or None


def mobile_key(raw: str | None) -> str | None:
    """The 11-digit Chinese mobile number written in ``raw``, or ``None`` when it is not one.

    Accepts width variants, spaces and ``-().`` separators, and a ``+86``, ``0086`` or ``86``
    country prefix. Any other character, any other country, or more than ``MAX_EVIDENCE_LENGTH``
    characters gives ``None``.
    """
    if raw is None or len(raw) > MAX_EVIDENCE_LENGTH:
        return None
    text = "".join(ch for ch in _compact(raw) if ch not in _PHONE_SEPARATORS)
    if not _PHONE.fullmatch(text):
        return None
    if text.startswith("+"):
        if not text.startswith("+86"):
            return None
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif len(text) == 13 and text.startswith("86"):
        text = text[2:]
    return text if _CN_MOBILE.fullmatch(text) else None


def person_evidence(
    *,
    doc_type: DocumentType | None,
    number: str | None,
    name: str | None,
    mobile: str | None,
    today: date | None = None,
) -> PersonEvidence:
    """Build the normalised evidence of one event from its raw personal fields.

    A missing number gives neither a document nor a problem; an invalid one gives
    ``document_problem`` and no document (CONTRACT §3.2: it links nothing, the event still counts).
    """
    document = problem = None
    if doc_type is not None and number is not None:
        try:
            document = normalise_document(doc_type, number, today=today)
        except InvalidDocument as exc:
            problem = exc.problem
    return PersonEvidence(
        document=document,
        document_problem=problem,
        name_key=name_key(name),
        mobile_key=mobile_key(mobile),
    )
