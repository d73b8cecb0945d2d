"""Hard inputs that lose nothing: kills at any moment, corrupt checkpoints, damaged run files, NaN
losses, impossible environments and wrong config values, each refused or recovered by name."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from netmarl.cli import compose, main
from netmarl.envs import make
from netmarl.results.rundir import RunDir
from netmarl.train.loop import TrainingDiverged, resume, train, trainer_for
from tests.test_runner import _same_metrics, tiny


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted tiny run every recovered run must equal."""
    return train(tiny(tmp_path_factory.mktemp("whole"), "whole")).metrics()


def _checkpoint_files(run: RunDir, point: int):
    return [f for f in (run.path / "checkpoints" / str(point)).rglob("*")
            if f.is_file() and f.name != "netmarl_meta.json" and f.stat().st_size > 0]


def _truncate(files):
    for f in files:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip_bits(files):
    """One flipped bit in the largest file (the array data): only a checksum can notice it."""
    f = max(files, key=lambda f: f.stat().st_size)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_bits])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, whole, damage, capsys):
    part = train(tiny(tmp_path, "part"), stop_after=2)
    points = sorted(int(c.name) for c in (part.path / "checkpoints").iterdir())
    assert points == [1, 2]  # the last two are kept
    damage(_checkpoint_files(part, 2))
    resumed = resume(str(part.path))
    assert "checkpoint" in capsys.readouterr().err and (part.path / "checkpoints" / "2.corrupt").is_dir()
    _same_metrics(whole, resumed.metrics())


def test_no_readable_checkpoint_is_one_clear_line(tmp_path):
    part = train(tiny(tmp_path, "part", total_steps=500, seeds=2), stop_after=1)
    for point in (0, 1):
        _truncate(_checkpoint_files(part, point))
    with pytest.raises(ValueError, match=r"no readable checkpoint in .*checkpoints .*start the run again") as error:
        resume(str(part.path))
    assert "\n" not in str(error.value)


def test_damaged_run_files_are_named_with_what_to_do(tmp_path):
    run = RunDir.create(tmp_path / "r", {"run": {}})
    (run.path / "config.json").write_text("")
    with pytest.raises(SystemExit, match=r"config.json is damaged .*restore it from a copy"):
        main(["train", f"resume={run.path}"])
    (run.path / "config.json").write_text(json.dumps({"run": {"total_steps": "many"}}))
    with pytest.raises(ValueError, match=r"config.json does not hold a valid config .*run.total_steps='many'"):
        resume(str(run.path))
    run.append_metrics([{"point": 0}])
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"point": 1, "se')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is damaged.*delete that line"):
        run.metrics()


def test_writes_are_atomic(tmp_path, monkeypatch):
    """A write cut short (here: the disk sync fails) leaves the previous file whole."""
    run = RunDir.create(tmp_path / "r", {"a": 1})
    run.append_metrics([{"point": 0}])

    def cut(_):
        raise OSError("killed")

    monkeypatch.setattr(os, "fsync", cut)
    for write in (lambda: run.write_json("config.json", {"a": 2}), lambda: run.append_metrics([{"point": 1}])):
        with pytest.raises(OSError):
            write()
    assert run.read_json("config.json") == {"a": 1} and run.metrics() == [{"point": 0}]


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """Parameters that overflowed (written into the checkpoint of point 1) make the next chunk's
    loss non-finite: the run stops naming the step, before saving anything of that chunk."""
    config = tiny(tmp_path, "nan")
    run = train(config, stop_after=1)
    carry, meta = run.load_checkpoint(trainer_for(config).init_seeds())
    params = jax.tree.map(lambda x: jnp.full_like(x, 1e38), carry.learner.params)
    run.save_checkpoint(carry._replace(learner=carry.learner._replace(params=params)), 1, meta)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) for seed\(s\) \[0, 1\] in the chunk "
                       r"ending at env step 1000 \(evaluation point 2\); the last good checkpoint"):
        resume(str(run.path))
    assert run.latest_checkpoint().name == "1" and {r["point"] for r in run.metrics()} == {0, 1}


IMPOSSIBLE = [
    ("lbf:Foraging-3x3-9p-9f", {}, r"9 players and 9 food need 18 cells; a 3x3 grid has 9"),
    ("lbf:Foraging-4x4-1p-3f", {}, r"3 food do not fit a 4x4 grid.*at most 1 fit"),
    ("lbf:Foraging-8x8-2p-1f-coop", {"max_food_level": 9}, r"level 9 can never be loaded.*total of 4"),
    ("lbf:Foraging-8x8-2p-1f", {"sight": 9}, r"sight=9 exceeds the 8x8 grid"),
    ("lbf:Foraging-8x8-2p-1f", {"max_player_level": 0}, r"player levels \[1, 0\]"),
    ("lbf:Foraging-8x8-2p-1f", {"rows": "8"}, r"option rows='8' has type str; expected int"),
    ("marbler:pcp", {"num_prey": 100}, r"cannot lay out the task: .*100 robots do not fit"),
    ("marbler:arctic", {"fast_step": -0.3}, r"fast_step=-0.3 must be > 0"),
    ("boxjump:paper-4", {"penalty_fall": -1.0}, r"penalty_fall=-1.0 must be >= 0"),
    ("matrix:climbing", {"episode_length": 0}, r"episode_length=0 must be >= 1"),
    ("matrix:penalty", {"k": "big"}, r"option k='big' has type str; expected float"),
]


