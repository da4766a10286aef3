"""LoRA for stage 1 of the one launch (``cadft.model``, docs/lora.md): the typed options (``config``), their start-up
checks (``checks``) and the hand-over: the merged HF export with the adapter beside it (``export``)."""
