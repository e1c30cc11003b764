"""What a data file really is, from its first bytes: the extension is only the user's claim.

A Parquet file renamed to .csv, an Excel workbook saved as .csv, a gzip without .gz, a UTF-16
export or random bytes used to reach the CSV parser, which answered with a parse error quoting
binary junk (or, for a workbook, "file is empty"). Sniffing the magic bytes first lets the reader
open what the file is, or refuse it in one line that says what it is and how to fix it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["Sniffed", "clip", "expected_format", "sniff", "sniff_delimiter"]

_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}
_BOMS = [  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
_TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
_CODEC_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}


@dataclass(frozen=True)
class Sniffed:
    """``format``: parquet | arrow | csv, or ``None`` with ``refusal`` (what the file is and the fix).

    ``compression`` is the codec of a compressed text file; ``encoding`` the text's encoding.
    """

    format: str | None
    compression: str | None = None
    encoding: str = "utf-8"
    what: str = ""
    refusal: tuple[str, str] | None = None


def expected_format(path: str) -> str | None:
    """The format the file name claims: ``.parquet``/``.pq``, ``.arrow``/``.feather``/``.ipc``,
    ``.csv``/``.txt``/``.tsv`` (optionally compressed, e.g. ``.csv.gz``), else None."""
    suffixes = [s.lower() for s in PurePosixPath(path).suffixes[-2:]]
    if suffixes and suffixes[-1] in _CODEC_SUFFIXES:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in (".parquet", ".pq"):
        return "parquet"
    if last in (".arrow", ".feather", ".ipc"):
        return "arrow"
    if last in _TEXT_SUFFIXES:
        return "csv"
    return None


def sniff(head: bytes) -> Sniffed:
    """Identify a file from its first few KiB (never from its name)."""
    if head.startswith(b"PAR1"):
        return Sniffed("parquet", what="a Parquet file")
    if head.startswith((b"ARROW1", b"FEA1", b"\xff\xff\xff\xff")):
        return Sniffed("arrow", what="an Arrow/Feather file")
    for magic, codec in _COMPRESSED.items():
        if head.startswith(magic):
            return Sniffed("csv", compression=codec, what=f"{codec}-compressed")
    if head.startswith(b"PK\x03\x04"):
        if b"[Content_Types].xml" in head or b"xl/" in head:
            return _refuse("an Excel workbook (.xlsx)", "export the sheet as CSV (File > Save As > CSV UTF-8)")
        return _refuse("a zip archive", "unzip it and point data.path at the CSV/Parquet file inside")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return _refuse("an Excel 97-2003 workbook (.xls)", "export the sheet as CSV (File > Save As > CSV UTF-8)")
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return Sniffed("csv", encoding=encoding, what=f"{encoding.upper()} text")
    if b"\x00" in head:
        if _looks_utf16(head):
            return Sniffed("csv", encoding="utf-16-le" if head[1:2] == b"\x00" else "utf-16-be", what="UTF-16 text")
        what = f"not UTF-8 text, Parquet or Arrow (binary; it starts with {clip(repr(head[:16]))})"
        return Sniffed(None, what=what, refusal=(what, "give a CSV, Parquet or Arrow file; check that the path names the data file"))
    return Sniffed("csv", what="text")


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 without a BOM: ASCII text with every other byte zero."""
    sample = head[: len(head) // 2 * 2][:4096]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return even.count(0) == 0 and odd.count(0) >= 0.9 * len(odd) or odd.count(0) == 0 and even.count(0) >= 0.9 * len(even)


def _refuse(what: str, fix: str) -> Sniffed:
    return Sniffed(None, what=what, refusal=(f"is {what}", fix))


def sniff_delimiter(line: str) -> str:
    """The delimiter of a header line: the most frequent of , ; tab | outside quotes (ties: ',').

    Excel in many European locales writes ';' (its ',' is the decimal separator).
    """
    counts = dict.fromkeys([",", ";", "\t", "|"], 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] > counts[","] else ","


def clip(text: str, limit: int = 120) -> str:
    """``text`` for a one-line message: control characters escaped, at most ``limit`` characters."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."
