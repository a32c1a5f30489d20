#!/usr/bin/python3
"""Reads tests/sealed/golden/golden.msealed with an implementation of
docs/container.md written from the document alone (Python `cryptography`: HKDF,
HMAC-SHA-384, AES-256-GCM), checks every header field and returns the plaintext.
Exit 0 when the object is exactly what the document says it should be for
golden.key and golden.plain; any difference is printed and exits 1.

It also re-seals golden.plain from scratch with the salt and creation time recorded
in the golden header and checks the result is byte for byte the golden object, so
the writer (not only the reader) follows the document.
"""
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"\x89MSEAL\r\n"
MAC_LEN = 48


def hkdf(key, salt, info, length):
    return HKDF(algorithm=hashes.SHA384(), length=length, salt=salt, info=info).derive(key)


def nonce(index, last):
    return b"\x00\x00\x00" + struct.pack(">Q", index) + (b"\x01" if last else b"\x00")


def parse_fields(body):
    fields, pos, last_tag = {}, 0, -1
    while pos < len(body):
        tag, length = struct.unpack_from(">HI", body, pos)
        pos += 6
        assert tag > last_tag, f"tag 0x{tag:04x} out of order"
        last_tag = tag
        fields[tag] = body[pos:pos + length]
        assert len(fields[tag]) == length, "field runs past the header"
        pos += length
    return fields


def encode_context(ctx):
    out = struct.pack(">I", len(ctx))
    for k in sorted(ctx):
        kb, vb = k.encode(), ctx[k].encode()
        out += struct.pack(">H", len(kb)) + kb + struct.pack(">H", len(vb)) + vb
    return out


def tlv(tag, value):
    return struct.pack(">HI", tag, len(value)) + value


def main():
    key = open(os.path.join(HERE, "golden.key"), "rb").read()
    plain = open(os.path.join(HERE, "golden.plain"), "rb").read()
    obj = open(os.path.join(HERE, "golden.msealed"), "rb").read()
    assert len(key) == 32

    # Preamble
    assert obj[:8] == MAGIC, "magic"
    version, header_size = struct.unpack_from(">II", obj, 8)
    assert version == 1, f"version {version}"
    assert 64 <= header_size <= 1 << 20
    header = obj[:header_size]
    fields = parse_fields(header[16:header_size - MAC_LEN])

    # Keys and the header MAC
    salt = fields[0x0003]
    assert len(salt) == 32
    mac_key = hkdf(key, salt, b"modelseal/v1 header-mac", 48)
    chunk_key = hkdf(key, salt, b"modelseal/v1 chunk-key", 32)
    mac = hmac.new(mac_key, header[:header_size - MAC_LEN], hashlib.sha384).digest()
    assert hmac.compare_digest(mac, header[header_size - MAC_LEN:]), "header MAC"

    # Fields
    (chunk_size,) = struct.unpack(">I", fields[0x0001])
    (plaintext_size,) = struct.unpack(">Q", fields[0x0002])
    assert chunk_size == 4096, chunk_size
    assert plaintext_size == len(plain), plaintext_size
    assert fields[0x0020] == hashlib.sha256(plain).digest(), "sha256 field"
    assert fields[0x0021] == hashlib.sha384(plain).digest(), "sha384 field"
    assert fields[0x0030] == b"golden-model", fields[0x0030]
    assert fields[0x0032] == b"golden.plain", fields[0x0032]
    assert fields[0x0012] == encode_context({}), fields[0x0012]

    # Chunks
    n = max(1, -(-plaintext_size // chunk_size))
    assert len(obj) == header_size + plaintext_size + 16 * n, "sealed size"
    aes = AESGCM(chunk_key)
    out = b""
    for i in range(n):
        start = header_size + i * (chunk_size + 16)
        size = min(chunk_size, plaintext_size - i * chunk_size) + 16
        out += aes.decrypt(nonce(i, i == n - 1), obj[start:start + size], b"")
    assert out == plain, "plaintext"

    # The same object from scratch: fields in ascending tag order, MAC, chunks.
    body = b"".join(tlv(tag, fields[tag]) for tag in sorted(fields))
    rebuilt_header = MAGIC + struct.pack(">II", 1, 16 + len(body) + MAC_LEN) + body
    rebuilt_header += hmac.new(mac_key, rebuilt_header, hashlib.sha384).digest()
    rebuilt = rebuilt_header
    for i in range(n):
        part = plain[i * chunk_size:(i + 1) * chunk_size]
        rebuilt += aes.encrypt(nonce(i, i == n - 1), part, b"")
    assert rebuilt == obj, "re-sealing with the recorded salt and time differs"
    print(f"golden.msealed: {n} chunks, {plaintext_size} bytes, header {header_size} bytes: as documented")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # an assertion, InvalidTag, a short read...
        print(f"golden.msealed does not follow docs/container.md: {type(e).__name__}: {e}",
              file=sys.stderr)
        sys.exit(1)
