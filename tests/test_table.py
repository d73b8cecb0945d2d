"""The paper's table maths (bootstrap CI, max over evaluations, marks) and `netmarl table`/`plot`."""
import json

import numpy as np
import pytest

from netmarl.cli import main
from netmarl.results.stats import Cell, Curves, bootstrap_ci, cell, curves_from_records, iqm, marks


def test_bootstrap_ci_of_a_normal_sample_matches_the_normal_theory_interval():
    sample = np.random.default_rng(0).normal(0.5, 0.1, 400)
    low, high = bootstrap_ci(sample)
    half = 1.96 * sample.std() / np.sqrt(sample.size)
    assert low < sample.mean() < high
    np.testing.assert_allclose([low, high], [sample.mean() - half, sample.mean() + half], atol=0.003)


def test_bootstrap_ci_is_the_percentile_interval_of_resampled_means():
    sample = np.array([0.2, 0.4, 0.5, 0.9, 1.0])
    rng = np.random.default_rng(1)
    means = sample[rng.integers(0, 5, (50_000, 5))].mean(1)
    expected = np.percentile(means, [2.5, 97.5])
    np.testing.assert_allclose(bootstrap_ci(sample), expected, atol=0.01)


def test_bootstrap_ci_of_identical_values_is_a_point():
    assert bootstrap_ci(np.full(10, 0.7)) == (0.7, 0.7)
    assert bootstrap_ci(np.array([0.3])) == (0.3, 0.3)


def test_iqm_drops_the_outer_quartiles():
    assert iqm(np.array([0, 1, 2, 3, 4, 5, 6, 100.0])) == pytest.approx(3.5)


def _records(returns: np.ndarray, steps_per_point: int = 100):
    return [{"seed": s, "point": p, "env_steps": p * steps_per_point, "eval_return": float(r)}
            for s, row in enumerate(returns) for p, r in enumerate(row)]


def test_cell_takes_the_maximum_over_points_of_the_mean_over_seeds():
    # Seed 0 peaks at point 1, seed 1 at point 3; the mean over seeds peaks at point 2.
    returns = np.array([[0.0, 0.9, 0.6, 0.1], [0.0, 0.1, 0.6, 0.9]])
    c = cell(curves_from_records(_records(returns)))
    assert c.best_point == 2 and c.best_env_steps == 200
    assert c.max_mean == pytest.approx(0.6)  # not the mean of per-seed maxima (0.9)
    assert c.ci_low == c.ci_high == pytest.approx(0.6)  # both seeds equal at that point
    assert c.final_mean == pytest.approx(0.5) and c.seeds == 2


def test_curves_refuse_seeds_with_missing_points():
    records = _records(np.ones((2, 3)))[:-1]
    with pytest.raises(ValueError, match="missing"):
        curves_from_records(records)


def _cell(mean, low, high):
    return Cell(mean, low, high, 0, 0, mean, mean, 10)


def test_marks_best_ci_overlap_and_second_rank():
    cells = {"iql": _cell(0.81, 0.79, 0.83), "dvdn": _cell(0.89, 0.87, 0.91),
             "vdn": _cell(0.94, 0.93, 0.95)}
    assert marks(cells) == {"vdn": "best", "dvdn": "**", "iql": ""}
    cells["dvdn"] = _cell(0.92, 0.90, 0.935)  # its CI now reaches the best's
    assert marks(cells) == {"vdn": "best", "dvdn": "*", "iql": ""}


def _fake_run(path, algo, seed, returns):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"env": {"name": "lbf-easy"}, "algo": {"name": algo}}))
    rows = [{"seed": seed, "point": p, "env_steps": p * 1000, "eval_return": r}
            for p, r in enumerate(returns)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_table_command_pools_seeds_and_writes_markdown_and_csv(tmp_path, capsys):
    for seed in range(3):
        _fake_run(tmp_path / f"iql{seed}", "iql", seed, [0.0, 0.5 + 0.01 * seed, 0.4])
        _fake_run(tmp_path / f"vdn{seed}", "vdn", seed, [0.0, 0.6, 0.9 + 0.01 * seed])
    main(["table", *map(str, sorted(tmp_path.glob("*"))), "--out", str(tmp_path / "out" / "t")])
    text = (tmp_path / "out" / "t.md").read_text()
    assert "| lbf-easy | 0.51" in text and "**0.91**" in text and "seeds per cell: 3" in text
    rows = (tmp_path / "out" / "t.csv").read_text().splitlines()
    assert rows[0].startswith("task,algo,mark,max_mean") and len(rows) == 3
    main(["plot", *map(str, sorted(tmp_path.glob("*[0-9]"))), "--out", str(tmp_path / "c.png")])
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_table_refuses_repeated_seeds(tmp_path):
    _fake_run(tmp_path / "a", "iql", 0, [0.1, 0.2])
    _fake_run(tmp_path / "b", "iql", 0, [0.1, 0.2])
    with pytest.raises(SystemExit, match="repeats seeds"):
        main(["table", str(tmp_path / "a"), str(tmp_path / "b")])


def test_curves_type_is_returns_by_seed_and_point():
    c = curves_from_records(_records(np.arange(6.0).reshape(2, 3)))
    assert isinstance(c, Curves) and c.returns.shape == (2, 3)
    np.testing.assert_array_equal(c.env_steps, [0, 100, 200])


def test_difference_p_is_the_exact_two_sided_permutation_p():
    """Five seeds each, fully separated: 2 of the C(10, 5) = 252 relabellings are as extreme."""
    from netmarl.results.stats import difference_p
    assert difference_p(np.zeros(5), np.ones(5)) == pytest.approx(2 / 252)
    assert difference_p(np.ones(3), np.ones(4)) == 1.0
    assert difference_p([0.1, 0.3, 0.2], [0.2, 0.1, 0.3]) == pytest.approx(1.0)
    assert difference_p([0.0], [1.0]) == 1.0  # one run each (a report regenerated mid-benchmark)
    assert difference_p([0.0], [1.0, 1.0, 1.0]) == pytest.approx(1 / 4)
