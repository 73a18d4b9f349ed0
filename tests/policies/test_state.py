"""Policy state bytes: version 2 (raw arrays) round-trips every stored dtype, version 1 (.npz) still
loads, and corrupt or hostile bytes are refused with ValueError, never half-loaded."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from policies import create_policy, load_policy, state

META = {"policy": "x", "state": {"n": 3}}


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "A_inv": rng.normal(size=(3, 4, 4)),
        "counts": np.arange(5, dtype=np.int64),
        "half": rng.normal(size=6).astype(np.float32),
        "mask": np.array([True, False, True]),
        "bytes": np.frombuffer(b"vw model bytes", dtype=np.uint8),
        "scalar": np.float64(2.5),
        "empty": np.zeros((0, 4)),
        "big_endian": np.arange(3, dtype=">i4"),
    }


def v1_bytes(meta: dict[str, object], arrs: dict[str, np.ndarray]) -> bytes:
    """The layout this build wrote before version 2: JSON meta, then an .npz."""
    header = json.dumps(meta, separators=(",", ":")).encode()
    buf = io.BytesIO()
    np.savez(buf, **arrs)  # type: ignore[arg-type]
    return b"ARTB" + bytes([1]) + struct.pack(">I", len(header)) + header + buf.getvalue()


def test_version_2_round_trips_every_dtype_and_shape() -> None:
    original = arrays()
    data = state.pack(META, original)
    assert data[4] == 2
    meta, loaded = state.unpack(data)
    assert meta == META
    assert list(loaded) == list(original)
    for name, arr in original.items():
        got = loaded[name]
        assert got.shape == np.shape(arr) and got.dtype == np.asarray(arr).dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, arr)
        assert got.flags.writeable and got.dtype.isnative


def test_version_1_states_still_load() -> None:
    original = {k: v for k, v in arrays().items() if k != "big_endian"}
    meta, loaded = state.unpack(v1_bytes(META, original))
    assert meta == META
    for name, arr in original.items():
        np.testing.assert_array_equal(loaded[name], arr)


def test_a_policy_saved_in_version_1_loads_and_decides_alike() -> None:
    p = create_policy("linucb", arms=["a", "b", "c"], features=["romance", "comedy"], seed=3)
    for i in range(50):
        p.learn({"romance": i % 2, "comedy": 1 - i % 2}, ["a", "b", "c"][i % 3], float(i % 5 == 0), 0.5)
    meta, arrs = state.unpack(p.to_bytes())
    old = load_policy(v1_bytes(meta, arrs))
    new = load_policy(p.to_bytes())
    ctx = {"romance": 1.0, "comedy": 0.2}
    assert old.probabilities(ctx) == new.probabilities(ctx) == p.probabilities(ctx)


def test_object_arrays_are_never_written() -> None:
    with pytest.raises(ValueError, match="only numeric arrays"):
        state.pack(META, {"bad": np.array([{"x": 1}], dtype=object)})


def raw(header: object, payload: bytes = b"", version: int = 2) -> bytes:
    h = json.dumps(header).encode()
    return b"ARTB" + bytes([version]) + struct.pack(">I", len(h)) + h + payload


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a state", "bad magic bytes"),
        (raw({"meta": {}, "arrays": []}, version=3), "unsupported policy state version 3"),
        (b"ARTB\x02\x00\x00\x00\x03{x}", "corrupt policy state header"),
        (raw([1, 2]), "no meta object"),
        (raw({"meta": {}}), "no array list"),
        (raw({"meta": {}, "arrays": [["x", "|O", [1]]]}, b"\x00" * 8), "bad array entry"),
        (raw({"meta": {}, "arrays": [["x", "<f8", [-1]]]}), "bad array entry"),
        (raw({"meta": {}, "arrays": [["x", "<f8", [1.5]]]}), "bad array entry"),
        (raw({"meta": {}, "arrays": [["x", "<f8", [1]]] * 2}, b"\x00" * 16), "bad array entry"),
        (raw({"meta": {}, "arrays": [["x", "<f8", [4]]]}, b"\x00" * 16), "runs past the end"),
        (raw({"meta": {}, "arrays": [["x", "<f8", [1]]]}, b"\x00" * 9), "1 bytes after the last array"),
    ],
)
def test_corrupt_states_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        state.unpack(data)
