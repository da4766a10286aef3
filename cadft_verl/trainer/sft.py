"""``torchrun -m cadft_verl.trainer.sft [hydra overrides]``: the CADFT / DFT / SFT stage on verl's SFT engine.

Config: ``cadft_verl/config/sft_trainer.yaml``, verl's ``sft_trainer_engine`` plus the ``cadft`` loss options
(``cadft_verl/config/cadft/loss.yaml``, the same block as the one launch's).

Example (CPU, 2 ranks):
    torchrun --standalone --nproc_per_node=2 -m cadft_verl.trainer.sft profile=cpu \\
        model.path=/path/to/model data.train_files=/path/to/sft/train.parquet cadft.loss=cadft
"""

from __future__ import annotations

import hydra


def check_inputs(config) -> None:
    """Fail before any worker starts when the model or a data file is missing, naming the key and path."""
    from cadft_verl.losses import LossConfig
    from cadft_verl.utils.paths import check_config_paths

    from .hook import refuse_sequence_parallel

    loss_cfg = LossConfig.from_mapping(config.get("cadft"))
    if loss_cfg.loss == "cadft":
        refuse_sequence_parallel(config.engine.get("ulysses_sequence_parallel_size", 1),
                                 "engine.ulysses_sequence_parallel_size")
    check_config_paths(config, "model.path", ("data.train_files", "data.val_files"))


def run_sft(config) -> None:
    """Train; the platform is already chosen (``prepare_device``: verl's ``cpu`` platform with ``profile=cpu``)."""
    from verl.utils.distributed import destroy_global_process_group, initialize_global_process_group

    from .sft_trainer import CADFTSFTTrainer

    check_inputs(config)
    initialize_global_process_group()
    try:
        trainer = CADFTSFTTrainer(config=config)
        trainer.fit()
    finally:
        destroy_global_process_group()


@hydra.main(config_path="../config", config_name="sft_trainer", version_base=None)
def main(config):
    from cadft_verl.platform import prepare_device

    prepare_device(config)
    run_sft(config)


if __name__ == "__main__":
    main()
