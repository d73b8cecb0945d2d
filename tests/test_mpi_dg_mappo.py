"""DG-MAPPO as real processes (`mpirun -n N+1 netmarl agent algo=dg_mappo`): every agent's actor,
critic and ψ equal the simulator's row for that agent, the team's records equal the simulator's
metrics, and settings the processes do not support are refused by name. Every mpirun runs under
`timeout`; the compilation cache is the session's (conftest.py), shared with test_mpi.py."""
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.test_mpi import BIN, _close, _metrics, _mpirun, _simulate, mpi_env  # noqa: F401 - the fixture

# Three agents that see different observations (eq. 11's consensus term is not 0), episodes of at
# most 3 steps, small nets; 4 episodes per iteration in 2 minibatches, 2 epochs: 4 updates per
# iteration (shuffled minibatches, ψ averaged after each), dynamic graphs (links down w.p. 0.5), and
# algo=dg_mappo's per-agent value normalisation (value_norm_scope=agent).
TINY = ["algo=dg_mappo", "env=jaxmarl:MPE_simple_spread_v3", "env.options.time_limit=3", "algo.agent=mlp",
        "algo.hidden=8", "algo.dgat.width=8", "algo.policy.epochs=2", "algo.policy.minibatches=2",
        "run.num_envs=4", "run.eval_episodes=4",
        "run.total_steps=48", "run.eval_interval=24", "run.progress=false"]
METRICS = ("train_return", "loss", "critic_loss", "entropy", "advantage", "value", "grad_norm",
           "clip_frac", "entropy_coef", "consensus", "attention_entropy", "floats_sent", "mean_degree")


@pytest.mark.slow  # 43 s warm, 70-140 s compiling from scratch: over the default suite's 60 s limit
def test_dg_mappo_agents_equal_the_simulator(mpi_env, tmp_path):  # noqa: F811 - the imported fixture
    run_dir = tmp_path / "dg"
    args = [str(BIN / "netmarl"), "agent", *TINY, "run.progress=true", f"run.dir={run_dir.parent}",
            f"run.id={run_dir.name}", "--timeout", "120"]
    proc = _mpirun(mpi_env, 4, args, limit=300)
    sim_records, carry = _simulate(TINY)  # runs while the MPI job runs
    nudged_records, nudged = _simulate(TINY, nudge=True)
    out, _ = proc.communicate()
    assert proc.returncode == 0, out[-3000:]
    mpi_records = _metrics(run_dir / "metrics.jsonl")
    assert [r["point"] for r in mpi_records] == [r["point"] for r in sim_records] == [0, 1, 2]
    assert sim_records[-1]["updates"] >= 16 and sim_records[-1]["consensus"] > 0
    for sim, nud, dist in zip(sim_records, nudged_records, mpi_records):
        for key in ("env_steps", "episodes", "updates"):
            assert sim[key] == dist[key], (key, sim, dist)
        _close(dist["eval_returns"], sim["eval_returns"], nud["eval_returns"], f"point {sim['point']} eval")
        for key in METRICS:
            if key in sim:
                _close(dist[key], sim[key], nud[key], f"point {sim['point']} {key}")
    _assert_rows_equal(run_dir, carry.learner.params, nudged.learner.params)
    title = "dg_mappo on jaxmarl:MPE_simple_spread_v3"
    for r in mpi_records:  # the environment rank's progress lines, as `netmarl train` prints them
        assert re.search(rf"^{re.escape(title)}: [\d,]+/48 env steps \(\d+%\), eval return "
                         rf"{r['eval_return']:.3f}, \d+ s$", out, re.M), out[-3000:]
    assert out.count("max eval return") == 1, out[-3000:]
    for i in range(3):
        summary = json.loads((run_dir / f"agent_{i}" / "summary.json").read_text())
        assert summary["updates"] == mpi_records[-1]["updates"]
        assert summary["floats_sent"]["dgat_learn"] > summary["floats_sent"]["dgat_act"] > 0
        assert summary["floats_sent"]["psi_averaging"] > 0


def _assert_rows_equal(run_dir: Path, params, nudged) -> None:
    """Agent i's final_params.npz equals row i of the simulator's actor, critic (leaves [N, ...])
    and ψ (leaves [K, N, ...])."""
    def row(tree, i):
        return {"actor": jax.tree.map(lambda x: x[0, i], tree["actor"]),
                "critic": jax.tree.map(lambda x: x[0, i], tree["critic"]),
                "dgat": jax.tree.map(lambda x: x[0, :, i], tree["dgat"])}

    for i in range(3):
        saved = np.load(run_dir / f"agent_{i}" / "final_params.npz")
        leaves = jax.tree_util.tree_flatten_with_path(row(params, i))[0]
        assert sorted(saved.files) == sorted(jax.tree_util.keystr(p) for p, _ in leaves)
        for (path, leaf), nudged_leaf in zip(leaves, jax.tree.leaves(row(nudged, i))):
            _close(saved[jax.tree_util.keystr(path)], leaf, nudged_leaf,
                   f"agent {i} {jax.tree_util.keystr(path)}")


@pytest.mark.parametrize("override,message", [
    ("algo.policy.value_norm_scope=pooled", "accepted: algo.policy.value_norm_scope=agent"),
    ("algo.policy.critic_input=state", "accepted: local"),
    ("algo.comm.exchange=async", "accepted: exchange=sync"),
    ("algo.policy.eval_sample=true", "eval_sample=true is not supported"),
])
def test_unsupported_dg_mappo_settings_are_refused(override, message):
    from netmarl.cli import compose
    from netmarl.distributed.runtime import _check
    with pytest.raises(ValueError, match=message):
        _check(compose([*TINY, "run.id=x", override]))
    with pytest.raises(ValueError, match="algo=mappo .* trains with netmarl train"):
        _check(compose(["algo=mappo", "run.id=x"]))
