"""Reference Box Jump on real Box2D (the `box2d` package): host-stepped numpy, for validation only.

Same rules, constants and observations as `netmarl.envs.boxjump.BoxJump` (specs/pairvdn_boxjump.md
§5), with the physics of the original environment: a `b2World` with gravity (0, +10), doSleep=True,
one `world.Step(1/40, 30, 30)` per env step, a static floor box and one dynamic 1x1 box per agent.
Not jittable; one episode at a time, like the original PettingZoo environment.

    ref = BoxJumpRef(BoxJump(num_boxes=16))
    obs, state = ref.reset(seed=0)
    obs, state, reward, truncated = ref.step(actions)   # actions [N] ints
"""
from __future__ import annotations

import numpy as np

from netmarl.envs import boxjump as bj
from netmarl.envs.boxjump_physics import (ANGULAR_DAMPING, BOX_FRICTION, DT, FLOOR_CENTRE,
                                          FLOOR_FRICTION, FLOOR_HALF, GRAVITY, HALF)

VELOCITY_ITERATIONS = POSITION_ITERATIONS = 30


def _box2d():
    try:
        import Box2D
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("the Box Jump reference back-end needs the box2d package: "
                          "pip install 'netmarl[ref]' (box2d==2.3.10)") from err
    return Box2D


class BoxJumpRef:
    """Box Jump stepped with Box2D. `env` gives the version, N, T, rotation and one-hot options."""

    def __init__(self, env: bj.BoxJump):
        self.env = env
        self.world = None

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Starts an episode; returns (obs [N, O], global state [S])."""
        box2d, env, n = _box2d(), self.env, self.env.num_boxes
        rng = np.random.default_rng(seed)
        self.world = box2d.b2World(gravity=(0, GRAVITY), doSleep=True)
        self.world.CreateStaticBody(position=FLOOR_CENTRE,
                                    fixtures=box2d.b2FixtureDef(shape=box2d.b2PolygonShape(box=FLOOR_HALF),
                                                                friction=FLOOR_FRICTION))
        x = bj.FLOOR_Y - bj.SPACING * (n - 1) / 2 + bj.SPACING * np.arange(n)
        if env.version == "v0":
            x = x + rng.uniform(-bj.SPAWN_JITTER, bj.SPAWN_JITTER, n)
        y = bj.FLOOR_Y - (1.0 if env.version == "paper" else 0.5)
        self.boxes = []
        for i in range(n):
            body = self.world.CreateDynamicBody(position=(float(x[i]), y), fixedRotation=env.fixed_rotation,
                                                angularDamping=ANGULAR_DAMPING)
            body.CreatePolygonFixture(box=(HALF, HALF), density=1.0, friction=BOX_FRICTION)
            if env.version == "paper":
                body.ApplyForceToCenter((float(rng.uniform(-bj.SPAWN_PUSH, bj.SPAWN_PUSH)), 0.0), True)
            self.boxes.append(body)
        self.history = [[] for _ in range(n)]
        self.highest = -1.0 if env.version == "paper" else 0.0
        self.t = 0
        return self._observe(np.zeros(n, bool), self.highest)

    def can_jump(self, i: int) -> bool:
        hist = self.history[i]
        return len(hist) == bj.HISTORY and max(hist) < bj.JUMP_STILL

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """One env step; returns (obs [N, O], state [S], rewards [N], truncated)."""
        env, n = self.env, self.env.num_boxes
        prev = best = self.highest
        heights = np.zeros(n)
        jumps = np.zeros(n, bool)
        for i, (body, action) in enumerate(zip(self.boxes, np.asarray(actions))):
            self.history[i] = (self.history[i] + [abs(body.linearVelocity.y)])[-bj.HISTORY:]
            jumps[i] = self.can_jump(i)
            vx = body.linearVelocity.x
            if action == bj.LEFT and not vx < -bj.MAX_HOR_SPD:
                body.ApplyForceToCenter((-bj.MOVE_FORCE, 0.0), True)
            elif action == bj.RIGHT and not vx > bj.MAX_HOR_SPD:
                body.ApplyForceToCenter((bj.MOVE_FORCE, 0.0), True)
            elif action == bj.JUMP and jumps[i]:
                body.ApplyForceToCenter((0.0, -bj.JUMP_FORCE), True)
            heights[i] = (bj.FLOOR_Y - body.position.y - 0.5) / env.height_unit
            best = max(best, heights[i])
        reward = np.full(n, (best - prev) / n)
        if env.version == "v0":
            reward = np.where(heights < -0.001, -env.penalty_fall / env.max_timestep, reward)
        self.world.Step(DT, VELOCITY_ITERATIONS, POSITION_ITERATIONS)
        self.t += 1
        truncated = self.t > env.max_timestep
        if truncated:
            reward = np.zeros(n)
        obs, state = self._observe(jumps, prev)
        self.highest = best
        return obs, state, reward.astype(np.float32), truncated

    def positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pos [N, 2], angle [N], vel [N, 2], omega [N]) of the boxes."""
        pos = np.array([tuple(b.position) for b in self.boxes])
        vel = np.array([tuple(b.linearVelocity) for b in self.boxes])
        return (pos, np.array([b.angle for b in self.boxes]), vel,
                np.array([b.angularVelocity for b in self.boxes]))

    def _observe(self, can_jump: np.ndarray, highest: float) -> tuple[np.ndarray, np.ndarray]:
        env, n = self.env, self.env.num_boxes
        pos, angle, vel, omega = self.positions()
        x, y = pos[:, 0], pos[:, 1]
        if env.version == "paper":
            cols = [x / 30, y / 20, vel[:, 0] / 40, vel[:, 1] / 40]
        else:
            h = bj.FLOOR_Y - y - 0.5
            cols = [2 * x / 30 - 1, np.where(h < -0.001, -1.0, h), vel[:, 0] * 0.5, vel[:, 1] * 0.125]
        quarter = np.mod(angle / (np.pi / 2) + 0.5, 1.0) - 0.5
        cols += [quarter, omega * 0.5, *_neighbours(x, y), can_jump.astype(float)]
        body = np.stack(cols, -1)
        extra = [highest] + ([self.t / env.max_timestep] if env.version == "v0" else [])
        parts = [body, np.tile(extra, (n, 1))] + ([np.eye(n)] if env.agent_one_hot else [])
        obs = np.concatenate(parts, -1).astype(np.float32)
        return obs, np.concatenate([body.ravel(), extra]).astype(np.float32)


def _neighbours(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Left/right/above/below distances by explicit scans, as the original does (spec §5.5)."""
    n = len(x)
    out = np.ones((4, n))
    for i in range(n):
        row = [j for j in range(n) if abs(y[j] - y[i]) < 0.9]
        col = [j for j in range(n) if x[j] - HALF < x[i] + HALF - 0.1 and x[j] + HALF > x[i] - HALF + 0.1]
        lefts = [x[j] for j in row if x[j] < x[i]]
        rights = [x[j] for j in row if x[j] > x[i]]
        aboves = [y[j] for j in col if y[j] < y[i]]
        belows = [y[j] for j in col if y[j] > y[i]]
        out[0, i] = (x[i] - max(lefts)) / 30 if lefts else 1.0
        out[1, i] = (min(rights) - x[i]) / 30 if rights else 1.0
        out[2, i] = (y[i] - max(aboves)) / 20 if aboves else 1.0
        out[3, i] = ((min(belows) if belows else bj.FLOOR_Y) - y[i]) / 20
    return list(out)
