"""A small corpus in MELD's layout, made with PyAV alone, for tests and the demo.

Two kinds of audio (`SynthConfig.mode`):
- `speech` (default): speech-like clips from data_prep.voices: speaker voices,
  emotions that shift pitch, range, loudness, rate and voice quality by
  overlapping amounts, noise, room tone, varying recording levels. Text says
  the emotion plainly in only part of the utterances, and emotions persist
  across turns, so speech, text and context each carry part of the answer.
- `tones`: the first corpus (fixed tone patterns per emotion, plain emotion
  words), kept to reproduce earlier results. Every speech model scores ~0.98 on it.
With `text_from` (a folder with MELD's train and dev CSVs) the dialogues are real MELD dialogues, their
text, speakers and labels as they are, spoken by the synthetic voices: text as hard as MELD's, speech
that carries the emotion. train and test draw disjoint dialogues from MELD's train, dev from MELD's dev.
Every audio quirk that prepare must handle is injected, and listed in `synth_truth.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd

from data_prep import voices
from data_prep.schema import load_schema

SR = 48000
_MELD = load_schema("meld")                 # the layout written: MELD's, as its schema declares it
EMOTIONS = _MELD.labels
CSV_NAMES, CLIP_DIRS = _MELD.files, _MELD.clip_dirs
# emotion -> (f0 Hz, amplitude, syllables per second): the learnable signal.
VOICE = {"neutral": (140, 0.15, 4.0), "joy": (240, 0.35, 6.0), "surprise": (300, 0.40, 5.0),
         "anger": (180, 0.60, 7.0), "sadness": (110, 0.08, 2.5), "disgust": (130, 0.25, 3.0),
         "fear": (260, 0.20, 8.0)}
# roughly MELD train's label shares
EMOTION_P = np.array([0.47, 0.17, 0.12, 0.11, 0.07, 0.03, 0.03])
SENTIMENT = {"neutral": "neutral", "joy": "positive", "anger": "negative", "sadness": "negative",
             "disgust": "negative", "fear": "negative"}
SPEAKERS = ["Joey", "Ross", "Rachel", "Phoebe", "Monica", "Chandler", "Janice", "Gunther", "Mr. Geller"]
WORDS = {
    "neutral": ["okay", "so", "the coffee", "the apartment", "tomorrow", "the meeting", "I think"],
    "joy": ["great", "wonderful", "I love it", "so happy", "amazing", "yay"],
    "surprise": ["what", "no way", "really", "oh my god", "seriously", "wow"],
    "anger": ["stop it", "I hate this", "get out", "how dare you", "damn it", "unbelievable"],
    "sadness": ["I miss her", "it's over", "so sorry", "I'm lonely", "it hurts", "sad"],
    "disgust": ["gross", "ew", "disgusting", "that's nasty", "yuck", "eww"],
    "fear": ["I'm scared", "help", "oh no", "what was that", "terrified", "run"],
}
TEMPLATES = ["{w}, {n}!", "{n}, {w}.", "Well, {w}... {w2}.", "{w}? {w2}!", "You know what? {w}.",
             "I can't believe it, {w}."]


@dataclass
class SynthConfig:
    dialogues: int = 20
    seed: int = 0
    long_clip_s: float = 35.0    # longer than prepare's default 30 s cap
    mode: str = "speech"         # speech | tones (see the module docstring)
    text_from: Path | None = None    # MELD's CSVs: speak real dialogues (see the module docstring)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"synth mode {self.mode!r}: one of {', '.join(MODES)}")


MODES = ("speech", "tones")
# speech mode: the share of utterances whose words name their emotion (the rest say something
# neutral, and a few something of another emotion), and the chance a turn keeps the previous emotion
PLAIN_TEXT_P, OTHER_TEXT_P, PERSIST_P = 0.55, 0.08, 0.35


def voice(emotion: str, seconds: float, rng: np.random.Generator, speaker_shift: float) -> np.ndarray:
    """Harmonic bursts at the emotion's pitch, loudness and syllable rate, with noise."""
    f0, amp, rate = VOICE[emotion]
    n = max(1, int(seconds * SR))
    t = np.arange(n) / SR
    pitch = f0 * speaker_shift * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    if emotion == "surprise":
        pitch *= 1 + 0.4 * t / max(seconds, 1e-3)
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * rate * t + rng.uniform(0, np.pi)))
    wave = amp * rng.uniform(0.8, 1.2) * syllables * wave / 2.3
    wave += 0.003 * rng.standard_normal(n)
    return wave.astype(np.float32)


