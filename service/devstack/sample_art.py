"""The sample catalog's artwork images: one small, distinct SVG per artwork, drawn by this module.

The images are committed under `service/static/art/<title>/<artwork>.svg` (served same-origin by the
dashboard's static route, `/dashboard/static/art/...`; the sample catalog's `image_url`s point there), so
nothing is drawn or downloaded at run time. `python -m service.devstack.sample_art` redraws them;
a test checks the committed files are exactly what this module draws.

Each image is a 160×90 poster: a two-colour gradient from the artwork's two strongest tastes, the motif of
its strongest taste placed by a hash of its id, and the id as a caption, so no two look alike.
"""

from __future__ import annotations

import hashlib
import sys
from html import escape
from pathlib import Path

from service.catalog import TitleConfig, load_catalog

W, H = 160, 90
ART_DIR = Path(__file__).resolve().parents[1] / "static" / "art"
URL_PREFIX = "/dashboard/static/art"

TASTE_COLORS = {  # (dark, light) per taste
    "horror": ("#2b0a0a", "#8e1b1b"), "thriller": ("#1d1433", "#5b3f99"), "drama": ("#0d2240", "#2f6aa8"),
    "comedy": ("#8a5a00", "#f2c230"), "romance": ("#6b1237", "#e86a9a"), "family": ("#14492c", "#5fbf6f"),
    "action": ("#6e2500", "#f08a24"), "documentary": ("#0c3d3d", "#3fa7a0"),
}
NEUTRAL = ("#2d333b", "#8c959f")


def _motif(taste: str, x: float, y: float) -> str:
    """A simple shape for a taste, centred near (x, y)."""
    if taste == "romance":  # a heart
        return (f'<path d="M{x},{y + 14} C{x - 26},{y - 4} {x - 10},{y - 22} {x},{y - 8} '
                f'C{x + 10},{y - 22} {x + 26},{y - 4} {x},{y + 14}Z" fill="#ffd1e1"/>')
    if taste == "horror":  # a moon and two eyes
        return (f'<circle cx="{x}" cy="{y - 8}" r="14" fill="#f4e9c8"/>'
                f'<circle cx="{x - 7}" cy="{y + 14}" r="3" fill="#ff3b3b"/>'
                f'<circle cx="{x + 7}" cy="{y + 14}" r="3" fill="#ff3b3b"/>')
    if taste == "comedy":  # a sun with rays
        rays = "".join(
            f'<rect x="{x - 1.5}" y="{y - 24}" width="3" height="8" fill="#fff6c7" '
            f'transform="rotate({a} {x} {y})"/>' for a in range(0, 360, 45)
        )
        return f'{rays}<circle cx="{x}" cy="{y}" r="11" fill="#fff6c7"/>'
    if taste == "family":  # a house
        return (f'<path d="M{x - 16},{y + 14} V{y - 2} L{x},{y - 16} L{x + 16},{y - 2} V{y + 14}Z" '
                f'fill="#e9f7ec"/><rect x="{x - 4}" y="{y + 2}" width="8" height="12" fill="#14492c"/>')
    if taste == "action":  # a lightning bolt
        return (f'<path d="M{x + 4},{y - 20} L{x - 10},{y + 2} L{x},{y + 2} L{x - 4},{y + 20} '
                f'L{x + 10},{y - 4} L{x},{y - 4}Z" fill="#fff0c2"/>')
    if taste == "thriller":  # a searchlight cone
        return (f'<path d="M{x - 4},{y - 22} L{x + 4},{y - 22} L{x + 22},{y + 20} L{x - 22},{y + 20}Z" '
                f'fill="#e8e0ff" fill-opacity="0.55"/><circle cx="{x}" cy="{y - 22}" r="4" fill="#fff"/>')
    if taste == "documentary":  # mountains
        return (f'<path d="M{x - 26},{y + 16} L{x - 8},{y - 10} L{x + 2},{y + 2} L{x + 12},{y - 16} '
                f'L{x + 28},{y + 16}Z" fill="#d6f2ef"/>')
    if taste == "drama":  # a mask
        return (f'<ellipse cx="{x}" cy="{y}" rx="14" ry="17" fill="#dbe8f7"/>'
                f'<circle cx="{x - 5}" cy="{y - 4}" r="2.5" fill="#0d2240"/>'
                f'<circle cx="{x + 5}" cy="{y - 4}" r="2.5" fill="#0d2240"/>'
                f'<path d="M{x - 6},{y + 9} Q{x},{y + 4} {x + 6},{y + 9}" stroke="#0d2240" fill="none"/>')
    return f'<rect x="{x - 12}" y="{y - 12}" width="24" height="24" fill="#eef1f4"/>'


def draw(title_id: str, artwork_id: str, features: dict[str, float]) -> str:
    """The SVG text of one artwork's image (deterministic: same inputs, same bytes)."""
    ranked = sorted(features.items(), key=lambda kv: (-kv[1], kv[0]))
    first = ranked[0][0] if ranked else ""
    second = ranked[1][0] if len(ranked) > 1 else first
    dark = TASTE_COLORS.get(first, NEUTRAL)[0]
    light = TASTE_COLORS.get(second, NEUTRAL)[1]
    digest = hashlib.blake2b(f"{title_id}/{artwork_id}".encode(), digest_size=4).digest()
    x = 40 + digest[0] % 80  # the motif's place and the stripe's angle differ per artwork
    y = 34 + digest[1] % 10
    angle = digest[2] % 60 - 30
    label = escape(artwork_id)
    gid = f"g-{artwork_id}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">\n'
        f'<title>{label}</title>\n'
        f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{dark}"/><stop offset="1" stop-color="{light}"/>'
        "</linearGradient></defs>\n"
        f'<rect width="{W}" height="{H}" fill="url(#{gid})"/>\n'
        f'<rect x="-20" y="{38 + digest[3] % 20}" width="200" height="6" fill="#ffffff" fill-opacity="0.12" '
        f'transform="rotate({angle} 80 45)"/>\n'
        f"{_motif(first, x, y)}\n"
        f'<rect x="0" y="{H - 18}" width="{W}" height="18" fill="#000000" fill-opacity="0.45"/>\n'
        f'<text x="6" y="{H - 5}" font-family="sans-serif" font-size="11" fill="#ffffff">{label}</text>\n'
        "</svg>\n"
    )


def image_path(title_id: str, artwork_id: str) -> Path:
    return ART_DIR / title_id / f"{artwork_id}.svg"


def image_url(title_id: str, artwork_id: str) -> str:
    return f"{URL_PREFIX}/{title_id}/{artwork_id}.svg"


def drawings(titles: list[TitleConfig]) -> dict[Path, str]:
    """Every image of a catalog: path -> SVG text."""
    return {
        image_path(t.title_id, a.id): draw(t.title_id, a.id, dict(a.features))
        for t in titles
        for a in t.artworks
    }


def main() -> int:
    from service.devstack.local_stack import sample_catalog_path

    for path, text in drawings(load_catalog(sample_catalog_path())).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
