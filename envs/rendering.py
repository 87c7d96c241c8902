"""Small RGB pictures for ``render_mode="rgb_array"``, drawn with Pillow (already installed with matplotlib).

Kept apart from the dynamics so that an environment without a render mode never imports Pillow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RENDER_MODES = ("rgb_array",)


def check_render_mode(render_mode: str | None) -> str | None:
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES} or None, got {render_mode!r}")
    return render_mode


def draw_point_and_goal(
    path: Sequence[np.ndarray], goal: np.ndarray, box: float, tolerance: float, caption: str, size: int = 256
) -> np.ndarray:
    """The first two coordinates of a point's path and of its goal, in the square ``[-box, box]^2``.

    The goal is drawn with its tolerance square (the projection of the inf-norm ball); a 1-D problem
    is drawn on the horizontal axis.
    """
    from PIL import Image, ImageDraw

    margin, caption_height = 12, 18
    image = Image.new("RGB", (size, size + caption_height), "white")
    draw = ImageDraw.Draw(image)
    scale = (size - 2 * margin) / (2 * box)

    def pixel(point: np.ndarray) -> tuple[float, float]:
        x = float(point[0])
        y = float(point[1]) if len(point) > 1 else 0.0
        return margin + (x + box) * scale, margin + (box - y) * scale

    draw.rectangle([margin, margin, size - margin, size - margin], outline=(160, 160, 160))
    gx, gy = pixel(goal)
    half = max(tolerance * scale, 2.0)
    draw.rectangle([gx - half, gy - half, gx + half, gy + half], fill=(170, 230, 170), outline=(0, 140, 0))
    draw.line([gx - 5, gy, gx + 5, gy], fill=(0, 120, 0))
    draw.line([gx, gy - 5, gx, gy + 5], fill=(0, 120, 0))
    points = [pixel(point) for point in path]
    if len(points) > 1:
        draw.line(points, fill=(120, 120, 120), width=1)
    for x, y in points[:-1]:
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(120, 120, 120))
    x, y = points[-1]
    draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(30, 80, 220))
    draw.text((margin, size + 2), caption, fill=(0, 0, 0))
    return np.asarray(image, dtype=np.uint8)


def draw_bit_rows(state: np.ndarray, goal: np.ndarray, caption: str, cell: int = 24) -> np.ndarray:
    """Two rows of cells, the state above the goal (dark = 1, light = 0); a state cell that already
    equals the goal's has a green frame, one that differs a red frame."""
    from PIL import Image, ImageDraw

    n = len(state)
    margin, gap, caption_height = 6, 6, 18
    width = max(2 * margin + n * cell, 160)
    height = 2 * margin + 2 * cell + gap + caption_height
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for index in range(n):
        left = margin + index * cell
        for row, (bits, top) in enumerate(((state, margin), (goal, margin + cell + gap))):
            colour = (40, 40, 40) if bits[index] > 0.5 else (235, 235, 235)
            if row == 0:
                frame = (0, 160, 0) if (state[index] > 0.5) == (goal[index] > 0.5) else (200, 0, 0)
            else:
                frame = (150, 150, 150)
            draw.rectangle([left + 1, top, left + cell - 2, top + cell - 1], fill=colour, outline=frame, width=2)
    draw.text((margin, height - caption_height + 2), caption, fill=(0, 0, 0))
    return np.asarray(image, dtype=np.uint8)
