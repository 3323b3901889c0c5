"""Bounded memos of hashed feature ids, one per hashing namespace, owned by a Classifier.

Owns the cache that lets a token the classifier has seen before cost one dict lookup instead of
a CRC-32, a mask and the iterator hops between them. Keys are single tokens (a word, a 4-byte
character gram), never a prompt, and a value is exactly what features.py would compute, so a
memo changes speed only, never an id. Each memo is a dict subclass whose `__missing__` hashes a
new token: lookups of known tokens stay in C (`map(memo.__getitem__, tokens)`). When a memo
reaches its cap it is emptied and refills with the tokens traffic still uses, so memory stays
bounded however many distinct tokens clients send.
"""

from __future__ import annotations

from typing import TypeVar
from zlib import crc32

# Tokens per namespace. English instruction vocabulary and 4-grams of instruction starts mostly
# fit; worst case (every slot a fresh token) is a few MB per Classifier.
MEMO_CAP = 1 << 14


_Token = TypeVar("_Token", bytes, int)


class _Memo(dict[_Token, int]):
    __slots__ = ("cap", "mask", "seed")

    def __init__(self, seed: int, mask: int, cap: int = MEMO_CAP) -> None:
        super().__init__()
        self.seed = seed
        self.mask = mask
        self.cap = cap

    def __missing__(self, token: _Token) -> int:
        value = crc32(self.data(token), self.seed) & self.mask
        if len(self) >= self.cap:
            self.clear()
        if self.cap:
            self[token] = value
        return value

    def data(self, token: _Token) -> bytes:
        raise NotImplementedError


class IdMemo(_Memo[bytes]):
    """token -> crc32(token, seed) & mask, for one namespace seed."""

    __slots__ = ()

    def data(self, token: bytes) -> bytes:
        return token


class GramMemo(_Memo[int]):
    """A 4-byte character gram read as a little-endian uint32 -> crc32(its 4 bytes, seed) &
    mask: an int key hashes and compares for a fraction of a bytes key's cost."""

    __slots__ = ()

    def data(self, token: int) -> bytes:
        return token.to_bytes(4, "little")


class SeedMemo(_Memo[bytes]):
    """token -> crc32(token) ^ seed, whole (not masked): the CRC a bigram starting with the
    token continues from, after the namespace's seed is mixed in."""

    __slots__ = ()

    def __missing__(self, token: bytes) -> int:
        value = crc32(token) ^ self.seed
        if len(self) >= self.cap:
            self.clear()
        if self.cap:
            self[token] = value
        return value


class Memos:
    """The classifier's memos: words (instruction and context), bigram seeds, character grams,
    body words, tail words."""

    __slots__ = ("body", "char", "pair", "tail", "word")

    def __init__(
        self, *, mask: int, char: int, body: int, tail: int, pair: int, cap: int = MEMO_CAP
    ) -> None:
        self.word = IdMemo(0, mask, cap)
        self.pair = SeedMemo(pair, mask, cap)
        self.char = GramMemo(char, mask, cap)
        self.body = IdMemo(body, mask, cap)
        self.tail = IdMemo(tail, mask, cap)
