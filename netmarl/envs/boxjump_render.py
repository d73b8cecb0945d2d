"""Rendering of Box Jump states to RGB arrays with pillow (frames for `render.save_gif`)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from netmarl.envs.render import _AGENT_COLOURS

SCALE = 20  # pixels per world unit; the viewport is the Box2D one: x in [0, 30], y in [0, 20]
WIDTH, HEIGHT = 600, 400
FLOOR_Y = 15.0


def render_boxes(pos: np.ndarray, angle: np.ndarray, best_height: float | None = None) -> np.ndarray:
    """Draws the floor, the boxes (rotated, numbered) and a line at the best height reached.

    Args:
      pos: [N, 2] box centres (y down); angle: [N] radians.
      best_height: best bottom-edge height above the floor, in world units (None: no line).
    Returns:
      [400, 600, 3] uint8 RGB image.
    """
    image = Image.new("RGB", (WIDTH, HEIGHT), (235, 242, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, FLOOR_Y * SCALE, WIDTH, HEIGHT], fill=(110, 90, 70))
    if best_height is not None and best_height > 0:
        level = (FLOOR_Y - best_height) * SCALE
        draw.line([(0, level), (WIDTH, level)], fill=(200, 60, 60), width=1)
    corners = 0.5 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    for i, ((x, y), a) in enumerate(zip(pos, angle)):
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        points = [(float(px * SCALE), float(py * SCALE)) for px, py in (corners @ rot.T + (x, y))]
        draw.polygon(points, fill=_AGENT_COLOURS[i % len(_AGENT_COLOURS)], outline=(20, 20, 20))
        draw.text((x * SCALE, y * SCALE), str(i + 1), fill="white", anchor="mm")
    return np.asarray(image, dtype=np.uint8)
