"""Writes docs/results/dvdn_marbler.md from a finished `netmarl reproduce dvdn-marbler` folder: our
table next to the heterogeneous half of the DVDN paper's Table 1, the ordering checks of the issue,
the learning curves, wall time and machine.

    .venv/bin/python benchmarks/report_dvdn_marbler.py [runs/reproduce/dvdn-marbler]

Hand-written sections of the existing document from "## Discussion" on are kept.
"""
from __future__ import annotations

import sys
from pathlib import Path

from report_common import RESULTS, table_report

DOC = RESULTS / "dvdn_marbler.md"
# Table 1 of the DVDN extended abstract (heterogeneous half): max average return (95 % CI offsets).
PAPER = {"marbler-arctic": {"iql": (-43.51, -1.64, 1.65), "dvdn": (-37.56, -1.01, 0.84),
                            "vdn": (-30.93, -0.70, 0.76)},
         "marbler-material": {"iql": (12.81, -0.49, 0.51), "dvdn": (18.07, -1.14, 1.30),
                              "vdn": (21.82, -0.36, 0.36)},
         "marbler-pcp": {"iql": (130.72, -0.81, 0.76), "dvdn": (133.02, -0.67, 0.78),
                         "vdn": (125.10, -2.57, 3.09)},
         "marbler-warehouse": {"iql": (21.99, -0.42, 0.38), "dvdn": (28.74, -0.45, 0.45),
                               "vdn": (23.65, -0.90, 0.93)}}
NAMES = {"iql": "IQL", "dvdn": "DVDN", "vdn": "VDN"}


def main(folder: str = "runs/reproduce/dvdn-marbler") -> None:
    table_report("dvdn-marbler", Path(folder), DOC,
                 "DVDN on MARBLER: the heterogeneous half of the DVDN paper's Table 1", PAPER, NAMES,
                 ("iql", "dvdn", "vdn"), "The issue asks for IQL below DVDN on at least three of the four "
                 "tasks, and DVDN within the CI of VDN or above it on at least two.")


if __name__ == "__main__":
    main(*sys.argv[1:])