def clip_audio(emotion: str, seconds: float, rng: np.random.Generator, speaker: str, cfg: SynthConfig,
               scene_db: float = 0.0) -> np.ndarray:
    """A 48 kHz mono clip in the corpus's mode."""
    if cfg.mode == "tones":
        return voice(emotion, seconds, rng, 1.0 + 0.1 * (SPEAKERS.index(speaker) % 4 - 1.5) / 1.5)
    import torch

    from data_prep.audio import resample

    x = voices.render(emotion, seconds, voices.speaker_voice(speaker, cfg.seed), rng, scene_db)
    return resample(torch.from_numpy(x), voices.SR, SR).numpy()


def write_clip(path: Path, mono: np.ndarray, channels: int) -> None:
    """AAC in mp4 at 48 kHz; in 5.1 the speech sits in the centre and the front-left is near silent."""
    if channels == 6:
        bed = 0.01 * mono
        arr = np.stack([bed, bed, mono, np.zeros_like(mono), bed, bed])
        layout = "5.1"
    else:
        arr = np.stack([mono, mono])
        layout = "stereo"
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=SR, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr, dtype=np.float32), format="fltp",
                                           layout=layout)
        frame.rate = SR
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)


def _timestamp(sec: float) -> str:
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{int(s):02d},{int(round((s % 1) * 1000)) % 1000:03d}"


def _mojibake(text: str, rng: np.random.Generator) -> str:
    """Damage text the way MELD's CSVs are damaged (cp1252 read as latin-1, C1 quotes)."""
    kind = rng.integers(3)
    if kind == 0:
        return text.replace("'", "\x92") if "'" in text else text + " caf\u00c3\u00a9"
    if kind == 1:
        return text.replace(" ", "\u00c2\u00a0", 1)
    return "\u201c" + text + "\u201d"


def _words(emotion: str, rng: np.random.Generator, mode: str) -> list[str]:
    """The word pool an utterance draws from: its emotion's, or (speech mode, often) a neutral or other one."""
    if mode == "tones":
        return WORDS[emotion]
    r = rng.random()
    if r < PLAIN_TEXT_P:
        return WORDS[emotion]
    if r < PLAIN_TEXT_P + OTHER_TEXT_P:
        return WORDS[EMOTIONS[rng.integers(len(EMOTIONS))]]
    return WORDS["neutral"]


def _meld_rows(split: str, n_dialogues: int, rng: np.random.Generator, source: Path) -> list[dict]:
    """`n_dialogues` real MELD dialogues (train and test: disjoint draws from MELD's train; dev: MELD's dev)."""
    frame = pd.read_csv(Path(source) / CSV_NAMES["dev" if split == "dev" else "train"], dtype=str,
                        keep_default_na=False, encoding="utf-8")
    frame = frame[frame.Emotion.isin(EMOTIONS)]
    ids = np.random.default_rng(0).permutation(sorted(frame.Dialogue_ID.astype(int).unique()))   # fixed split
    if split == "test":
        ids = ids[::-1]                                  # from the other end: never the train draws
    rows = []
    for d, source_id in enumerate(ids[:n_dialogues]):
        dialogue = frame[frame.Dialogue_ID.astype(int) == source_id]
        clock, scene_db = float(rng.uniform(10, 1200)), float(rng.normal(0, 2))
        for _, r in dialogue.sort_values("Utterance_ID", key=lambda c: c.astype(int)).iterrows():
            seconds = float(np.clip(0.25 * len(r.Utterance.split()) + rng.uniform(0.6, 1.4), 0.8, 3.5))
            rows.append({"Utterance": r.Utterance, "Speaker": r.Speaker, "Emotion": r.Emotion,
                         "Sentiment": r.Sentiment, "Dialogue_ID": d, "Utterance_ID": int(r.Utterance_ID),
                         "Season": 1 + d % 10, "Episode": 1 + d % 24, "start": clock, "seconds": seconds,
                         "channels": 6 if rng.random() < 0.6 else 2, "scene_db": scene_db})
            clock += seconds + float(rng.uniform(0.1, 1.0))
    return rows


