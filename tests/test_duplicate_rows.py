"""A stage that would repeat an earlier one is not run: text + speech + context fuses each modality's better
row, and when neither context row beat its plain row on dev that is text + speech again."""

import json
import shutil

from mer_search import pipeline as p
from mer_search.core.dirs import FeatureDir


def _features(pipe, scores: dict) -> None:
    for stage, dev in scores.items():
        d = FeatureDir(pipe.dir.features(stage))
        d.path.mkdir(parents=True, exist_ok=True)
        d.manifest.write_text(json.dumps({"checkpoint": f"{stage}.pt", "dev_wf1": dev}))


def test_the_fusion_of_plain_rows_is_not_run_twice(prepared, tmp_path):
    out = tmp_path / "pipe"
    shutil.copytree(prepared, out / "prepared")
    pipe = p.Pipeline(p.PipelineOptions(meld_root=tmp_path, out=out, text_space="text_any", gpus_per_trial=0))
    stages = {s.name: s for s in pipe.stages()}
    assert pipe.same_as(stages["fusion_context"]) is None          # its inputs are not there yet: nothing to say
    _features(pipe, {"text": 0.61, "text_context": 0.58, "text_context_joint": 0.60, "speech": 0.70,
                     "speech_context": 0.69, "speech_context_joint": 0.64})
    assert pipe.same_as(stages["fusion_context"]) == stages["fusion"]
    assert pipe.why["fusion_context"] == ("same inputs and space as text + speech: features_speech from speech, "
                                          "features_text from text")
    others = [s for s in stages if s not in ("fusion_context", "speech_floor")]
    assert [pipe.same_as(stages[n]) for n in others] == [None] * len(others)
    # the pipeline's steps leave it out, and say so
    names = [s.name for s in pipe.steps() if s.name != "prepare"]
    assert not any(n.endswith("fusion_context") for n in names) and "sweep fusion" in names
    assert any(line == f"- fusion_context: not run, {pipe.why['fusion_context']}" for line in pipe.space_lines())
    _features(pipe, {"text_context": 0.62})                        # one context row wins: a new fusion
    assert pipe.same_as(stages["fusion_context"]) is None
