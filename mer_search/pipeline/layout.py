"""`PipelineDir`: where a study's outputs lie under --out. Every path of a pipeline dir is spelled here.

    prepared/          the prepared corpus (data_prep's PreparedDir)
    sweeps/STAGE/      each searched stage's sweep dir (SweepDir)
    configs/STAGE.yaml each stage's exported (or fixed) training config
    final/STAGE/       each stage's final trainings, one run dir per seed (RunDir)
    features/STAGE/    the features of a stage's best final seed, read by later stages (FeatureDir)
    ensemble.json      the ensemble chosen on dev from every row's final models: members, weights, scores
    bundle/            the answer: the row best on dev, as a model bundle
    summary.md         the reference project's table
    timings.json       seconds each step took, as it ended
"""

from __future__ import annotations

from pathlib import Path


class PipelineDir:
    PREPARED = "prepared"
    SWEEPS = "sweeps"
    CONFIGS = "configs"
    FINAL = "final"
    FEATURES = "features"
    BUNDLE = "bundle"
    ENSEMBLE = "ensemble.json"
    SUMMARY = "summary.md"
    TIMINGS = "timings.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def prepared(self) -> Path:
        return self.path / self.PREPARED

    def sweep(self, stage: str) -> Path:
        return self.path / self.SWEEPS / stage

    def config(self, stage: str) -> Path:
        return self.path / self.CONFIGS / f"{stage}.yaml"

    def final(self, stage: str) -> Path:
        return self.path / self.FINAL / stage

    def features(self, stage: str) -> Path:
        return self.path / self.FEATURES / stage

    @property
    def ensemble(self) -> Path:
        return self.path / self.ENSEMBLE

    @property
    def bundle(self) -> Path:
        return self.path / self.BUNDLE

    @property
    def summary(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def timings(self) -> Path:
        return self.path / self.TIMINGS

    def reports(self) -> list[Path]:
        """Each sweep's HTML report."""
        return sorted((self.path / self.SWEEPS).glob("*/report/index.html"))
