"""The one launch's machinery (``cadft_verl.main`` is its entry point): the run folder's layout (``run_dir``), the
stage type and registry (``stages``), the stages in their order: the warm start (``warm_start_stage``, the loop in
``warm_start/``), verl's RL trainer (``rl``) and the evaluation with the cold-start report (``evaluate``); Ray's
start and stop (``ray_cluster``), the watchdog that stops a launch whose worker died (``watchdog``) and the console's
view of a stage's metric history (``progress``)."""
