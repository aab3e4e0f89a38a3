"""One config trained end to end: the pure-PyTorch loop (train.py, never imports ray), configs as files,
a model's inputs from the data, a run dir per seed, the config a sweep hands on (export, refit), features for
later stages, confusion plots and the final training's W&B run."""
