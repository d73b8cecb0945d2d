"""Writes docs/results/dvdn_lbf.md and benchmarks/epymarl_equivalent.md from a finished
`netmarl reproduce dvdn-lbf` folder: our table next to the paper's, the ordering checks of the issue,
the learning curves, wall time and throughput against EPyMARL.

    .venv/bin/python benchmarks/report_dvdn_lbf.py [runs/reproduce/dvdn-lbf]

Hand-written sections of the existing document from "## Discussion" on are kept.
"""
from __future__ import annotations

import sys
from pathlib import Path

from report_common import RESULTS, ROOT, per_cell_timing, table_report
from side_by_side_lib import latest_measured

from netmarl.results.provenance import machine_lines

DOC = RESULTS / "dvdn_lbf.md"
EQUIV = ROOT / "benchmarks" / "epymarl_equivalent.md"
# Table 1 of the DVDN extended abstract (homogeneous half): max average return (95 % CI offsets).
PAPER = {"lbf-easy": {"iql": (0.81, -0.02, 0.02), "dvdn_gt": (0.89, -0.02, 0.02),
                      "vdn_ps": (0.94, -0.01, 0.01)},
         "lbf-medium": {"iql": (0.61, -0.02, 0.02), "dvdn_gt": (0.72, -0.01, 0.02),
                        "vdn_ps": (0.79, -0.02, 0.02)},
         "lbf-hard": {"iql": (0.43, -0.01, 0.02), "dvdn_gt": (0.52, -0.01, 0.02),
                      "vdn_ps": (0.56, -0.02, 0.02)}}
NAMES = {"iql": "IQL", "dvdn_gt": "DVDN (GT)", "vdn_ps": "VDN (PS)"}


def main(folder: str = "runs/reproduce/dvdn-lbf") -> None:
    runs, hours = table_report(
        "dvdn-lbf", Path(folder), DOC, "DVDN on LBF: the homogeneous half of the DVDN paper's Table 1",
        PAPER, NAMES, ("iql", "dvdn_gt", "vdn_ps"),
        "The issue asks for IQL < DVDN (GT) ≤ VDN (PS) within the CIs on each task, with DVDN (GT) "
        "closing at least half of the IQL → VDN (PS) gap on at least two tasks.",
        "Mean greedy return over seeds (100 episodes per evaluation), 95 % bootstrap CI bands.")
    epymarl = latest_measured("vdn_ns-mlp")  # EPyMARL's whole-run rate, measured side by side
    EQUIV.write_text("\n".join([
        "# netmarl against EPyMARL: the DVDN LBF reproduction", "",
        f"- Whole reproduction ({len(runs)} runs of {runs[0].budget:,} env steps): {hours:.2f} h wall time "
        "on this machine (`netmarl reproduce dvdn-lbf --jobs 2`).",
        f"- EPyMARL `vdn_ns` (MLP) runs at {epymarl.epymarl_whole:,.0f} env-steps/s over a whole run "
        f"({epymarl.source}); at that rate the same runs would need "
        f"{len(runs) * runs[0].budget / epymarl.epymarl_whole / 3600:,.0f} h of one core.",
        "- Per-run throughput at identical settings, measured side by side: "
        "docs/results/epymarl_side_by_side.md.", "",
        "Per-run throughput in this reproduction (its settings: see docs/results/dvdn_lbf.md):", "",
        *per_cell_timing(runs, epymarl.epymarl_whole), "", *machine_lines(), ""]))
    print(f"written: {EQUIV}")


if __name__ == "__main__":
    main(*sys.argv[1:])
