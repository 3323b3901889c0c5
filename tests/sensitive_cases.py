"""The planted suite for the sensitive scan: everyday spellings of secrets, and every field of an
upstream body where one can ride. Shared by the unit tests (``Detector.scan_body``) and the
integration tests (through the app, to a cloud deployment or a local one).

Secrets and key bodies are assembled at run time so that secret scanners never see a whole one.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

AWS_KEY_ID = "AKIA" + "Z3Q7RT5WX2YB6N4M"
AWS_DOC_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCY" + "zq81Xt4Rw9"
AWS_DOC_SECRET = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _bits(rng: random.Random, size: int) -> int:
    return rng.getrandbits(size) | (1 << (size - 1))


def rsa_pkcs1(bits: int = 2048, seed: int = 1) -> bytes:
    """The DER shape of an RSA private key (random numbers of the right sizes)."""
    rng = random.Random(seed)
    numbers = [0, _bits(rng, bits), 65537, _bits(rng, bits)] + [
        _bits(rng, bits // 2) for _ in range(5)
    ]
    return _der(0x30, b"".join(_integer(n) for n in numbers))


def pkcs8(inner: bytes) -> bytes:
    algorithm = _der(0x30, bytes.fromhex("06092a864886f70d0101010500"))
    return _der(0x30, _integer(0) + algorithm + _der(0x04, inner))


def ec_sec1(seed: int = 2) -> bytes:
    rng = random.Random(seed)
    secret = _der(0x04, rng.randbytes(32))
    curve = _der(0xA0, bytes.fromhex("06082a8648ce3d030107"))
    public = _der(0xA1, _der(0x03, b"\x00\x04" + rng.randbytes(64)))
    return _der(0x30, _integer(1) + secret + curve + public)


def certificate(seed: int = 3) -> bytes:
    """A certificate's shape: SEQUENCE { SEQUENCE { [0] version ... } } - public, not secret."""
    rng = random.Random(seed)
    tbs = _der(0xA0, _integer(2)) + _integer(rng.getrandbits(120)) + rng.randbytes(700)
    return _der(0x30, _der(0x30, tbs) + rng.randbytes(270))


def pem_body(der: bytes, width: int = 64, newline: str = "\n") -> str:
    text = base64.b64encode(der).decode()
    return newline.join(text[at : at + width] for at in range(0, len(text), width))


def putty_key() -> str:
    blob = base64.b64encode(random.Random(4).randbytes(48)).decode()
    return (
        "PuTTY-User-Key-File-" + "3: ssh-ed25519\nEncryption: none\nComment: work\n"
        f"Public-Lines: 2\n{blob[:64]}\n{blob[64:]}\nPrivate-" + f"Lines: 1\n{blob}\n"
    )


def openssh_body() -> str:
    raw = b"openssh-key-v1\x00" + random.Random(5).randbytes(300)
    return pem_body(raw, 70)


ARABIC_CARD = "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in "4111 1111 1111 1111")
FULL_WIDTH_CARD = "".join(
    chr(0xFF10 + int(c)) if c.isdigit() else "\u3000" for c in "4111 1111 1111 1111"
)

# (expected detector, spelling): every one must route local.
SPELLINGS: list[tuple[str, str]] = [
    ("card", "4111.1111.1111.1111"),
    ("card", "4111/1111/1111/1111"),
    ("card", "4111  1111  1111  1111"),
    ("card", "4111\u00a01111\u00a01111\u00a01111"),
    ("card", "4111\u20131111\u20131111\u20131111"),
    ("card", "4111 1111-1111 1111"),
    ("card", "3782.822463.10005"),
    ("card", FULL_WIDTH_CARD),
    ("card", ARABIC_CARD),
    ("card", "4\u200b111 1111 11\u200d11 1111"),
    ("card", "\u2067" + "5555 5555 5555 4444" + "\u2069"),
    ("national_id", "SSN 123 45 6789"),
    ("national_id", "ssn 078.05.1120"),
    ("iban", "gb82 west 1234 5698 7654 32"),
    ("iban", "GB82-WEST-1234-5698-7654-32"),
    ("iban", "de89370400440532013000"),
    ("iban", "De89-3704-0044-0532-0130-00"),
    ("email", "jane.doe\uff20acme-corp.com"),
    ("email", "jane.doe@acme\u200b-corp.com"),
    ("phone", "+44\u00a020\u00a07946\u00a00958"),
    ("api_key", f"aws_secret_access_key = {AWS_SECRET}"),
    ("api_key", f"{AWS_DOC_KEY_ID} {AWS_SECRET}"),
    ("api_key", f"SecretAccessKey: {AWS_SECRET}"),
    ("api_key", "the aws secret lives in vault; it is Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1"),
    ("private_key", pem_body(rsa_pkcs1())),
    ("private_key", pem_body(pkcs8(rsa_pkcs1(3072, seed=6)))),
    ("private_key", pem_body(ec_sec1())),
    ("private_key", pem_body(rsa_pkcs1(), newline="\\n")),  # JSON-escaped inside a JSON string
    ("private_key", openssh_body()),
    ("private_key", putty_key()),
]