@pytest.mark.parametrize("name, options, message", IMPOSSIBLE)
def test_impossible_environments_are_refused_up_front(name, options, message):
    with pytest.raises(ValueError, match=message):
        make(name, **options)


def test_the_command_line_refuses_impossible_tasks_and_wrong_values(tmp_path):
    cases = [(["env=lbf:Foraging-3x3-9p-9f"], r"3x3 grid has 9"),
             (["steps=abc"], r"run.total_steps='abc' is not accepted; expected int in \[1, inf\)"),
             (["algo.lr=-1"], r"algo.lr=-1.0 is out of range; accepted: float in \(0, inf\)"),
             (["run.num_envs=0"], r"run.num_envs=0 is out of range; accepted: int in \[1, inf\)"),
             (["algo.agent=lstm"], r"algo.agent='lstm'; accepted: gru, mlp")]
    for overrides, message in cases:
        with pytest.raises(SystemExit, match=message):
            main(["train", *overrides, f"run.dir={tmp_path}", "run.progress=false"])
    assert not any(tmp_path.iterdir())  # nothing was started


def _fuzz_args(run_dir, steps: int | None = None):
    """The command line that starts the fuzzed run (`steps` given) or resumes it."""
    if steps is None:
        return ["train", f"resume={run_dir}", "run.progress=false"]
    return ["train", "env=lbf:Foraging-5x5-2p-1f", "env.options.max_steps=10", "algo.agent=mlp",
            "algo.hidden=16", "algo.buffer_size=64", "algo.batch_size=8", f"steps={steps}",
            "run.eval_interval=200", "run.eval_episodes=4", "seeds=1", f"run.dir={run_dir.parent}",
            f"id={run_dir.name}", "run.progress=false"]


def _sigkill_fuzz(tmp_path, kills: int, steps: int, seed: int) -> list[int]:
    """Starts a run from the command line, SIGKILLs it at a random moment, resumes it, ... `kills`
    times, then lets it finish; its metrics must equal those of the same run trained in one go.

    A kill waits for 0 or 1 new evaluation points of the process, then a uniform random time of up
    to 0.2 s (a few points' duration), so kills land in every phase: training chunk, evaluation,
    metrics write, checkpoint write. Returns the last evaluation point written before each kill."""
    cli = [sys.executable, "-m", "netmarl.cli"]
    reference = train(compose(_fuzz_args(tmp_path / "reference", steps)[1:]))  # compiles, warms the cache
    run_dir, rng, landed = tmp_path / "killed", random.Random(seed), []
    while len(landed) < kills:
        before = _last_point(run_dir)
        proc = subprocess.Popen(cli + _fuzz_args(run_dir, None if before >= 0 else steps),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for = before + rng.randint(0, 1)
        while _last_point(run_dir) <= wait_for and proc.poll() is None:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.2))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break  # it finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed.append(_last_point(run_dir))
    with pytest.raises(SystemExit, match="cannot be changed when resuming"):
        main(["train", f"resume={run_dir}", "algo.lr=0.1"])
    done = subprocess.run(cli + _fuzz_args(run_dir), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _same_metrics(reference.metrics(), RunDir(run_dir).metrics())
    assert [r["point"] for r in RunDir(run_dir).metrics()] == list(range(steps // 200 + 1))
    assert (run_dir / "summary.json").is_file()
    return landed


def _last_point(run_dir) -> int:
    """The last evaluation point in a run's metrics (-1 before any)."""
    if not (run_dir / "config.json").exists():
        return -1
    return max((r["point"] for r in RunDir(run_dir).metrics()), default=-1)


def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path):
    """The short version of the fuzz below (1 kill), in the default suite."""
    assert len(_sigkill_fuzz(tmp_path, kills=1, steps=2000, seed=0)) == 1


@pytest.mark.slow
def test_sigkill_fuzz_many_kills(tmp_path):
    """≥ 20 kills at random moments of one run; every resume continues to identical metrics."""
    landed = _sigkill_fuzz(tmp_path, kills=20, steps=30000, seed=1)
    assert len(landed) >= 20 and len(set(landed)) > 5, landed  # kills spread over the run
