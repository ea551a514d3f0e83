"""Decoders for HTTP content codings that stop at a byte budget, so a gzip bomb never fully inflates.

httpx decodes each network chunk whole (one 64 KB gzip chunk can become 66 MB); these decode at most
``room + 1`` bytes per call, which is all the caller needs to see that a body is over its cap.
brotli is used only when installed in a version that can bound its output (1.2+).
"""

from __future__ import annotations

import importlib
import importlib.util
import zlib
from typing import Any, Protocol


class DecodeError(ValueError):
    """The body could not be decoded, or its coding is not one we asked for."""


def _load_brotli() -> Any:
    """The ``brotli`` module if it is installed and can bound its output, else None."""
    if importlib.util.find_spec("brotli") is None:
        return None
    module = importlib.import_module("brotli")
    return module if hasattr(module.Decompressor(), "can_accept_more_data") else None


_BROTLI = _load_brotli()
ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI is not None else "gzip, deflate"
"""What to send as Accept-Encoding: only codings :func:`decoder` can bound."""


class Decoder(Protocol):
    def decode(self, data: bytes, room: int) -> bytes:
        """Decoded bytes for ``data``: everything, or a little more than ``room`` bytes (then stop)."""
        ...


class _Identity:
    def decode(self, data: bytes, room: int) -> bytes:
        return data


class _Zlib:
    """gzip, or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._first = True
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes, room: int) -> bytes:
        try:
            if self._first and not self._gzip and data:
                self._first = False
                try:
                    return self._inflate(data, room)
                except zlib.error:
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._inflate(data, room)
        except zlib.error as exc:
            raise DecodeError(f"cannot decode {'gzip' if self._gzip else 'deflate'} body ({exc})") from None

    def _inflate(self, data: bytes, room: int) -> bytes:
        out = bytearray()
        while data and len(out) <= room:
            out += self._z.decompress(data, room + 1 - len(out))  # max_length >= 1 (0 means unbounded)
            data = self._z.unconsumed_tail
        return bytes(out)


class _Brotli:
    def __init__(self) -> None:
        self._d = _BROTLI.Decompressor()

    def decode(self, data: bytes, room: int) -> bytes:
        try:
            out = bytearray(self._d.process(data, output_buffer_limit=room + 1))
            while len(out) <= room and not self._d.can_accept_more_data():
                more = self._d.process(b"", output_buffer_limit=room + 1 - len(out))
                if not more:
                    break
                out += more
        except _BROTLI.error as exc:
            raise DecodeError(f"cannot decode br body ({exc})") from None
        return bytes(out)


_UNSUPPORTED = frozenset({"br", "zstd", "compress", "x-compress"})


def decoder(content_encoding: str) -> Decoder:
    """A decoder for a Content-Encoding header value; ``DecodeError`` for codings we cannot bound.

    An unknown single label (servers send "utf-8" by mistake) means plain bytes, as httpx reads it.
    """
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return _Identity()
    if len(codings) == 1:
        coding = codings[0]
        if coding in ("gzip", "x-gzip", "deflate"):
            return _Zlib(gzip=coding != "deflate")
        if coding == "br" and _BROTLI is not None:
            return _Brotli()
        if coding not in _UNSUPPORTED:
            return _Identity()
    raise DecodeError(f"unsupported Content-Encoding {content_encoding!r}")
