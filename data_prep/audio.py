"""Audio preparation: PyAV decode -> one channel -> torchaudio resample -> log-mel frames.

Every number here is a field of AudioParams, recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio


@dataclass(frozen=True)
class AudioParams:
    sample_rate: int = 8000
    n_mels: int = 40
    win_length: int = 160          # 20 ms at 8 kHz
    hop_length: int = 80           # 10 ms at 8 kHz
    n_fft: int = 1024
    center: bool = True
    silence_value: float = -100.0  # replaces log(0) = -inf
    channel: str = "auto"          # "auto" (centre of 5.1, else first) or an index such as "0"
    max_frames: int = 3001         # 30 s at a 10 ms hop, plus the centred frame
    short_clip_s: float = 0.5      # clips shorter than this hold no usable speech: silence + blacklist

    def min_samples(self) -> int:
        """Fewest samples a centred (reflect-padded) STFT accepts."""
        return self.n_fft // 2 + 1 if self.center else self.n_fft


@dataclass
class Decoded:
    wave: np.ndarray      # (samples,) float32, the chosen channel
    sample_rate: int
    channels: int
    layout: str
    channel_used: int
    duration_s: float     # of the whole clip, even when decoding stopped early
    truncated: bool       # decoding stopped at the frame cap


class DecodeError(Exception):
    """The clip could not be decoded; the message says why."""


def _pick_channel(layout: av.AudioLayout, n: int, channel: str) -> int:
    if channel == "auto":
        names = [c.name for c in layout.channels]
        return names.index("FC") if "FC" in names and n > 2 else 0
    idx = int(channel)
    return idx if idx < n else 0


def decode_clip(path: Path, params: AudioParams) -> Decoded:
    """Decode the first audio stream of a clip, keeping one channel and stopping at the frame cap."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise DecodeError(f"cannot read ({e.strerror})") from None
    if len(head) < 12 or head[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        raise DecodeError("not an mp4 (no ISO media box at the start)")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise DecodeError("no audio stream")
            stream = container.streams.audio[0]
            sr = stream.rate or stream.codec_context.sample_rate
            layout = stream.layout
            n_ch = stream.channels
            ch = _pick_channel(layout, n_ch, params.channel)
            cap = int((params.max_frames - 1) * params.hop_length * sr / params.sample_rate) + sr // 10
            chunks, total, truncated = [], 0, False
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if not frame.format.is_planar:
                    arr = arr.reshape(-1, n_ch).T
                chunks.append(np.asarray(arr[ch], dtype=np.float32))
                total += chunks[-1].shape[0]
                if total > cap:
                    truncated = True
                    break
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = total / sr
            if not truncated:
                duration = total / sr
    except DecodeError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        reason = getattr(e, "strerror", None) or str(e).split(":")[0]
        raise DecodeError(f"{type(e).__name__}: {str(reason)[:120]}") from None
    wave = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Decoded(wave, int(sr), int(n_ch), layout.name, ch, duration, truncated)


@lru_cache(maxsize=8)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig, new)


@lru_cache(maxsize=8)
def _melspec(params: AudioParams) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=params.sample_rate, n_fft=params.n_fft, win_length=params.win_length,
        hop_length=params.hop_length, n_mels=params.n_mels, center=params.center, power=2.0)


def silence(params: AudioParams, frames: int = 1) -> np.ndarray:
    return np.full((frames, params.n_mels), params.silence_value, dtype=np.float32)


def logmel(wave: np.ndarray, sr: int, params: AudioParams) -> tuple[np.ndarray, bool]:
    """(frames, n_mels) float32 log-mel, capped at max_frames; returns (features, was_capped).

    A wave too short for one frame gives one frame of silence.
    """
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if sr != params.sample_rate and x.numel():
        x = _resampler(sr, params.sample_rate)(x)
    if x.numel() < params.min_samples():
        return silence(params), False
    with torch.no_grad():
        mel = _melspec(params)(x).log()
    mel = torch.nan_to_num(mel, neginf=params.silence_value).T.contiguous()
    capped = mel.shape[0] > params.max_frames
    return mel[: params.max_frames].numpy(), capped
