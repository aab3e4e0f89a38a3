"""Log-mel features: frame counts, silence, short clips, caps, channel choice, decode errors."""

import numpy as np
import pytest

from data_prep.audio import AudioParams, DecodeError, decode_clip, logmel
from data_prep.synth import voice, write_clip

P = AudioParams()


def test_one_second_at_8k_gives_101_frames():
    wave = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    feats, capped = logmel(wave, 8000, P)
    assert feats.shape == (101, 40) and feats.dtype == np.float32 and not capped
    assert np.isfinite(feats).all() and feats.max() > -20


def test_one_second_at_48k_is_resampled_to_the_same_frames():
    t = np.arange(48000) / 48000
    feats, _ = logmel((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 48000, P)
    assert feats.shape == (101, 40)
    # a 300 Hz tone lights up a low mel band, not the top one
    assert feats[50].argmax() < 10


def test_digital_silence_becomes_the_silence_constant():
    feats, _ = logmel(np.zeros(8000, np.float32), 8000, P)
    assert feats.shape == (101, 40) and (feats == -100.0).all()


@pytest.mark.parametrize("n", [0, 1, 100, 512])
def test_too_short_for_a_frame_gives_one_silent_frame(n):
    feats, _ = logmel(np.ones(n, np.float32) * 0.1, 8000, P)
    assert feats.shape == (1, 40) and (feats == -100.0).all()


def test_shortest_clip_with_a_frame():
    feats, _ = logmel(np.ones(513, np.float32) * 0.1, 8000, P)
    assert feats.shape == (1 + 513 // 80, 40)


def test_frames_are_capped():
    params = AudioParams(max_frames=50)
    feats, capped = logmel(np.random.default_rng(1).standard_normal(8000).astype(np.float32), 8000, params)
    assert feats.shape == (50, 40) and capped


def _clip(tmp_path, channels, seconds=1.0):
    path = tmp_path / f"c{channels}.mp4"
    write_clip(path, voice("anger", seconds, np.random.default_rng(0), 1.0), channels)
    return path


def test_channel_auto_takes_the_centre_of_5_1(tmp_path):
    path = _clip(tmp_path, 6)
    auto = decode_clip(path, P)
    left = decode_clip(path, AudioParams(channel="0"))
    assert (auto.channels, auto.layout, auto.channel_used, left.channel_used) == (6, "5.1", 2, 0)
    assert auto.sample_rate == 48000 and abs(auto.duration_s - 1.0) < 0.05
    # speech is in the centre; the front-left holds a faint bed only
    assert np.abs(auto.wave).max() > 20 * np.abs(left.wave).max()


def test_channel_auto_takes_the_first_of_stereo(tmp_path):
    dec = decode_clip(_clip(tmp_path, 2), P)
    assert (dec.channels, dec.layout, dec.channel_used) == (2, "stereo", 0)
    assert dec.wave.ndim == 1 and np.abs(dec.wave).max() > 0.1


def test_decode_stops_at_the_cap(tmp_path):
    path = _clip(tmp_path, 2, seconds=6.0)
    dec = decode_clip(path, AudioParams(max_frames=101))
    assert dec.truncated and dec.wave.shape[0] < 2 * 48000 and dec.duration_s > 5.9
    feats, capped = logmel(dec.wave, dec.sample_rate, AudioParams(max_frames=101))
    assert feats.shape == (101, 40) and capped


@pytest.mark.parametrize("content, reason", [
    (b"this is a text file, not a video\n" * 4, "not an mp4"),
    (b"\x00\x00\x00\x18ftypmp42" + bytes(300), "Error"),
    (b"", "not an mp4"),
])
def test_undecodable_clips_raise_decode_error(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=reason):
        decode_clip(path, P)


def test_mel_power_matches_torchaudio_melspectrogram():
    import torch
    import torchaudio

    from data_prep.audio import mel_power

    x = torch.from_numpy(np.random.default_rng(2).standard_normal(12345).astype(np.float32))
    ref = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_fft=1024, win_length=160, hop_length=80,
                                               n_mels=40, center=True, power=2.0)(x).T
    torch.testing.assert_close(mel_power(x, P), ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("orig, new, n", [(48000, 8000, 96001), (44100, 8000, 44100), (16000, 8000, 1000),
                                          (48000, 8000, 7)])
def test_resample_matches_torchaudio(orig, new, n):
    import torch
    import torchaudio

    from data_prep.audio import resample

    x = torch.from_numpy(np.random.default_rng(n).standard_normal(n).astype(np.float32))
    torch.testing.assert_close(resample(x, orig, new), torchaudio.functional.resample(x, orig, new),
                               rtol=1e-4, atol=1e-5)


def test_integer_pcm_codecs_decode_to_float(tmp_path):
    """ALAC decodes to planar integers, not AAC's planar float: the other branch of decode_clip."""
    import av

    sr = 48000
    x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)
    path = tmp_path / "alac.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("alac", rate=sr, layout="stereo")
        stream.format = "s16p"
        frame = av.AudioFrame.from_ndarray((np.stack([x, x]) * 32767).astype(np.int16), format="s16p",
                                           layout="stereo")
        frame.rate = sr
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    dec = decode_clip(path, P)
    assert dec.wave.dtype == np.float32 and dec.wave.shape == (sr,)
    assert abs(float(np.abs(dec.wave).max()) - 0.3) < 0.01
    feats, _ = logmel(dec.wave, dec.sample_rate, P)
    assert feats.shape == (101, 40)
