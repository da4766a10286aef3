"""Write a real verl FSDP checkpoint of an HF model, cheaply: FSDP2 (``fully_shard``) over gloo ranks on the CPU,
saved by verl's own ``FSDPCheckpointManager`` (the code stage 2's actor workers save with).

    python tests/eval/fsdp_checkpoint.py MODEL_DIR OUT_DIR [--world-size 2] [--hf-model] [--perturb 0.01]

``OUT_DIR`` gets verl's layout (``model_world_size_W_rank_R.pt``, ``fsdp_config.json``, ``huggingface/``), and
``OUT_DIR/reference.pt`` the full state dict that was sharded (to compare a merge against). ``--perturb`` adds a
seeded offset to every weight first, so that the checkpoint differs from ``MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import os


def _rank(rank: int, args) -> None:
    import torch
    import torch.distributed as dist
    from omegaconf import OmegaConf
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port), RANK=str(rank),
                      WORLD_SIZE=str(args.world_size), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=args.world_size)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    if args.perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(args.perturb * torch.randn_like(p))
    if rank == 0:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, os.path.join(args.out, "reference.pt"))
    # the mesh verl's FSDP engine builds (one dimension named "fsdp"), which verl's model merger expects
    mesh = init_device_mesh("cpu", (args.world_size,), mesh_dim_names=("fsdp",))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    contents = ["model", "hf_model"] if args.hf_model else ["model"]
    ckpt = FSDPCheckpointManager(model, optimizer=None, lr_scheduler=None,
                                 processing_class=AutoTokenizer.from_pretrained(args.model),
                                 checkpoint_config=OmegaConf.create({"save_contents": contents,
                                                                     "load_contents": contents}))
    ckpt.save_checkpoint(args.out, global_step=1)
    dist.barrier()
    dist.destroy_process_group()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--hf-model", action="store_true", help="also save the HF export (save_contents hf_model)")
    ap.add_argument("--perturb", type=float, default=0.0)
    ap.add_argument("--port", type=int, default=29731)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    import torch.multiprocessing as mp
    import transformers  # noqa: F401 - imported once here; the forked ranks inherit it (and verl) instead of
    import verl.utils.checkpoint.fsdp_checkpoint_manager  # noqa: F401 - importing them again each (~10 s on 2 cores)

    mp.start_processes(_rank, args=(args,), nprocs=args.world_size, join=True, start_method="fork")


if __name__ == "__main__":
    main()
