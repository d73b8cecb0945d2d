"""RGB frames of JaxMARL states (pillow): particle worlds (MPE) and SMAX battles.

JaxMARL's own visualisers animate with matplotlib windows; `netmarl eval --render out.gif` wants one
[H, W, 3] uint8 array per state, drawn here from the state's positions.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SIZE = 400  # pixels per side
_TEAM_COLOURS = [(31, 119, 180), (214, 39, 40)]  # allies blue, enemies red


def render_jaxmarl(env, inner) -> np.ndarray:
    """[SIZE, SIZE, 3] uint8 frame of one (unbatched) JaxMARL state of `env` (a JaxMARLEnv)."""
    if hasattr(inner, "p_pos"):
        return render_mpe(env.inner, inner)
    if hasattr(getattr(inner, "state", None), "unit_positions"):
        return render_smax(env.inner, inner.state)
    raise NotImplementedError(f"{env.name}: no renderer (netmarl draws MPE and SMAX states only)")


def render_mpe(world, state) -> np.ndarray:
    """Entities as discs in their JaxMARL colours; the view fits every entity, at least [-1.2, 1.2]."""
    pos, rad = np.asarray(state.p_pos), np.asarray(world.rad)
    extent = max(1.2, float(np.abs(pos).max()) + 0.2)
    scale = SIZE / (2 * extent)
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i in np.argsort(-rad):  # large landmarks first, agents on top
        x, y = (pos[i, 0] + extent) * scale, (extent - pos[i, 1]) * scale
        r = max(2.0, rad[i] * scale)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in world.colour[i]),
                     outline=(0, 0, 0))
    return np.asarray(image, dtype=np.uint8)


def render_smax(smax, state) -> np.ndarray:
    """Living units as discs (allies blue, enemies red) with their type letter and a health bar."""
    scale = SIZE / max(smax.map_width, smax.map_height)
    image = Image.new("RGB", (SIZE, SIZE), (235, 235, 225))
    draw = ImageDraw.Draw(image)
    pos, types = np.asarray(state.unit_positions), np.asarray(state.unit_types)
    health = np.asarray(state.unit_health) / np.asarray(smax.unit_type_health)[types]
    for i in np.flatnonzero(np.asarray(state.unit_alive)):
        x, y = pos[i, 0] * scale, SIZE - pos[i, 1] * scale
        r = max(3.0, float(smax.unit_type_radiuses[types[i]]) * scale)
        colour = _TEAM_COLOURS[int(i >= smax.num_allies)]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        draw.text((x, y), smax.unit_type_shorthands[types[i]], fill="white", anchor="mm")
        draw.rectangle([x - r, y - r - 4, x - r + 2 * r * health[i], y - r - 2], fill=(40, 170, 40))
    return np.asarray(image, dtype=np.uint8)
