"""Crash a trial after some epoch, resume it from last.pt, and keep every epoch's metrics of each run."""

import pytest


class Record:
    """A reporter that keeps each epoch's losses, dev metrics and lr, and can crash after an epoch."""

    def __init__(self, crash_after=None):
        self.epochs, self.crash_after = {}, crash_after

    def report(self, epoch, metrics):
        self.epochs[epoch] = {k: v for k, v in metrics.items() if k.startswith(("train_loss", "dev_", "lr"))}
        if epoch == self.crash_after:
            raise KeyboardInterrupt("simulated crash")


def crash_and_resume(cfg, tmp_path, crash_after: int, seed: int) -> tuple[dict, dict, dict]:
    """(unbroken, crashed, resumed) per-epoch metrics of the same config and seed."""
    from mer_search.training.experiment import train_trial
    from mer_search.training.train import load_checkpoint

    unbroken = Record()
    train_trial(cfg, tmp_path / "a", unbroken, seed=seed)
    crashed = Record(crash_after=crash_after)
    with pytest.raises(KeyboardInterrupt):
        train_trial(cfg, tmp_path / "b", crashed, seed=seed)
    resumed = Record()
    train_trial(cfg, tmp_path / "b", resumed, resume=load_checkpoint(tmp_path / "b" / "last.pt"), seed=seed)
    return unbroken.epochs, crashed.epochs, resumed.epochs