def _rows(split: str, n_dialogues: int, rng: np.random.Generator, mode: str = "tones") -> list[dict]:
    rows = []
    for d in range(n_dialogues):
        clock = float(rng.uniform(10, 1200))
        scene_db = float(rng.normal(0, 2)) if mode == "speech" else 0.0
        emotion = None
        for u in range(int(rng.integers(3, 9))):
            if not (mode == "speech" and emotion is not None and rng.random() < PERSIST_P):
                emotion = EMOTIONS[rng.choice(len(EMOTIONS), p=EMOTION_P)]
            sentiment = SENTIMENT.get(emotion) or ("positive" if rng.random() < 0.5 else "negative")
            words = _words(emotion, rng, mode)
            text = TEMPLATES[rng.integers(len(TEMPLATES))].format(
                w=words[rng.integers(len(words))], w2=words[rng.integers(len(words))],
                n=SPEAKERS[rng.integers(6)])
            text = text[0].upper() + text[1:]
            if rng.random() < 0.15:
                text = _mojibake(text, rng)
            seconds = float(np.clip(0.25 * len(text.split()) + rng.uniform(0.6, 1.4), 0.8, 3.5))
            speaker = SPEAKERS[rng.integers(6)] if rng.random() < 0.9 else SPEAKERS[rng.integers(6, 9)]
            rows.append({"Utterance": text, "Speaker": speaker, "Emotion": emotion, "Sentiment": sentiment,
                         "Dialogue_ID": d, "Utterance_ID": u, "Season": 1 + d % 10, "Episode": 1 + d % 24,
                         "start": clock, "seconds": seconds, "channels": 6 if rng.random() < 0.6 else 2,
                         "scene_db": scene_db})
            clock += seconds + float(rng.uniform(0.1, 1.0))
    return rows


def synthesize(out: Path, cfg: SynthConfig) -> dict:
    """Write CSVs and clips under `out`; returns (and saves) the list of injected quirks."""
    rng = np.random.default_rng(cfg.seed)
    n_eval = max(2, round(cfg.dialogues * 0.15))
    counts = {"train": max(2, cfg.dialogues - 2 * n_eval), "dev": n_eval, "test": n_eval}
    truth: dict[str, list] = {"corrupt": [], "short": [], "final_videos": [], "missing": [], "extra": [],
                              "long": [], "channels": {"2": 0, "6": 0}}
    for split, n in counts.items():
        rows = _meld_rows(split, n, rng, cfg.text_from) if cfg.text_from else _rows(split, n, rng, cfg.mode)
        folder = out / CLIP_DIRS[split]
        # pick the quirky utterances of this split (index into rows, avoiding collisions)
        picks = rng.permutation(len(rows))
        quirk_of: dict[int, str] = {}
        plan = {"train": ["corrupt", "short", "short"], "dev": ["missing", "short"],
                "test": ["final_videos", "final_videos", "long"]}[split]
        for i, kind in zip(picks, plan):
            quirk_of[int(i)] = kind
        for i, r in enumerate(rows):
            key = [split, r["Dialogue_ID"], r["Utterance_ID"]]
            name = f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.mp4"
            kind = quirk_of.get(i)
            seconds = r["seconds"]
            if kind == "short":
                seconds = 0.084      # as MELD's broken 84 ms utterances
            if kind == "long":
                seconds = cfg.long_clip_s
            mono = clip_audio(r["Emotion"], seconds, rng, r["Speaker"], cfg, r["scene_db"])
            if kind == "short":      # a fragment of a clip, as MELD's broken ones are (speech mode adds room tone)
                mono = mono[: max(1, int(seconds * SR))]
            r["StartTime"], r["EndTime"] = _timestamp(r["start"]), _timestamp(r["start"] + seconds)
            truth["channels"][str(r["channels"])] += kind not in ("missing", "corrupt")
            if kind == "missing":
                truth["missing"].append(key)
                continue
            if kind == "corrupt":
                write_clip(folder / name, mono, r["channels"])
                data = (folder / name).read_bytes()
                (folder / name).write_bytes(data[: len(data) // 3][:64] + bytes(200))
                truth["corrupt"].append(key)
                continue
            if kind == "final_videos":
                other = [e for e in EMOTIONS if e != r["Emotion"]][int(rng.integers(6))]
                write_clip(folder / name, clip_audio(other, 0.5, rng, r["Speaker"], cfg), r["channels"])
                write_clip(folder / f"final_videos_test{name}", mono, r["channels"])
                truth["final_videos"].append(key)
                continue
            write_clip(folder / name, mono, r["channels"])
            if kind:
                truth[kind].append(key)
        # a clip with no CSV row: MELD has these; prepare must ignore them
        extra = folder / f"dia{n + 500}_utt0.mp4"
        write_clip(extra, clip_audio("neutral", 1.0, rng, SPEAKERS[0], cfg), 2)
        truth["extra"].append([split, n + 500, 0])
        frame = pd.DataFrame(rows)
        frame.insert(0, "Sr No.", range(1, len(frame) + 1))
        cols = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
                "Season", "Episode", "StartTime", "EndTime"]
        frame[cols].to_csv(out / CSV_NAMES[split], index=False, encoding="utf-8")
    (out / "synth_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth
