"""Rendering of grid-world states to RGB arrays (pillow), and of frame lists to GIFs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

CELL = 40  # pixels per grid cell
_AGENT_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                  (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def render_grid(rows: int, cols: int, pos: np.ndarray, level: np.ndarray, food_pos: np.ndarray,
                food_level: np.ndarray, sight: int | None = None) -> np.ndarray:
    """Draws a grid world: foods as green squares, agents as coloured discs, both with levels.

    Args:
      pos: [P, 2] agent (row, col); level: [P]; food_pos: [F, 2]; food_level: [F] (0 = absent).
      sight: if given, each agent's observation window is outlined in its colour.
    Returns:
      [rows * CELL, cols * CELL, 3] uint8 RGB image.
    """
    image = Image.new("RGB", (cols * CELL, rows * CELL), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    for r in range(rows + 1):
        draw.line([(0, r * CELL), (cols * CELL, r * CELL)], fill=(200, 200, 200))
    for c in range(cols + 1):
        draw.line([(c * CELL, 0), (c * CELL, rows * CELL)], fill=(200, 200, 200))
    for (r, c), lvl in zip(food_pos, food_level):
        if lvl > 0:
            box = [c * CELL + 4, r * CELL + 4, (c + 1) * CELL - 4, (r + 1) * CELL - 4]
            draw.rectangle(box, fill=(90, 170, 70))
            draw.text((c * CELL + CELL // 2, r * CELL + CELL // 2), str(int(lvl)), fill="white",
                      anchor="mm")
    for i, ((r, c), lvl) in enumerate(zip(pos, level)):
        colour = _AGENT_COLOURS[i % len(_AGENT_COLOURS)]
        if sight is not None:
            window = [max(c - sight, 0) * CELL, max(r - sight, 0) * CELL,
                      min(c + sight + 1, cols) * CELL, min(r + sight + 1, rows) * CELL]
            draw.rectangle(window, outline=colour)
        draw.ellipse([c * CELL + 6, r * CELL + 6, (c + 1) * CELL - 6, (r + 1) * CELL - 6], fill=colour)
        draw.text((c * CELL + CELL // 2, r * CELL + CELL // 2), str(int(lvl)), fill="white",
                  anchor="mm")
    return np.asarray(image, dtype=np.uint8)


def save_gif(frames: Sequence[np.ndarray], path: str, fps: int = 5) -> None:
    """Writes RGB frames [H, W, 3] to an animated GIF."""
    if not frames:
        raise ValueError("save_gif: no frames to write")
    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
