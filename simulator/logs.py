"""Logged decisions with outcomes: the flat CSV/Parquet format and DSJSON, read and written.

The formats are documented in docs/formats.md. Reading validates everything an off-policy estimate
depends on and refuses clearly, naming the row and column: logs without propensities, empty files,
malformed lines, propensities outside (0, 1], rewards that are not numbers, missing contexts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service.reporting.ope import LoggedData, LogsError

CONTEXT_PREFIX = "context."
PROB_PREFIX = "prob."
DEFAULT_TITLE = "default"


def to_frame(data: LoggedData) -> pd.DataFrame:
    """The flat format as a DataFrame (what `write_flat` stores)."""
    cols: dict[str, Any] = {"title_id": data.title}
    for j, f in enumerate(data.features):
        cols[CONTEXT_PREFIX + f] = data.contexts[:, j]
    cols.update(artwork_id=data.artwork, reward=data.reward, propensity=data.propensity)
    if data.probabilities is not None:
        for j, a in enumerate(data.artworks):
            cols[PROB_PREFIX + a] = data.probabilities[:, j]
    return pd.DataFrame(cols)


# ----------------------------------------------------------------------------- flat CSV / Parquet
def read_flat(path: str | Path) -> LoggedData:
    path = Path(path)
    if not path.exists():
        raise LogsError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LogsError(f"{path}: the file is empty")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise LogsError(
            f"{path}: cannot be read as {'Parquet' if path.suffix == '.parquet' else 'CSV'}: {exc}"
        ) from exc
    return from_frame(frame, source=str(path))


def from_frame(frame: pd.DataFrame, source: str = "logs") -> LoggedData:
    if frame.empty:
        raise LogsError(f"{source}: no rows")
    columns = [str(c) for c in frame.columns]
    if "propensity" not in columns:
        raise LogsError(
            f"{source}: column 'propensity' is missing. Off-policy estimates need the logging probability of "
            "each shown artwork; logs without propensities cannot be evaluated"
        )
    for name in ("artwork_id", "reward"):
        if name not in columns:
            raise LogsError(f"{source}: required column {name!r} is missing")
    features = [c[len(CONTEXT_PREFIX) :] for c in columns if c.startswith(CONTEXT_PREFIX)]
    if not features:
        raise LogsError(f"{source}: no context columns (columns named '{CONTEXT_PREFIX}<feature>')")
    prob_cols = [c for c in columns if c.startswith(PROB_PREFIX)]
    n = len(frame)
    title = (
        frame["title_id"].astype(str).to_numpy()
        if "title_id" in columns
        else np.full(n, DEFAULT_TITLE, dtype=object)
    )
    artwork = frame["artwork_id"]
    missing = artwork.isna().to_numpy()
    if missing.any():
        raise LogsError(f"{source}: row {int(np.argmax(missing)) + 1}, column 'artwork_id': missing value")
    contexts = np.column_stack([_numbers(frame, CONTEXT_PREFIX + f, source) for f in features])
    reward = _numbers(frame, "reward", source)
    propensity = _numbers(frame, "propensity", source)
    bad = ~((propensity > 0) & (propensity <= 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise LogsError(
            f"{source}: row {row + 1}, column 'propensity': must be in (0, 1], got {float(propensity[row])!r}"
        )
    probabilities = None
    artworks = list(dict.fromkeys(artwork.astype(str).tolist()))
    if prob_cols:
        probabilities = np.column_stack([_numbers(frame, c, source, allow_nan=True) for c in prob_cols])
        artworks = [c[len(PROB_PREFIX) :] for c in prob_cols]
    data = LoggedData(
        np.asarray(title, dtype=object), features, contexts, artwork.astype(str).to_numpy(dtype=object),
        reward, propensity, artworks, probabilities,
    )  # fmt: skip
    if probabilities is not None:
        _check_probabilities(data, source)
    return data


def _numbers(frame: pd.DataFrame, column: str, source: str, allow_nan: bool = False) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if allow_nan:
        bad &= ~(np.isnan(values) & frame[column].isna().to_numpy())
    if bad.any():
        row = int(np.argmax(bad))
        raise LogsError(
            f"{source}: row {row + 1}, column {column!r}: must be a finite number, "
            f"got {_plain(frame[column].iloc[row])!r}"
        )
    return values


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_probabilities(data: LoggedData, source: str) -> None:
    assert data.probabilities is not None
    index = {a: j for j, a in enumerate(data.artworks)}
    for i, (a, q) in enumerate(zip(data.artwork.tolist(), data.propensity.tolist(), strict=True)):
        j = index.get(a)
        if j is None:
            raise LogsError(
                f"{source}: row {i + 1}, column 'artwork_id': {a!r} has no '{PROB_PREFIX}{a}' column"
            )
        p = data.probabilities[i, j]
        if not math.isclose(p, q, rel_tol=1e-6, abs_tol=1e-9):
            raise LogsError(
                f"{source}: row {i + 1}, column '{PROB_PREFIX}{a}': "
                f"the shown artwork's probability {float(p)!r} "
                f"differs from its propensity {q!r}"
            )
    sums = np.nansum(data.probabilities, axis=1)
    off = np.abs(sums - 1.0) > 1e-4
    if off.any():
        row = int(np.argmax(off))
        raise LogsError(
            f"{source}: row {row + 1}: probabilities ('{PROB_PREFIX}*' columns) "
            f"sum to {float(sums[row]):.6g}, not 1"
        )


def write_flat(data: LoggedData, path: str | Path) -> Path:
    path = Path(path)
    frame = to_frame(data)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- DSJSON
def dsjson_line(record: Mapping[str, Any]) -> str:
    """One decision with its outcome as a Decision Service JSON line (what VW's `--dsjson` reads).

    `record` keys: event_id, timestamp (ISO-8601 string), title_id, variant, user_id, context (mapping),
    artworks (ids in the service's order), probabilities (same order), artwork_id (shown), propensity,
    model_version, reward (None: no outcome known yet).
    """
    artworks = list(record["artworks"])
    probs = [float(p) for p in record["probabilities"]]
    chosen = artworks.index(record["artwork_id"])
    order = [chosen] + [j for j in range(len(artworks)) if j != chosen]
    reward = record.get("reward")
    line: dict[str, Any] = {
        "_label_cost": -float(reward) if reward is not None else 0.0,
        "_label_probability": float(record["propensity"]),
        "_label_Action": chosen + 1,
        "_labelIndex": chosen,
        "o": []
        if reward is None
        else [{"v": float(reward), "EventId": record["event_id"], "ActionTaken": False}],
        "Timestamp": record["timestamp"],
        "Version": "1",
        "EventId": record["event_id"],
        "a": [j + 1 for j in order],
        "c": {
            "Viewer": {k: float(v) for k, v in record["context"].items()},
            "_multi": [{"Artwork": {"id": a}} for a in artworks],
        },
        "p": [probs[j] for j in order],
        "VWState": {"m": str(record.get("model_version", 0))},
        # artbandit's own fields; VW ignores them
        "title_id": record["title_id"],
        "variant": record.get("variant", ""),
        "user_id": record.get("user_id", ""),
    }
    if reward is None:
        line["_skipLearn"] = True
    return json.dumps(line, separators=(",", ":"))


def write_dsjson(records: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    n = 0
    with Path(path).open("w") as fh:
        for record in records:
            fh.write(dsjson_line(record) + "\n")
            n += 1
    return n


def _flatten_numbers(obj: Mapping[str, Any], out: dict[str, float]) -> None:
    for key, value in obj.items():
        if key.startswith("_"):
            continue
        if isinstance(value, Mapping):
            _flatten_numbers(value, out)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)


def _artwork_id(action: Any, position: int) -> str:
    if isinstance(action, Mapping):
        for value in action.values():
            if isinstance(value, Mapping) and isinstance(value.get("id"), str):
                return str(value["id"])
        if isinstance(action.get("id"), str):
            return str(action["id"])
    return f"action_{position + 1}"


def read_dsjson(path: str | Path) -> LoggedData:
    """Read DSJSON lines (from artbandit or elsewhere); lines marked `_skipLearn` (no outcome) are skipped."""
    path = Path(path)
    if not path.exists():
        raise LogsError(f"{path}: no such file")
    rows: list[tuple[str, dict[str, float], list[str], list[float], int, float, float]] = []
    with path.open() as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            rows.extend(_parse_dsjson(text, lineno, path))
    if not rows:
        raise LogsError(f"{path}: no decisions with outcomes")
    features = list(dict.fromkeys(f for r in rows for f in r[1]))
    if not features:
        raise LogsError(f"{path}: no numeric context features in any line's 'c'")
    artworks = list(dict.fromkeys(a for r in rows for a in r[2]))
    index = {a: j for j, a in enumerate(artworks)}
    probabilities = np.full((len(rows), len(artworks)), np.nan)
    for i, r in enumerate(rows):
        for a, p in zip(r[2], r[3], strict=True):
            probabilities[i, index[a]] = p
    data = LoggedData(
        title=np.array([r[0] for r in rows], dtype=object),
        features=features,
        contexts=np.array([[r[1].get(f, 0.0) for f in features] for r in rows]),
        artwork=np.array([r[2][r[4]] for r in rows], dtype=object),
        reward=np.array([r[5] for r in rows]),
        propensity=np.array([r[6] for r in rows]),
        artworks=artworks,
        probabilities=probabilities,
    )
    _check_probabilities(data, str(path))
    return data


def _parse_dsjson(
    text: str, lineno: int, path: Path
) -> list[tuple[str, dict[str, float], list[str], list[float], int, float, float]]:
    where = f"{path}: line {lineno}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LogsError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise LogsError(f"{where}: expected a JSON object")
    if obj.get("_skipLearn"):
        return []
    for key in ("_label_cost", "_label_probability", "a", "c", "p"):
        if key not in obj:
            raise LogsError(f"{where}: field {key!r} is missing")
    c, a, p = obj["c"], obj["a"], obj["p"]
    if not isinstance(c, dict) or not isinstance(c.get("_multi"), list) or not c["_multi"]:
        raise LogsError(f"{where}: field 'c' must be an object with a non-empty '_multi' list of artworks")
    multi = c["_multi"]
    ids = [_artwork_id(action, j) for j, action in enumerate(multi)]
    if not isinstance(a, list) or sorted(a) != list(range(1, len(multi) + 1)):
        raise LogsError(
            f"{where}: field 'a' must list each of the {len(multi)} actions once (1-based), got {a!r}"
        )
    if not isinstance(p, list) or len(p) != len(a) or not all(_is_number(x) for x in p):
        raise LogsError(f"{where}: field 'p' must hold {len(a)} numbers, got {p!r}")
    cost, prop = obj["_label_cost"], obj["_label_probability"]
    if not _is_number(cost):
        raise LogsError(f"{where}: field '_label_cost' must be a number, got {cost!r}")
    if not _is_number(prop) or not 0 < prop <= 1:
        raise LogsError(f"{where}: field '_label_probability' must be in (0, 1], got {prop!r}")
    context: dict[str, float] = {}
    _flatten_numbers(c, context)
    probs = [0.0] * len(multi)
    for action, prob in zip(a, p, strict=True):
        probs[action - 1] = float(prob)
    chosen = int(a[0]) - 1
    title = str(obj.get("title_id", DEFAULT_TITLE))
    return [(title, context, ids, probs, chosen, -float(cost), float(prop))]


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def read_logs(path: str | Path) -> LoggedData:
    """Read logs by extension: .csv, .parquet, .json/.jsonl/.dsjson (DSJSON)."""
    path = Path(path)
    if path.suffix in (".json", ".jsonl", ".dsjson"):
        return read_dsjson(path)
    if path.suffix in (".csv", ".parquet"):
        return read_flat(path)
    raise LogsError(f"{path}: unknown log format {path.suffix!r}; use .csv, .parquet or .dsjson/.jsonl")


def records_to_data(records: Sequence[Mapping[str, Any]]) -> LoggedData:
    """Decision records (as `dsjson_line` takes them, with rewards) -> LoggedData for the flat format."""
    done = [r for r in records if r.get("reward") is not None]
    if not done:
        raise LogsError("no decisions with outcomes to export")
    features = list(dict.fromkeys(f for r in done for f in r["context"]))
    artworks = list(dict.fromkeys(a for r in done for a in r["artworks"]))
    index = {a: j for j, a in enumerate(artworks)}
    probabilities = np.full((len(done), len(artworks)), np.nan)
    for i, r in enumerate(done):
        for a, p in zip(r["artworks"], r["probabilities"], strict=True):
            probabilities[i, index[a]] = float(p)
    return LoggedData(
        title=np.array([r["title_id"] for r in done], dtype=object),
        features=features,
        contexts=np.array([[float(r["context"].get(f, 0.0)) for f in features] for r in done]),
        artwork=np.array([r["artwork_id"] for r in done], dtype=object),
        reward=np.array([float(r["reward"]) for r in done]),
        propensity=np.array([float(r["propensity"]) for r in done]),
        artworks=artworks,
        probabilities=probabilities,
    )
