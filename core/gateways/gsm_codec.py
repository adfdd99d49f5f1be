"""GSM 03.38 (3GPP TS 23.038) 7-bit default alphabet as one octet per septet.

SMPP carries GSM-7 text with data_coding=0 as *unpacked* septets, one per octet; the SMSC
packs them for the air interface. Characters of the extension table (and of a national
language single shift table, when one is announced in the UDH) are written as ESC (0x1B)
followed by their code. Only single shift tables are supported: locking shift tables replace
the whole alphabet and are rarely supported by handsets outside their country.

The table is written out here rather than imported so the encoder can be checked against
independent transcriptions (tests compare it with smpplib's table and core.gsm_tables).
"""

from __future__ import annotations

from types import MappingProxyType

ESC = 0x1B

# Code order: character at position i has septet value i. 0x1B is the escape, not a character.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_BASIC) == 128

_EXTENSION = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}  # fmt: skip

# National language single shift tables (TS 23.038 Annex A.2): the default extension plus
# national letters. Key: the name used in URLs and OutboundMessage.shift_table.
_NATIONAL: dict[str, tuple[int, dict[int, str]]] = {
    "turkish": (1, {
        0x47: "Ğ", 0x49: "İ", 0x53: "Ş", 0x63: "ç", 0x65: "€", 0x67: "ğ", 0x69: "ı", 0x73: "ş",
    }),
    "spanish": (2, {
        0x09: "ç", 0x41: "Á", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú",
        0x61: "á", 0x65: "€", 0x69: "í", 0x6F: "ó", 0x75: "ú",
    }),
    "portuguese": (3, {
        0x05: "ê", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á", 0x0F: "á",
        0x12: "Φ", 0x13: "Γ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ", 0x18: "Σ", 0x19: "Θ", 0x1F: "Ê",
        0x41: "À", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x5B: "Ã", 0x5C: "Õ",
        0x61: "Â", 0x65: "€", 0x69: "í", 0x6F: "ó", 0x75: "ú", 0x7B: "ã", 0x7C: "õ", 0x7F: "â",
    }),
}  # fmt: skip

#: National language identifiers (value of UDH IE 0x24), by table name.
NATIONAL_LANGUAGE_IDS: MappingProxyType[str, int] = MappingProxyType(
    {name: nli for name, (nli, _) in _NATIONAL.items()}
)
SHIFT_TABLES: tuple[str, ...] = tuple(_NATIONAL)


def _shift_table(shift: str | None) -> dict[int, str]:
    if shift is None:
        return _EXTENSION
    try:
        return {**_EXTENSION, **_NATIONAL[shift][1]}
    except KeyError:
        raise ValueError(
            f"unknown GSM shift table {shift!r}; known: {', '.join(SHIFT_TABLES)}"
        ) from None


def _encode_map(shift: str | None) -> dict[int, str]:
    """str.translate table: character -> its octets as a latin-1 string."""
    table: dict[int, str] = {}
    for code, ch in enumerate(_BASIC):
        if code != ESC:
            table[ord(ch)] = chr(code)
    for code, ch in _shift_table(shift).items():
        table.setdefault(ord(ch), "\x1b" + chr(code))  # the basic alphabet wins (one septet)
    # Every other ASCII character must not pass through translate() unchanged.
    for cp in range(0x80):
        table.setdefault(cp, "\uffff")
    return table


def _decode_maps(shift: str | None) -> tuple[str, dict[int, str]]:
    return _BASIC, _shift_table(shift)


_ENCODE_MAPS: dict[str | None, dict[int, str]] = {s: _encode_map(s) for s in (None, *SHIFT_TABLES)}

#: Every character encodable with the default alphabet and extension table.
GSM7_CHARS: frozenset[str] = frozenset(
    chr(cp) for cp, v in _ENCODE_MAPS[None].items() if v != "\uffff"
)


class GsmEncodeError(ValueError):
    """A character has no GSM-7 code; says which and where."""

    def __init__(self, text: str, position: int, shift: str | None) -> None:
        ch = text[position]
        table = f" with the {shift} shift table" if shift else ""
        super().__init__(
            f"character {ch!r} (U+{ord(ch):04X}) at position {position} "
            f"is not in the GSM 03.38 alphabet{table}"
        )
        self.position = position


def encode(text: str, shift: str | None = None) -> bytes:
    """Encode `text` as unpacked GSM-7 septets, one per octet (extension chars: ESC + code)."""
    try:
        table = _ENCODE_MAPS[shift]
    except KeyError:
        _shift_table(shift)  # raises the clear error
        raise
    out = text.translate(table)
    if out.isascii():
        return out.encode("ascii")
    for i, ch in enumerate(text):
        if table.get(ord(ch), "\uffff") == "\uffff":
            raise GsmEncodeError(text, i, shift)
    raise AssertionError("unreachable")  # pragma: no cover


def decode(data: bytes, shift: str | None = None) -> str:
    """Decode unpacked GSM-7 octets. An unknown escape decodes as the basic character,
    as TS 23.038 asks of receivers; a trailing lone ESC is dropped."""
    basic, ext = _decode_maps(shift)
    out: list[str] = []
    escaped = False
    for b in data:
        b &= 0x7F
        if escaped:
            out.append(ext.get(b, basic[b] if b != ESC else " "))
            escaped = False
        elif b == ESC:
            escaped = True
        else:
            out.append(basic[b])
    return "".join(out)


def is_gsm7(text: str, shift: str | None = None) -> bool:
    """True when every character of `text` has a GSM-7 code (with the given shift table)."""
    table = _ENCODE_MAPS[shift]
    return text.translate(table).isascii()


def septets(text: str, shift: str | None = None) -> int:
    """Number of septets `text` takes (extension characters count two)."""
    return len(encode(text, shift))
