"""What the study is: its budgets, its options and its stages (what each searches, reads and produces).

    prepare -> text sweep -> export -> final train -> features
            -> context sweep on text features   -> export -> final train   (text + context)
            -> joint context sweep (frozen embeddings + dialogue RNN) -> export -> final train (text + context, joint)
            [-> the fine-tuning start point, where auto trains it -> features -> context sweep on them]
            -> speech sweep -> export -> final train -> features
            -> context sweep on speech features -> export -> final train   (speech + context)
            -> joint context sweep (functionals + dialogue RNN) -> export -> final train (speech + context, joint)
            -> fusion sweep on text + speech features -> export -> final train (text + speech)
            -> fusion on each modality's better row -> export -> final train (text + speech + context)
            -> speech floor (speech_stats, not searched) -> final train
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mer_search.core.errors import ConfigError

# trials per sweep, epochs per trial (ASHA's max_t), top trials refitted at full fidelity before export,
# seeds of each final training
BUDGETS = {"tiny": {"num_samples": 4, "max_epochs": 8, "refit": 1, "seeds": 2},
           "small": {"num_samples": 10, "max_epochs": 10, "refit": 2, "seeds": 3},
           "medium": {"num_samples": 30, "max_epochs": 20, "refit": 3, "seeds": 3},
           "large": {"num_samples": None, "max_epochs": None, "refit": 3, "seeds": 5}}   # None: the space's own
AUTO = "auto"
# the floor every speech row is held against (per-band log-mel mean + std into a linear layer), not searched:
# trained to convergence whatever the budget, so the rows above it are not flattered by an undertrained floor
SPEECH_FLOOR = Path(__file__).resolve().parents[1] / "configs" / "speech_stats.yaml"
# the fine-tuning start point trained beside text_any where a fine-tuning search does not fit (text_space.py),
# one seed: a CPU's minutes go to it once
FINETUNE_START = Path(__file__).resolve().parents[1] / "configs" / "text_finetune_short.yaml"


@dataclass
class PipelineOptions:
    meld_root: Path                   # the corpus folder (the CLI's --corpus; --meld-root is its old name)
    out: Path
    budget: str = "small"
    workers: int = 1
    text_only: bool = False           # no audio: only the text rows of the table
    dataset: str = "meld"             # a dataset schema: shipped name or file (`mer-search datasets`)
    cpus_per_trial: float = 1
    gpus_per_trial: float | str = AUTO    # auto: a share by each model's memory where Ray sees GPUs, else CPUs
    address: str | None = None
    wandb: str = "offline"
    seed: int = 0
    with_test: bool = True            # score test when it is prepared
    text_space: str = AUTO            # the text stage's space: a name under spaces/ or a file, or auto
                                      # (text_space.py: fine-tuning where the hardware affords it, else text_any)
    time_budget_s: float | None = None    # the whole pipeline's; each stage's sweep stops at its share
    refit: int | None = None          # top trials refitted before export (None: the budget's)

    def budget_settings(self) -> dict:
        """The budget's numbers, --refit applied; a wrong budget or space name fails here, before any work."""
        if self.budget not in BUDGETS:
            raise ConfigError(f"--budget {self.budget!r}: one of {', '.join(BUDGETS)}")
        if self.text_space != AUTO:
            space_path(self.text_space)
        return {**BUDGETS[self.budget], **({"refit": self.refit} if self.refit is not None else {})}


@dataclass
class Stage:
    name: str                 # text, text_context, speech, speech_context, fusion, fusion_context, speech_floor
    row: str                  # its row in the summary table (rows in the order of the stage list)
    space: Path | None = None             # searched in this space; None: `config` trained as it is
    config: Path | None = None
    # sweep option (features, features_text ...) -> the stages whose features it may read: of several, the one
    # whose model scored best on dev
    consumes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    produces_features: bool = False       # its final model's features feed later stages
    seeds: int | None = None              # final seeds; None: the budget's


def space_path(name: str) -> Path:
    """A space file, or the name of a shipped one (./spaces/NAME.yaml wins when it exists)."""
    from mer_search.search.space import find_space

    return find_space(name)


def sweep_epochs(budget_epochs: int | None, space: Path) -> int | None:
    """The budget caps a trial's epochs; a space that needs fewer (fine-tuning: 3) keeps its own."""
    from mer_search.core.config_io import load_yaml

    space_epochs = (load_yaml(space).get("search") or {}).get("max_epochs")
    return min(filter(None, (budget_epochs, space_epochs)), default=None)


def stages(text_only: bool, text_space: str = "text_any", finetune_start: bool = False,
           functionals: bool = True) -> list[Stage]:
    """Every stage in the order it runs, which is the reference project's table order, then the answer that
    combines them: text + speech + context. `finetune_start`: the fine-tuning start point (no search) and a
    context stage over its features, beside the text space's rows. `functionals`: whether prepare computed the
    speech functionals the joint speech context reads."""
    s = [Stage("text", "text", space_path(text_space), produces_features=True),
         Stage("text_context", "text + context", space_path("context_two_stage"), consumes={"features": ("text",)},
               produces_features=not text_only),
         Stage("text_context_joint", "text + context (joint)", space_path("context_joint_text"),
               produces_features=not text_only)]
    texts, text_contexts = ("text",), ("text", "text_context", "text_context_joint")
    if finetune_start:
        s += [Stage("text_finetuned", "text (fine-tuned start point)", config=FINETUNE_START, produces_features=True,
                    seeds=1),
              Stage("text_finetuned_context", "text (fine-tuned) + context", space_path("context_two_stage"),
                    consumes={"features": ("text_finetuned",)}, produces_features=not text_only)]
        texts, text_contexts = ("text", "text_finetuned"), (*text_contexts, "text_finetuned", "text_finetuned_context")
    if not text_only:
        s += [Stage("speech", "speech", space_path("speech_any"), produces_features=True),
              Stage("speech_context", "speech + context", space_path("context_two_stage"),
                    consumes={"features": ("speech",)}, produces_features=True),
              *([Stage("speech_context_joint", "speech + context (joint)", space_path("context_joint_speech"),
                       produces_features=True)] if functionals else []),
              Stage("fusion", "text + speech", space_path("fusion"),
                    consumes={"features_text": texts, "features_speech": ("speech",)}),
              # each modality's better row on dev, with or without context (a fusion starts from the better one)
              Stage("fusion_context", "text + speech + context", space_path("fusion"),
                    consumes={"features_text": text_contexts,
                              "features_speech": ("speech", "speech_context",
                                                  *(("speech_context_joint",) if functionals else ()))}),
              Stage("speech_floor", "speech floor", config=SPEECH_FLOOR)]
    return s


def is_finetuning(space: Path) -> bool:
    """Whether a space can sample a model that fine-tunes a pretrained encoder (the registry says which do)."""
    from mer_search.models import finetuned_encoder, model_names
    from mer_search.search.space import load_space

    s = load_space(space)
    names = [s.fixed["model.name"]] if "model.name" in s.fixed else list(s.params["model.name"].choices)
    return any(n in model_names() and finetuned_encoder({"name": n}) for n in names)
