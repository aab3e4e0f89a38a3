"""Options several commands share, declared once: their names, types, defaults and help."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mer_search.core.config_io import parse_duration
from mer_search.core.errors import UserError


class Duration(click.ParamType):
    """2h, 90m, 1h30m, 600s or plain seconds, as seconds."""

    name = "duration"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(value)
        except UserError as e:
            self.fail(str(e), param, ctx)


def corpus(required: bool = True, must_exist: bool = True, help: str | None = None):
    """--corpus (formerly --meld-root, still accepted): the corpus folder, for every dataset."""
    return click.option("--corpus", "--meld-root", "corpus", required=required,
                        type=click.Path(path_type=Path, exists=must_exist, file_okay=False),
                        help=help or "The corpus folder: for MELD laid out like MELD.Raw (the three CSVs and the "
                                     "clip folders); for another dataset, as its schema declares. --meld-root is "
                                     "its older name.")


def seed():
    return click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                        help="The first seed (sampling, initialisation, batch order).")


def workers(default: int | None = None, help: str = "Processes decoding audio."):
    return click.option("--workers", type=click.IntRange(min=1), show_default=True, help=help,
                        default=default if default is not None else min(2, os.cpu_count() or 1))


def address(help: str = "Ray cluster address (auto, host:6379, ray://host:10001); default: a local Ray."):
    return click.option("--address", help=help)


def wandb(help: str = "W&B runs (offline: nothing is sent; `mer-search sync` uploads later)."):
    return click.option("--wandb", "wandb_mode", type=click.Choice(["offline", "online", "disabled"]),
                        default="offline", show_default=True, help=help)


def time_budget(help: str):
    return click.option("--time-budget", "time_budget_s", type=Duration(), help=help)


class GpuShare(click.ParamType):
    """auto, or a GPU fraction per trial (0 forces the CPU)."""

    name = "auto|fraction"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) or value != "auto":
            try:
                number = float(value)
            except ValueError:
                self.fail(f"{value!r}: auto, or a number >= 0 (0.25: four trials a GPU; 0: CPUs only)", param, ctx)
            if number < 0 or number != number:
                self.fail(f"{value!r}: auto, or a number >= 0", param, ctx)
            return number
        return value


def gpus_per_trial():
    return click.option("--gpus-per-trial", type=GpuShare(), default="auto", show_default=True,
                        help="GPU share of each trial. auto: where Ray sees GPUs, each trial takes a share sized "
                             "by its model's measured memory (small models pack up to 8 a GPU, the larger "
                             "encoder 2), else CPUs; a number fixes it (0.5: two trials a GPU; 0: CPUs only).")
