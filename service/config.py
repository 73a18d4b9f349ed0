"""Service settings: defaults, then the environment (ARTBANDIT_*), then an explicit mapping (tests).

One table of these lives in the README; keep them in step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_key: str | None = field(default=None, repr=False)  # admin key; None: admin routes answer 401
    attribution_window: float = 1800.0  # seconds a click may come after the impression
    snapshot_interval: float = 1.0  # seconds between learner snapshot publications
    refresh_interval: float = 0.25  # seconds between a worker's checks for a new snapshot version
    retention_events: int = 1_000_000  # approximate max entries kept per title in each stream
    retention_seconds: float = 7 * 24 * 3600.0  # per-minute counters and finished impressions live this long
    redis_timeout: float = 0.05  # seconds; socket timeout of API workers' Redis calls
    max_body_bytes: int = 64 * 1024
    catalog: str | None = None  # catalog YAML loaded into Redis at start (existing titles are kept)
    dashboard_token: str | None = field(default=None, repr=False)  # when set, the dashboard needs it
    image_origins: str = ""  # origins the dashboard may load artwork images from, space-separated
    # More admin keys beside api_key (comma-separated in ARTBANDIT_API_KEYS): any of them is accepted, so a
    # key can be rotated without a refused request (docs/deploy.md, "Rotating keys").
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # Keys of the data plane (POST /impression, /click, ... : service.web.data_plane); empty: it is open.
    client_keys: tuple[str, ...] = field(default=(), repr=False)
    # Learned rewards per viewer per title per minute of decision; over it, labelled events are counted
    # as throttled and not learned (service.learning.throttle). 0: no cap.
    viewer_reward_cap: int = 0

    def __post_init__(self) -> None:
        # api_key stays one opaque key, as it always was; the lists are normalized to tuples
        for name in ("api_keys", "client_keys"):
            object.__setattr__(self, name, _key_list(name, getattr(self, name)))
        for name in ("attribution_window", "snapshot_interval", "refresh_interval", "redis_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.retention_events < 1000:
            raise ValueError(f"retention_events must be >= 1000, got {self.retention_events!r}")
        if self.retention_seconds < self.attribution_window:
            raise ValueError("retention_seconds must be >= attribution_window")
        image_origins(self.image_origins)  # raises on a malformed origin
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes!r}")
        if self.viewer_reward_cap < 0:
            raise ValueError(f"viewer_reward_cap must be >= 0 (0: no cap), got {self.viewer_reward_cap!r}")

    @property
    def admin_keys(self) -> tuple[str, ...]:
        """Every accepted admin key: api_key, then api_keys."""
        return ((self.api_key,) if self.api_key else ()) + self.api_keys

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults < environment variables ARTBANDIT_<NAME> < overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ARTBANDIT_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f"ARTBANDIT_{f.name.upper()}", raw, f.type)
        settings = replace(cls(), **values)
        if overrides:
            unknown = set(overrides) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"unknown settings: {sorted(unknown)}")
            settings = replace(settings, **overrides)
        return settings


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def image_origins(raw: str) -> tuple[str, ...]:
    """The origins of `Settings.image_origins` ("https://img.example.com http://10.0.0.5:8080"; commas also
    separate). Raises ValueError naming a malformed one: an origin is scheme, host and optional port only."""
    out = []
    for origin in raw.replace(",", " ").split():
        origin = origin.rstrip("/").lower()
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"image_origins: {origin!r} is not an origin like https://img.example.com[:port]"
                " (no path, no wildcard)"
            )
        out.append(origin)
    return tuple(out)


def _key_list(name: str, value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Keys as a tuple; a string is a comma-separated list. A key is printable ASCII without spaces or
    commas (it travels in an HTTP header and in a comma-separated variable)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    keys = tuple(k.strip() for k in items if k.strip())
    for key in keys:
        if not all("!" <= c <= "~" for c in key) or "," in key:
            raise ValueError(f"{name}: a key must be printable ASCII without spaces or commas")
    return keys


def _parse(var: str, raw: str, typ: Any) -> Any:
    t = str(typ)
    if t.startswith("tuple"):
        return _key_list(var, raw)
    try:
        if t.startswith("float"):
            return float(raw)
        if t.startswith("int"):
            return int(raw)
    except ValueError as exc:
        raise ValueError(f"{var} must be a number, got {raw!r}") from exc
    return raw
