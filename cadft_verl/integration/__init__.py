"""What ties this project into verl without editing it: the ``verl.trainer.main`` module alias and the file logger
that keeps a stage's metric history across a resume. Loaded by ``cadft_verl.plugin`` (verl's plugin entry point)."""
