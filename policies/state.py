"""Policy state as bytes without pickle: a JSON header and an .npz of plain numeric arrays.

Layout: b"ARTB" + version byte + 4-byte big-endian header length + UTF-8 JSON header + npz bytes.
Arrays are loaded with allow_pickle=False, so object arrays can neither be written nor read.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

MAGIC = b"ARTB"
VERSION = 1


def pack(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    header = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
    buf = io.BytesIO()
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"state array {name!r} has dtype object; only numeric arrays are stored")
    payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}  # Any: savez's stubs
    np.savez(buf, **payload)
    return MAGIC + bytes([VERSION]) + struct.pack(">I", len(header)) + header + buf.getvalue()


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"policy state must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 9 or data[:4] != MAGIC:
        raise ValueError("not an artbandit policy state (bad magic bytes)")
    if data[4] != VERSION:
        raise ValueError(f"unsupported policy state version {data[4]} (this build reads {VERSION})")
    (n,) = struct.unpack(">I", data[5:9])
    try:
        meta = json.loads(data[9 : 9 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupt policy state header: {exc}") from exc
    with np.load(io.BytesIO(data[9 + n :]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta, arrays
