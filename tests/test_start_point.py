"""`--text-space auto` on CPUs: where no fine-tuning search fits, the fine-tuning start point does, and is
trained beside text_any (one seed) with a context stage over its features."""

import shutil

from mer_search import pipeline as p
from mer_search.training.config import load_config


def test_the_start_point_is_chosen_by_its_estimated_minutes():
    t = p.text_space
    # MELD: 9,989 train and 13,708 utterances in all, 2 cores: ~6 minutes, so yes; not at --budget tiny
    yes, why = t.finetune_start(9989, 13708, 2, "small")
    assert yes and "~6m15s estimated" in why
    assert t.finetune_start(9989, 13708, 2, "tiny") == (False, "not at --budget tiny")
    no, why = t.finetune_start(100_000, 130_000, 2, "small")            # a corpus ten times MELD's
    assert not no and "more than 30m00s" in why


def test_auto_on_cpus_adds_the_start_point_and_its_context_rows(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(p.text_space, "visible_gpus", lambda address: 0.0)
    out = tmp_path / "pipe"
    shutil.copytree(prepared, out / "prepared")
    pipe = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, text_only=True))
    names = [s.name for s in pipe.stages()]
    assert names == ["text", "text_context", "text_context_joint", "text_finetuned", "text_finetuned_context"]
    start = pipe.stages()[3]
    assert start.seeds == 1 and start.space is None and start.produces_features
    assert pipe.stages()[4].consumes == {"features": ("text_finetuned",)}
    cfg = load_config(start.config)
    assert (cfg["data"]["context_window"], cfg["data"]["future_window"], cfg["data"]["max_tokens"]) == (0, 1, 96)
    assert (cfg["model"]["pooling"], cfg["model"]["freeze_layers"], cfg["data"]["class_balance"]) == \
        ("cls", 1, "sqrt_weights")
    assert any(line.startswith("- text_finetuned: text_finetune_short, no search (auto: no fine-tuning search")
               for line in pipe.space_lines())
    tiny = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, text_only=True, budget="tiny"))
    assert "text_finetuned" not in [s.name for s in tiny.stages()]
    given = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, text_only=True, text_space="text_lstm"))
    assert "text_finetuned" not in [s.name for s in given.stages()]