# Look-alikes of the new spellings that must stay clean.
NEAR_MISSES: list[str] = [
    "4111.1111.1111.1112",
    "version 4111.1111.1111.1111.7 of the firmware",
    "gb83 west 1234 5698 7654 32",
    "ssn 000 12 3456",
    "rows 120 45 6789 120 45",
    f"{AWS_DOC_KEY_ID} {AWS_DOC_SECRET}",
    "commit secret a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 fixes the aws secret handling",
    "the cache path is Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1 on every node",
    "the aws secret lives in vault under name/prod/api/service/credentials/rotated",
    pem_body(certificate()),
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAszcup" + "A" * 80,  # a public key
    "Private lines of the play are kept short.",
]

Body = dict[str, Any]


def _chat(**extra: Any) -> Body:
    return {"messages": [{"role": "user", "content": "Hello"}], **extra}


def _turn(**fields: Any) -> Body:
    return {"messages": [{"role": "user", "content": "Hello", **fields}]}


def _assistant(**fields: Any) -> Body:
    turn = {"role": "assistant", "content": None, **fields}
    return {"messages": [{"role": "user", "content": "Hi"}, turn]}


def _call(name: str = "lookup", call_id: str = "call_1", arguments: str = "{}") -> Body:
    function = {"name": name, "arguments": arguments}
    return _assistant(tool_calls=[{"id": call_id, "type": "function", "function": function}])


def _tool(description: str = "Look up", schema: Any = None) -> Body:
    parameters = schema or {"type": "object", "properties": {"q": {"type": "string"}}}
    function = {"name": "lookup", "description": description, "parameters": parameters}
    return _chat(tools=[{"type": "function", "function": function}])


def _image(url: str) -> Body:
    part = {"type": "image_url", "image_url": {"url": url}}
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "See"}, part]}]}


def _split(secret: str) -> Body:
    half = len(secret) // 2
    parts = [{"type": "text", "text": secret[:half]}, {"type": "text", "text": secret[half:]}]
    return {"messages": [{"role": "user", "content": parts}]}


def _schema(secret: str) -> Any:
    return {"type": "object", "properties": {secret: {"type": "string"}}}


# (endpoint, path name, body builder): the secret placed in one field of the upstream body.
CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
PLACES: list[tuple[str, str, Callable[[str], Body]]] = [
    (CHAT, "content", lambda s: {"messages": [{"role": "user", "content": f"note: {s} ok"}]}),
    (CHAT, "message name", lambda s: _turn(name=s)),
    (CHAT, "unknown message key", lambda s: _turn(x_note=s)),
    (CHAT, "unknown message key name", lambda s: _turn(**{s: "x"})),
    (CHAT, "refusal", lambda s: _assistant(refusal=s)),
    (CHAT, "tool call name", lambda s: _call(name=s)),
    (CHAT, "tool call id", lambda s: _call(call_id=s)),
    (CHAT, "tool call arguments", lambda s: _call(arguments=json.dumps({"v": s}))),
    (CHAT, "image url", lambda s: _image(f"https://img.test/a.png?q={s}")),
    (CHAT, "data url", lambda s: _image(f"data:text/plain,{s}")),
    (CHAT, "split across parts", _split),
    (CHAT, "user", lambda s: _chat(user=s)),
    (CHAT, "tool description", lambda s: _tool(description=s)),
    (CHAT, "tool schema property", lambda s: _tool(schema=_schema(s))),
    (CHAT, "response_format schema", lambda s: _chat(response_format=_json_schema(s))),
    (CHAT, "stop", lambda s: _chat(stop=[s])),
    (COMPLETIONS, "prompt", lambda s: {"prompt": s}),
    (COMPLETIONS, "suffix", lambda s: {"prompt": "def f():", "suffix": s}),
    (EMBEDDINGS, "input list", lambda s: {"input": ["hello", s]}),
]


def _json_schema(secret: str) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": _schema(secret)}}


TOKEN_ID_BODIES: list[tuple[str, Body]] = [
    (COMPLETIONS, {"prompt": [1, 2, 3]}),
    (COMPLETIONS, {"prompt": [[1, 2], [3]]}),
    (EMBEDDINGS, {"input": [101, 2023, 102]}),
    (EMBEDDINGS, {"input": [[101, 2023], [102]]}),
]

# One everyday spelling per detector, placed in every field.
PER_DETECTOR: dict[str, str] = {
    "email": "jane.doe@acme-corp.com",
    "phone": "+44 20 7946 0958",
    "card": "4111.1111.1111.1111",
    "iban": "gb82-west-1234-5698-7654-32",
    "national_id": "123 45 6789",
    "api_key": "sk-" + "proj-" + "Xq7ZtR2mV9kLp4WnB8sYc1Ud6Hf3Ja0E",
    "private_key": "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
}
