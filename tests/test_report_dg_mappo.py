"""benchmarks/report_dg_mappo.py on a synthetic archive: the paper's metric (median and standard
deviation over seeds of the final win rate, in %), partial cells labelled, the 3m verdict."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the report scripts import report_common by name

import report_dg_mappo as report  # noqa: E402


def _finished_run(folder: Path, name: str, total: int, wins: list[float]) -> None:
    run = folder / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run": {"total_steps": total}}))
    (run / "summary.json").write_text(json.dumps({"wall_time_s": 100.0, "env_steps_per_s": total / 100.0}))
    steps = [total * i // (len(wins) - 1) for i in range(len(wins))]
    (run / "metrics.jsonl").write_text("".join(json.dumps({"point": i, "env_steps": s, "eval_won": w}) + "\n"
                                               for i, (s, w) in enumerate(zip(steps, wins))))


def test_table_median_std_partial_cells_and_verdict(tmp_path, monkeypatch):
    archive = tmp_path / "dg-mappo"
    for seed, final in enumerate([1.0, 0.9375, 0.96875]):
        _finished_run(archive, f"smax:3m_mappo_s{seed}", 2_000_000, [0.0, 0.5, final])
    _finished_run(archive, "smax:3m_dg_mappo_s0", 2_000_000, [0.0, 0.25, 0.5])
    _finished_run(archive, "smax:3m_ippo_s0", 1_000_000, [0.0, 1.0])  # short of the 2M budget: not done
    monkeypatch.setattr(report, "DOC", tmp_path / "dg_mappo.md")
    report.main(str(archive), str(tmp_path / "no-ablation"))
    doc = (tmp_path / "dg_mappo.md").read_text()
    # median of 100, 93.75, 96.875 = 96.875 -> 96.9; sample std 3.125 -> 3.1
    assert "| 3m | 50.0 (–) [1/5 seeds, 2M] | 96.9 (3.1) [3/5 seeds, 2M] | not run |" in doc
    assert "| 8m | not run | not run | not run |" in doc
    assert "| 3m | 100.0 (1.1) | 100.0 (0.4) | 100.0 (1.2) | 100.0 (1.4) |" in doc  # the paper's row
    assert "- MAPPO: median 96.9 % over 3 finished seed(s): meets it" in doc
    assert "- DG-MAPPO: median 50.0 % over 1 finished seed(s): does not meet it" in doc
    assert "- IPPO: no finished seed yet." in doc
    assert "4 of 75 runs finished" in doc and "0 of 15 runs finished" in doc
    assert (tmp_path / "dg_mappo_curves.png").stat().st_size > 0
