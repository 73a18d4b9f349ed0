"""Policy state as bytes without pickle: a JSON header and plain numeric arrays.

Layout: b"ARTB" + version byte + 4-byte big-endian header length + UTF-8 JSON header + array bytes.

- Version 2 (written): the header is `{"meta": ..., "arrays": [[name, dtype, shape], ...]}` and the
  arrays follow as raw little-endian C-order bytes, in that order. Reading is `np.frombuffer` per array:
  an API worker loads every snapshot the learner publishes on its request path, and version 1's .npz
  (a zip archive, each array header parsed with `ast.literal_eval`) took ~2 ms of that for a LinUCB
  with 8 arms; version 2 takes a small fraction of it (docs/benchmarks.md).
- Version 1 (still read): the header is the meta itself and the arrays are an .npz, loaded with
  allow_pickle=False.

Only numeric and boolean dtypes are written or read, so object arrays can neither be stored nor loaded.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

MAGIC = b"ARTB"
VERSION = 2
_NPZ_VERSION = 1
# dtypes a state may hold, as written (little-endian; one-byte types have no order)
_DTYPES = frozenset(
    {"<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1", "|b1"}
)


def pack(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    specs: list[list[Any]] = []
    chunks: list[bytes] = []
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise ValueError(
                f"state array {name!r} has dtype {arr.dtype}; only numeric arrays are stored"
            )
        arr = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)  # keeps 0-d arrays 0-d
        specs.append([name, arr.dtype.str, list(arr.shape)])
        chunks.append(arr.tobytes())
    header = json.dumps({"meta": meta, "arrays": specs}, separators=(",", ":"), allow_nan=False).encode()
    return b"".join([MAGIC, bytes([VERSION]), struct.pack(">I", len(header)), header, *chunks])


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"policy state must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 9 or data[:4] != MAGIC:
        raise ValueError("not an artbandit policy state (bad magic bytes)")
    if data[4] not in (VERSION, _NPZ_VERSION):
        raise ValueError(f"unsupported policy state version {data[4]} (this build reads 1 and {VERSION})")
    (n,) = struct.unpack(">I", data[5:9])
    try:
        header = json.loads(data[9 : 9 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupt policy state header: {exc}") from exc
    if data[4] == _NPZ_VERSION:
        with np.load(io.BytesIO(data[9 + n :]), allow_pickle=False) as npz:
            return header, {k: npz[k] for k in npz.files}
    return _unpack_raw(header, data, 9 + n)


def _unpack_raw(header: Any, data: bytes, offset: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not isinstance(header, dict) or not isinstance(header.get("meta"), dict):
        raise ValueError("corrupt policy state header: no meta object")
    specs = header.get("arrays")
    if not isinstance(specs, list):
        raise ValueError("corrupt policy state header: no array list")
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        if not (
            isinstance(spec, list)
            and len(spec) == 3
            and isinstance(spec[0], str)
            and spec[0] not in arrays
            and spec[1] in _DTYPES
            and isinstance(spec[2], list)
            and all(type(s) is int and s >= 0 for s in spec[2])
        ):
            raise ValueError(f"corrupt policy state header: bad array entry {spec!r}"[:200])
        name, dtype_text, shape = spec
        dtype = np.dtype(dtype_text)
        count = math.prod(shape)
        end = offset + count * dtype.itemsize
        if end > len(data):
            raise ValueError(f"corrupt policy state: array {name!r} runs past the end of the data")
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
        arrays[name] = arr.astype(dtype.newbyteorder("="), copy=True)  # writable, native order
        offset = end
    if offset != len(data):
        raise ValueError(f"corrupt policy state: {len(data) - offset} bytes after the last array")
    return header["meta"], arrays
