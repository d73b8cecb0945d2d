"""run.loggers (netmarl/results/loggers.py): TensorBoard event files read back with TensorBoard's own
reader hold the jsonl scalars, a resumed run's re-logged point is hidden by that reader, W&B offline
writes its files without a network, and bad logger names are refused by name."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from netmarl.config import check
from netmarl.results.loggers import scalars
from netmarl.train.loop import resume, train
from tests.helpers import matrix_config

# Networked agents (DVDN) on the climbing game: 4 evaluation points of 100 env steps, two seeds, so
# that returns, losses, epsilon and the communication diagnostics are all logged.
POINTS = 4


def config(tmp_path, run_id, loggers):
    base = matrix_config("climbing", "dvdn", steps=POINTS * 100, batch_size=16, buffer_size=64,
                         eps_finish=0.05, eps_anneal_steps=300)
    run = dataclasses.replace(base.run, eval_interval=100, seeds=2, dir=str(tmp_path), id=run_id,
                              loggers=loggers)
    return dataclasses.replace(base, run=run)


def accumulator(folder):
    pytest.importorskip("tensorboard", reason="the loggers extra: pip install 'netmarl[loggers]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return acc


def test_scalars_of_a_record():
    record = {"point": 2, "seed": 0, "env_steps": 1000, "episodes": 40, "updates": 12, "epsilon": 0.5,
              "eval_return": 3.0, "eval_return_std": 0.5, "eval_returns": [2.5, 3.5], "loss": 0.25,
              "jtd_error": 0.1, "floats_sent": 8.0, "agents": [0, 1], "elapsed_s": 4.0}
    assert scalars(record) == {
        "progress/episodes": 40.0, "progress/updates": 12.0, "train/epsilon": 0.5, "eval/return": 3.0,
        "eval/return_std": 0.5, "train/loss": 0.25, "comm/jtd_error": 0.1, "comm/floats_sent": 8.0,
        "progress/elapsed_s": 4.0, "progress/env_steps_per_s": 250.0}  # 1000 env steps / 4 s


def test_tensorboard_events_hold_the_jsonl_scalars(tmp_path):
    run = train(config(tmp_path, "tb", ["jsonl", "tensorboard"]))
    records = run.metrics()
    expected = {"eval/return", "eval/return_std", "train/return", "train/loss", "train/epsilon",
                "train/td_abs", "train/q_taken", "train/grad_norm", "comm/jtd_error",
                "comm/disagreement", "comm/mean_degree", "comm/connected", "comm/floats_sent",
                "progress/episodes", "progress/updates", "progress/elapsed_s",
                "progress/env_steps_per_s"}
    assert set(scalars(records[-1])) == expected
    assert sorted(p.name for p in (run.path / "tensorboard").iterdir()) == ["seed_0", "seed_1"]
    for seed in (0, 1):
        acc = accumulator(run.path / "tensorboard" / f"seed_{seed}")
        assert set(acc.Tags()["scalars"]) == expected
        mine = [r for r in records if r["seed"] == seed]
        events = acc.Scalars("eval/return")
        assert len(events) == POINTS + 1  # evaluation points 0..4
        assert [e.step for e in events] == [r["env_steps"] for r in mine]
        np.testing.assert_allclose([e.value for e in events], [r["eval_return"] for r in mine], rtol=1e-6)
        loss = acc.Scalars("train/loss")  # from point 1 on (point 0 has no chunk)
        np.testing.assert_allclose([e.value for e in loss], [r["loss"] for r in mine[1:]], rtol=1e-6)
        assert acc.Scalars("comm/mean_degree")[-1].value > 0  # a real graph was drawn


def test_resumed_run_relogs_a_point_and_tensorboard_shows_it_once(tmp_path):
    """Killed after point 3's records were written but before its checkpoint: resuming from
    checkpoint 2 logs point 3 again. The event files hold it twice; TensorBoard's reader once."""
    path = tmp_path / "resumed"
    train(config(tmp_path, "resumed", ["jsonl", "tensorboard"]), stop_after=3)
    shutil.rmtree(path / "checkpoints" / "3")  # as if the kill came before checkpoint 3 was saved
    run = resume(str(path))
    records = [r for r in run.metrics() if r["seed"] == 0]
    assert [r["point"] for r in records] == list(range(POINTS + 1))
    folder = path / "tensorboard" / "seed_0"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2
    logged = []
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    for file in sorted(folder.glob("events.out.tfevents.*")):
        logged += [e.step for e in EventFileLoader(str(file)).Load()
                   if any(v.tag == "eval/return" for v in e.summary.value)]
    assert sorted(logged) == sorted([r["env_steps"] for r in records] + [records[3]["env_steps"]])
    events = accumulator(folder).Scalars("eval/return")
    assert [e.step for e in events] == [r["env_steps"] for r in records]
    np.testing.assert_allclose([e.value for e in events], [r["eval_return"] for r in records], rtol=1e-6)


def test_wandb_offline_writes_its_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the loggers extra: pip install 'netmarl[loggers]'")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: no network used
    run = train(config(tmp_path, "wb", ["jsonl", "wandb"]))
    for seed in (0, 1):
        found = list((run.path / "wandb").glob(f"offline-run-*-wb-seed{seed}/run-wb-seed{seed}.wandb"))
        assert len(found) == 1, sorted(p.name for p in (run.path / "wandb").iterdir())
        data = found[0].read_bytes()
        for tag in (b"eval/return", b"train/loss", b"train/epsilon", b"comm/jtd_error",
                    b"progress/env_steps_per_s", b"env_steps"):
            assert tag in data, tag
    assert json.loads((run.path / "summary.json").read_text())["seeds"] == 2


def test_bad_logger_names_are_refused(tmp_path):
    from netmarl.cli import compose, main

    with pytest.raises(ValueError, match=r"'tensorbord' is not a logger; accepted: jsonl, tensorboard, wandb"):
        check(compose(["run.loggers=[jsonl,tensorbord]"]))
    with pytest.raises(ValueError, match=r"must include jsonl: metrics.jsonl is the run's record .* "
                                         r"e.g. run.loggers=\[jsonl,tensorboard\]"):
        check(compose(["run.loggers=[tensorboard]"]))
    with pytest.raises(SystemExit, match=r"run.loggers='jsonl' is not accepted; expected a list of jsonl, "
                                         r"tensorboard, wandb"):
        compose(["run.loggers=jsonl"])
    with pytest.raises(SystemExit, match=r"netmarl: run.loggers=\['jsonl', 'mlflow'\]: 'mlflow' is not"):
        main(["train", "env=matrix:climbing", f"run.dir={tmp_path}", "run.loggers=[jsonl,mlflow]"])
    assert not any(tmp_path.iterdir())  # refused before a run directory was made
    assert compose([]).run.loggers == ["jsonl"]  # the default
