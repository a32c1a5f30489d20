#!/usr/bin/python3
"""Encrypts a file the way the original Python sample does, as an independent
writer of its object layout: a 12-byte random IV, the AES-256-GCM ciphertext,
then the 16-byte tag, in one file. Usage: sample_encrypt.py KEY_HEX IN OUT"""
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

key = bytes.fromhex(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    plain = f.read()
iv = os.urandom(12)
sealed = AESGCM(key).encrypt(iv, plain, None)  # ciphertext || tag
with open(sys.argv[3], "wb") as f:
    f.write(iv + sealed)
