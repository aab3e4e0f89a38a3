"""Each bad input ends with one clear line naming the file (and row), exit 1, no traceback,
and nothing that looks like a complete preparation."""

import json
import shutil

import pytest
from click.testing import CliRunner

from mer_search.cli import main


@pytest.fixture()
def corpus(synth_corpus, tmp_path):
    """A private copy of the CSVs, with the clip folders linked in."""
    root = tmp_path / "meld"
    root.mkdir()
    for p in synth_corpus.iterdir():
        if p.suffix == ".csv":
            shutil.copy(p, root / p.name)
        elif p.is_dir():
            (root / p.name).symlink_to(p)
    return root


def _run(*args):
    result = CliRunner().invoke(main, ["prepare", *map(str, args), "--no-progress"])
    return result


def _assert_clean_failure(result, out, *needles):
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]
    manifest = out / "manifest.json"
    assert not manifest.exists() or not json.loads(manifest.read_text()).get("complete")
    assert not list(out.glob("*.parquet")) if out.exists() else True


def _rewrite(path, edit):
    path.write_text(edit(path.read_text()))


def test_missing_column(corpus, tmp_path):
    _rewrite(corpus / "dev_sent_emo.csv", lambda s: s.replace("Emotion,", "Feeling,", 1))
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_sent_emo.csv", "missing column(s) Emotion")


def test_unknown_emotion(corpus, tmp_path):
    lines = (corpus / "train_sent_emo.csv").read_text().splitlines()
    cells = lines[3].split(",")
    row = ",".join(c if c not in ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
                   else "happiness" for c in cells[:5]) + "," + ",".join(cells[5:])
    (corpus / "train_sent_emo.csv").write_text("\n".join([*lines[:3], row, *lines[4:]]) + "\n")
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "train_sent_emo.csv", "row 3 (Sr No. 3)", "Emotion 'happiness' is not in the label set")


def test_missing_csv(corpus, tmp_path):
    (corpus / "test_sent_emo.csv").unlink()
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "test_sent_emo.csv", "no such file")


def test_csv_is_a_directory(corpus, tmp_path):
    (corpus / "dev_sent_emo.csv").unlink()
    (corpus / "dev_sent_emo.csv").mkdir()
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_sent_emo.csv", "is a directory")


def test_empty_csv(corpus, tmp_path):
    (corpus / "dev_sent_emo.csv").write_text("")
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_sent_emo.csv", "file is empty")


def test_header_only_csv(corpus, tmp_path):
    _rewrite(corpus / "dev_sent_emo.csv", lambda s: s.splitlines()[0] + "\n")
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_sent_emo.csv", "no rows")


def test_non_utf8_bytes(corpus, tmp_path):
    data = (corpus / "dev_sent_emo.csv").read_bytes().splitlines(keepends=True)
    data[4] = data[4].replace(b",", b" don\x92t,", 1)   # a raw cp1252 apostrophe
    (corpus / "dev_sent_emo.csv").write_bytes(b"".join(data))
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_sent_emo.csv", "line 5", "0x92 is not UTF-8")


def test_non_integer_ids(corpus, tmp_path):
    lines = (corpus / "dev_sent_emo.csv").read_text().splitlines()
    head = lines[0].split(",")
    import csv
    import io

    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    rows[2][head.index("Dialogue_ID")] = "two"
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    (corpus / "dev_sent_emo.csv").write_text(buf.getvalue())
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_sent_emo.csv", "row 2", "Dialogue_ID 'two' is not a non-negative integer")


def test_missing_clip_folder(corpus, tmp_path):
    (corpus / "dev_splits_complete").unlink()
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_splits_complete", "clip folder for dev not found", "--text-only")


def test_not_an_mp4_under_strict(corpus, tmp_path):
    target = corpus / "output_repeated_splits_test"
    real = target.resolve()
    target.unlink()
    shutil.copytree(real, target)
    bad = sorted(target.glob("dia*_utt*.mp4"))[0]
    bad.write_text("not a video at all\n")
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o", "--strict", "--splits", "test"), tmp_path / "o",
                          bad.name, "not an mp4", "--strict")
    # without --strict the same clip is a quirk, and the run completes
    ok = _run("--meld-root", corpus, "--out", tmp_path / "o2", "--splits", "test")
    assert ok.exit_code == 0, ok.output
    assert "not an mp4" in (tmp_path / "o2" / "quirks.csv").read_text()


def test_unwritable_output(corpus, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _assert_clean_failure(_run("--meld-root", corpus, "--out", blocker / "out"), blocker / "out",
                          str(blocker / "out"), "not writable")


def test_meld_root_not_a_directory(tmp_path):
    _assert_clean_failure(_run("--meld-root", tmp_path / "nowhere", "--out", tmp_path / "o"), tmp_path / "o",
                          "nowhere", "not a directory")


def test_bad_split_and_channel(corpus, tmp_path):
    r = _run("--meld-root", corpus, "--out", tmp_path / "o", "--splits", "train,val")
    assert r.exit_code == 2 and "unknown split(s) val" in r.output
    r = _run("--meld-root", corpus, "--out", tmp_path / "o", "--channel", "centre")
    assert r.exit_code == 1 and "--channel 'centre'" in r.stderr


def test_semicolon_separated_csv(corpus, tmp_path):
    """Saved by a spreadsheet in a ';' locale: say so, not a parser's field count."""
    import pandas as pd

    df = pd.read_csv(corpus / "dev_sent_emo.csv", dtype=str, keep_default_na=False)
    df.to_csv(corpus / "dev_sent_emo.csv", sep=";", index=False)
    _assert_clean_failure(_run("--meld-root", corpus, "--out", tmp_path / "o"), tmp_path / "o",
                          "dev_sent_emo.csv", "looks separated by ';'", "the CSVs must use ','")
