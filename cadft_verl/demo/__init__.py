"""The embedded CPU default of the main job (``cpu_default``: ``bash scripts/run_main.sh``), its pretrained tiny base
model (``pretrain``) and the tiny Qwen2 it is built from (``tiny_model``): what lets everything run and learn
something real on a machine without a GPU or a model hub."""
