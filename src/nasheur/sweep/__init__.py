"""The machinery of nasheur's one-factor-at-a-time sweeps, behind the Hydra sweeper
(``hydra/sweeper=ablation``: :mod:`hydra_plugins.nasheur_ablation.ablation_sweeper`, which keeps
only the plugin: its config, and the plan-check-launch-report of a sweep).

- :mod:`.plan`: an experiment's blocks, spaces and seeds as the jobs of a sweep;
- :mod:`.preflight`: what the jobs to run would read first (CIFAR-10, ground truth, device);
- :mod:`.manifest`: a job's state from its folder, and ``sweep.json``;
- :mod:`.twins`: jobs that a sibling sweep completed, trains or left queued;
- :mod:`.launchers`: what the sweep knows of its launchers and of submitit's job arrays;
- :mod:`.outcomes`: each job's state after a launch, the summary and the sweep's error;
- :mod:`.dry_run`: the checked plan, printed instead of launched.

They live outside ``hydra_plugins`` so that Hydra's scan of that package, which runs each
plugin module again where the plugins are installed as plain files, makes no second copy of
their classes.
"""
