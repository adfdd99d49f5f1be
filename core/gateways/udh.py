"""User Data Header (3GPP TS 23.040 9.2.3.24): concatenation and national language shift.

A multi-part SMS carries, in front of each part's text, a UDH announcing "part `seq` of
`total`, reference `ref`" so the handset can reassemble it. We use the 8-bit reference IE
(0x00): UDHL=5, IEI=0x00, IEDL=3, ref, total, seq, six octets in all, and set the UDHI bit
(esm_class 0x40) on the submit_sm. A national language single shift table adds IE 0x24.
"""

from __future__ import annotations

from dataclasses import dataclass

IE_CONCAT_8BIT = 0x00
IE_CONCAT_16BIT = 0x08
IE_SINGLE_SHIFT = 0x24
IE_LOCKING_SHIFT = 0x25


def build_udh(
    *, ref: int | None = None, total: int = 1, seq: int = 1, national_language: int | None = None
) -> bytes:
    """The UDH octets (with the UDHL length octet first), or b"" when nothing to announce."""
    ies = bytearray()
    if total > 1:
        if ref is None or not 0 <= ref <= 255:
            raise ValueError(f"concatenation reference must be 0..255, got {ref!r}")
        if not 1 <= seq <= total <= 255:
            raise ValueError(f"part {seq} of {total} is out of range (1..total, total <= 255)")
        ies += bytes((IE_CONCAT_8BIT, 3, ref, total, seq))
    if national_language is not None:
        ies += bytes((IE_SINGLE_SHIFT, 1, national_language))
    if not ies:
        return b""
    return bytes((len(ies),)) + bytes(ies)


@dataclass(frozen=True)
class Udh:
    """A parsed UDH: the concatenation fields (when present) and every IE by id."""

    length: int  # octets taken by the UDH including the UDHL octet
    ref: int | None = None
    total: int = 1
    seq: int = 1
    national_language: int | None = None
    ies: tuple[tuple[int, bytes], ...] = ()


def split_udh(short_message: bytes) -> tuple[Udh, bytes]:
    """Split a short_message sent with UDHI set into its header and its payload."""
    if not short_message:
        raise ValueError("empty short_message cannot carry a UDH")
    udhl = short_message[0]
    end = 1 + udhl
    if end > len(short_message):
        raise ValueError(f"UDH length {udhl} exceeds the message ({len(short_message)} octets)")
    pos = 1
    ies: list[tuple[int, bytes]] = []
    ref: int | None = None
    total, seq, nli = 1, 1, None
    while pos + 2 <= end:
        iei, iedl = short_message[pos], short_message[pos + 1]
        data = short_message[pos + 2 : pos + 2 + iedl]
        if pos + 2 + iedl > end:
            raise ValueError(f"UDH element 0x{iei:02X} overruns the header")
        ies.append((iei, bytes(data)))
        if iei == IE_CONCAT_8BIT and iedl == 3:
            ref, total, seq = data[0], data[1], data[2]
        elif iei == IE_CONCAT_16BIT and iedl == 4:
            ref, total, seq = (data[0] << 8) | data[1], data[2], data[3]
        elif iei == IE_SINGLE_SHIFT and iedl == 1:
            nli = data[0]
        pos += 2 + iedl
    udh = Udh(length=end, ref=ref, total=total, seq=seq, national_language=nli, ies=tuple(ies))
    return udh, short_message[end:]
