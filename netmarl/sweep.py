"""`netmarl train --multirun`: Hydra multirun sweeps of `netmarl train`, run by any Hydra launcher.

    netmarl train -m algo=vdn,qmix seed=0,1,2 steps=200000                 # one run after another
    netmarl train -m algo=vdn,qmix hydra/launcher=submitit_local           # as processes, via submitit
    netmarl train -m algo=vdn,qmix seeds=5 hydra/launcher=submitit_slurm \\
        hydra.launcher.partition=cpu hydra.launcher.timeout_min=600       # as Slurm jobs

Each job of the sweep is one `netmarl train` run with that job's overrides (same config, same run
directory layout under run.dir). Without a run.id, a job's run is named
`<env>_<algo>_<sweep date>_<sweep time>_<job number>`, so that jobs of one sweep never collide. Hydra keeps its
own record of the sweep (each job's composed config and overrides) under `hydra.sweep.dir`
(default `multirun/<date>/<time>`). The submitit launchers come with `pip install -e '.[cluster]'`
(hydra-submitit-launcher); whole paper grids are `netmarl reproduce --backend slurm|ray` (backends.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

from netmarl.cli import CONF_DIR, _expand


def run_sweep(overrides: list[str]) -> None:
    """Runs a Hydra multirun over `netmarl train` overrides (aliases and env ids as for train)."""
    import hydra
    from hydra.core.config_store import ConfigStore

    from netmarl.config import TrainConfig

    ConfigStore.instance().store(name="base_config", node=TrainConfig)
    main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(train_job)
    argv = sys.argv
    sys.argv = ["netmarl", "--multirun", *[_expand(o) for o in overrides]]
    try:
        main()
    finally:
        sys.argv = argv


def train_job(cfg) -> str:
    """One job of a sweep: trains the composed config; returns its run directory."""
    import dataclasses

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from netmarl.train.loop import report, train

    config = OmegaConf.to_object(cfg)
    if not config.run.id:
        hydra_cfg = HydraConfig.get()
        run_id = (f"{config.env.name.replace(':', '_')}_{config.algo.name}_"
                  f"{'_'.join(Path(hydra_cfg.sweep.dir).parts[-2:])}_{hydra_cfg.job.num}")
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, id=run_id))
    run = train(config)
    report(run)
    return str(run.path)
