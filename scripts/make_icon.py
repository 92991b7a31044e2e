"""Draws the integration's icon (an envelope on a rounded blue square) as PNG.

Pure Python (zlib + struct), so the image is reproducible anywhere:
    python scripts/make_icon.py   ->  custom_components/pop3_mail/brand/icon.png, icon@2x.png
"""

from __future__ import annotations

from pathlib import Path
import struct
import zlib

BRAND = Path(__file__).resolve().parent.parent / "custom_components" / "pop3_mail" / "brand"
BLUE = (3, 169, 244)  # Home Assistant's primary blue
WHITE = (255, 255, 255)
SAMPLES = 4  # supersampling per axis, for smooth edges


def _inside_rounded_square(x: float, y: float, radius: float) -> bool:
    cx = min(max(x, radius), 1 - radius)
    cy = min(max(y, radius), 1 - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def _distance_to_segment(
    px: float, py: float, a: tuple[float, float], b: tuple[float, float]
) -> float:
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return float(((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2) ** 0.5)


def _sample(x: float, y: float) -> tuple[int, int, int, int]:
    """Colour of one point of the unit square."""
    if not _inside_rounded_square(x, y, 0.18):
        return (0, 0, 0, 0)
    left, right, top, bottom = 0.2, 0.8, 0.3, 0.72
    stroke = 0.035
    if left <= x <= right and top <= y <= bottom:
        # The envelope body is white; its flap and fold lines are drawn in blue.
        apex = (0.5, 0.53)
        lines = [((left, top), apex), ((right, top), apex)]
        if any(_distance_to_segment(x, y, a, b) < stroke / 2 for a, b in lines):
            return (*BLUE, 255)
        return (*WHITE, 255)
    return (*BLUE, 255)


def render(size: int) -> bytes:
    """PNG bytes of the icon at `size` x `size` pixels."""
    rows = bytearray()
    n = SAMPLES * SAMPLES
    for py in range(size):
        rows.append(0)  # filter type: none
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    r, g, b, a = _sample(
                        (px + (sx + 0.5) / SAMPLES) / size, (py + (sy + 0.5) / SAMPLES) / size
                    )
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            alpha = acc[3]
            if alpha:
                rows += bytes((acc[0] // alpha, acc[1] // alpha, acc[2] // alpha, alpha // n))
            else:
                rows += b"\0\0\0\0"

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    BRAND.mkdir(parents=True, exist_ok=True)
    (BRAND / "icon.png").write_bytes(render(256))
    (BRAND / "icon@2x.png").write_bytes(render(512))
    print(f"wrote {BRAND / 'icon.png'} and icon@2x.png")


if __name__ == "__main__":
    main()
