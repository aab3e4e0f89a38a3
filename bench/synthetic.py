"""The synthetic corpus the benchmarks run on: generated in MELD's layout, then prepared (one helper for all)."""

from __future__ import annotations

from pathlib import Path


def prepared_corpus(scratch: Path, dialogues: int, seed: int = 0, **prepare_options) -> Path:
    """Synthesize `dialogues` dialogues under scratch/corpus and prepare them into scratch/prepared (returned);
    `prepare_options` go to PrepareOptions (text_only, workers, shard_size...)."""
    from data_prep.prepare import PrepareOptions, prepare
    from data_prep.synth import SynthConfig, synthesize

    scratch = Path(scratch)
    synthesize(scratch / "corpus", SynthConfig(dialogues=dialogues, seed=seed))
    prepare(PrepareOptions(meld_root=scratch / "corpus", out=scratch / "prepared", **prepare_options))
    return scratch / "prepared"
