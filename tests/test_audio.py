"""Audio decoding and Whisper features: parity with the official goldens, formats, errors, frame rules, long audio."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from whisper.audio import log_mel_spectrogram
from whisper.model import AudioEncoder as WhisperAudioEncoder

from latentsync.audio import (
    AudioEncoder,
    AudioError,
    AudioFeatureStream,
    frame_chunks,
    load_audio,
    log_mel,
    num_video_frames,
    plan_windows,
    training_window,
)
from latentsync.models.loading import CheckpointError
from latentsync.testing import write_whisper_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-4


# ---------------------------------------------------------------- helpers and fixtures


def _random_narrow_checkpoint(path: Path, seed: int = 0, n_audio_ctx: int = 1500) -> Path:
    """A 64-wide, 2-block whisper encoder with variance-preserving random weights: cheap on long audio.

    A smaller `n_audio_ctx` shortens its windows (2 * n_audio_ctx mel frames), giving many windows cheaply.
    """
    dims = dict(
        n_mels=80,
        n_audio_ctx=n_audio_ctx,
        n_audio_state=64,
        n_audio_head=4,
        n_audio_layer=2,
        n_vocab=8,
        n_text_ctx=8,
        n_text_state=64,
        n_text_head=4,
        n_text_layer=1,
    )
    model = WhisperAudioEncoder(80, n_audio_ctx, 64, 4, 2)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            else:
                p.copy_(1 + 0.1 * noise if name.endswith("weight") else 0.1 * noise)
    return write_whisper_checkpoint(path, dims, {f"encoder.{k}": v for k, v in model.state_dict().items()})


def _encode_audio(src: Path, dest: Path, codec: str, with_video: bool = False) -> Path:
    """Re-encode `src` as mono 44.1 kHz `codec` into `dest` (container from the suffix), optionally beside a video."""
    with av.open(str(src)) as inp, av.open(str(dest), "w") as out:
        stream = out.add_stream(codec, rate=44100, layout="mono")
        stream.bit_rate = 192_000
        if with_video:
            video = out.add_stream("mpeg4", rate=25)
            video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
            for i in range(25):
                frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 10 * i, np.uint8), format="rgb24")
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=44100)
        fifo = av.AudioFifo()
        for frame in [*inp.decode(audio=0), None]:
            for resampled in resampler.resample(frame):
                resampled.pts = None
                fifo.write(resampled)
        for frame in [*fifo.read_many(stream.frame_size or 1024, partial=True), None]:
            out.mux(stream.encode(frame))
    return dest


@pytest.fixture(scope="module")
def golden(golden_dir: Path) -> dict:
    return torch.load(golden_dir / "audio_features_demo1.pt", weights_only=True)


@pytest.fixture(scope="module")
def tiny_checkpoint(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = torch.load(golden_dir / "whisper_tiny_random_encoder.pt", weights_only=True)
    path = tmp_path_factory.mktemp("whisper") / "tiny.pt"
    return write_whisper_checkpoint(path, ref["dims"], ref["encoder_state_dict"])


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint: Path) -> AudioEncoder:
    return AudioEncoder(tiny_checkpoint)


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> AudioEncoder:
    return AudioEncoder(_random_narrow_checkpoint(tmp_path_factory.mktemp("whisper") / "narrow.pt"))


@pytest.fixture(scope="module")
def short_windows(tmp_path_factory: pytest.TempPathFactory) -> AudioEncoder:
    """The narrow encoder with 3 s windows."""
    return AudioEncoder(_random_narrow_checkpoint(tmp_path_factory.mktemp("whisper") / "short.pt", n_audio_ctx=150))


@pytest.fixture(scope="module")
def demo1_features(tiny: AudioEncoder, assets: Path) -> torch.Tensor:
    return tiny.features(assets / "demo1_audio.wav")


# ---------------------------------------------------------------- decoding


def test_wav_at_16k_decodes_to_the_int16_samples_bitwise(assets: Path) -> None:
    with wave.open(str(assets / "demo1_audio.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        expected = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    audio = load_audio(assets / "demo1_audio.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1
    np.testing.assert_array_equal(audio, expected)


def test_video_audio_track_is_decoded_to_16k_mono(assets: Path) -> None:
    with av.open(str(assets / "demo1_video.mp4")) as c:
        track = c.streams.audio[0]
        seconds = float(track.duration * track.time_base)
        assert (track.rate, track.layout.name) == (44100, "stereo")
    audio = load_audio(assets / "demo1_video.mp4")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - seconds * 16000) < 160  # within 10 ms of the track's duration
    rms = np.sqrt(np.mean(audio**2))
    assert 0.01 < rms < 0.5 and np.abs(audio).max() <= 1.0  # speech, not silence or clipping garbage


def _lag_and_similarity(audio: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """The delay of `audio` behind `reference` in samples, and their normalised correlation at that delay."""
    size = 1 << int(np.ceil(np.log2(len(audio) + len(reference))))
    corr = np.fft.irfft(np.fft.rfft(audio, size) * np.conj(np.fft.rfft(reference, size)), size)
    peak = int(np.argmax(corr))
    lag = peak if peak < size // 2 else peak - size
    return lag, float(corr[peak] / (np.linalg.norm(audio) * np.linalg.norm(reference)))


@pytest.mark.parametrize(
    ("suffix", "codec", "with_video", "lag"),
    [
        ("m4a", "aac", False, 0),
        ("mp3", "libmp3lame", False, 0),
        ("mp4", "aac", True, 0),
        # raw ADTS records no encoder delay, so (as with the ffmpeg CLI) the 1024 priming samples stay
        ("aac", "aac", False, round(1024 * 16000 / 44100)),
    ],
)
def test_compressed_copies_decode_to_the_wav_samples(
    assets: Path, tmp_path: Path, suffix: str, codec: str, with_video: bool, lag: int
) -> None:
    wav = assets / "demo1_audio.wav"
    reference = load_audio(wav)
    audio = load_audio(_encode_audio(wav, tmp_path / f"demo1.{suffix}", codec, with_video))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0 <= len(audio) - len(reference) - lag <= 1152  # codec padding is under one codec frame
    found_lag, similarity = _lag_and_similarity(audio, reference)
    assert found_lag == lag and similarity > 0.98
    if lag == 0:  # same samples, aligned, up to lossy coding (~1-3 % at 192 kb/s)
        err = audio[: len(reference)] - reference
        assert np.sqrt(np.mean(err**2)) < 0.05 * np.sqrt(np.mean(reference**2))


def test_decoding_at_another_rate(assets: Path) -> None:
    audio = load_audio(assets / "demo1_audio.wav", sample_rate=8000)
    assert abs(len(audio) - 9.6 * 8000) <= 64


def test_missing_file_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="nope.wav.*not found"):
        load_audio(path)


def test_non_media_file_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 50)
    with pytest.raises(AudioError, match="notes.wav.*not a readable media file"):
        load_audio(path)


def test_file_without_audio_stream_is_an_audio_error(assets: Path) -> None:
    with pytest.raises(AudioError, match=r"mask.png.*no audio stream.*video"):
        load_audio(assets / "mask.png")


def test_empty_audio_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    with pytest.raises(AudioError, match="empty.wav.*no samples"):
        load_audio(path)
    assert issubclass(AudioError, ValueError)


# ---------------------------------------------------------------- encoder and official parity
@pytest.mark.parity
def test_features_match_the_official_golden(demo1_features: torch.Tensor, golden: dict, tiny: AudioEncoder) -> None:
    assert (tiny.width, tiny.num_layers) == (384, 5)
    assert demo1_features.dtype == torch.float32 and demo1_features.device.type == "cpu"
    assert demo1_features.shape == golden["feature"].shape == (480, 5, 384)
    assert (demo1_features - golden["feature"]).abs().max() <= TOL


@pytest.mark.parity
def test_frame_chunks_and_training_window_match_the_official_golden(
    demo1_features: torch.Tensor, golden: dict, tiny: AudioEncoder, assets: Path
) -> None:
    chunks = tiny.frame_chunks(demo1_features, fps=25)
    assert chunks.shape == (golden["num_chunks"], 50, 384) == (242, 50, 384)
    assert (chunks[:4] - golden["chunks_first4"]).abs().max() <= TOL
    assert (chunks[-4:] - golden["chunks_last4"]).abs().max() <= TOL
    window = tiny.training_window(demo1_features, 0)
    assert window.shape == (16, 50, 384)
    assert (window - golden["train_window_start0"]).abs().max() <= TOL
    stream = tiny.stream(assets / "demo1_audio.wav")
    assert stream.num_frames(25) == 242 and torch.equal(stream.frame_chunks(fps=25), chunks)


def test_waveform_input_equals_path_input(narrow: AudioEncoder, assets: Path) -> None:
    path = assets / "demo1_audio.wav"
    from_path = narrow.features(path)
    samples = load_audio(path)
    assert from_path.shape == (len(samples) // 320, 3, 64)
    assert torch.equal(narrow.features(samples), from_path)
    assert torch.equal(narrow.features(torch.from_numpy(samples).double()), from_path)


def test_bad_waveforms_are_audio_errors(tiny: AudioEncoder) -> None:
    with pytest.raises(AudioError, match="too short"):
        tiny.features(np.zeros(319, np.float32))
    with pytest.raises(AudioError, match="1-D float"):
        tiny.features(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="official.*overlap"):
        tiny.features(np.zeros(16000, np.float32), windows="sliding")


def test_checkpoint_decoder_keys_are_ignored_and_missing_encoder_keys_raise(golden_dir: Path, tmp_path: Path) -> None:
    ref = torch.load(golden_dir / "whisper_tiny_random_encoder.pt", weights_only=True)
    with_decoder = dict(ref["encoder_state_dict"], **{"decoder.ln.weight": torch.ones(384)})
    enc = AudioEncoder(write_whisper_checkpoint(tmp_path / "full.pt", ref["dims"], with_decoder))
    assert torch.equal(enc.encoder.blocks[3].mlp[2].bias, ref["encoder_state_dict"]["encoder.blocks.3.mlp.2.bias"])

    partial = {k: v for k, v in ref["encoder_state_dict"].items() if "blocks.3.mlp" not in k}
    with pytest.raises(CheckpointError, match=r"missing.*blocks\.3\.mlp"):
        AudioEncoder(write_whisper_checkpoint(tmp_path / "partial.pt", ref["dims"], partial))

    torch.save({"state_dict": ref["encoder_state_dict"]}, tmp_path / "unet_like.pt")
    with pytest.raises(CheckpointError, match="not an openai-whisper checkpoint"):
        AudioEncoder(tmp_path / "unet_like.pt")
    with pytest.raises(CheckpointError, match="not found"):
        AudioEncoder(tmp_path / "absent.pt")


# ---------------------------------------------------------------- frames per video fps


def _official_frame_count(num_rows: int, fps: float) -> int:
    """The official loop, literally: emit a frame, stop after the first frame starting past the end."""
    count, i = 0, 0
    while True:
        start = int(i * (50.0 / fps))
        count, i = count + 1, i + 1
        if start > num_rows:
            return count


@pytest.mark.parametrize("fps", [25, 30, 24, 29.97, 50, 60, 12.5])
def test_frame_count_follows_the_official_loop(fps: float) -> None:
    for num_rows in [1, 2, 3, 7, 479, 480, 481, 1000, 1499, 1500, 12345]:
        assert num_video_frames(num_rows, fps) == _official_frame_count(num_rows, fps)


def test_frame_count_examples() -> None:
    assert num_video_frames(480, 25) == 242  # 9.6 s: N // 2 + 2
    assert num_video_frames(480, 30) == 290  # frame 289 is the first starting past row 480


def test_chunks_at_30_fps_take_ten_rows_around_each_frame() -> None:
    rows, layers = 480, 5
    features = torch.arange(rows, dtype=torch.float32)[:, None, None].expand(rows, layers, 8).contiguous()
    chunks = frame_chunks(features, fps=30)
    assert chunks.shape == (290, 10 * layers, 8)
    row_of_token = chunks[:, ::layers, 0]  # time-major: tokens layers*t .. layers*t + layers-1 are row t
    assert row_of_token[7].tolist() == list(range(7, 17))  # centre int(7 * 50 / 30) = 11, rows 11-4 .. 11+5
    assert row_of_token[0].tolist() == [0] * 5 + [1, 2, 3, 4, 5]  # clamped at the start
    assert row_of_token[-1].tolist() == [477, 478] + [479] * 8  # frame 289: centre 481, clamped at the end
    assert torch.equal(chunks[7].reshape(10, layers, 8), features[7:17])


def test_training_window_is_sixteen_consecutive_frames_at_25_fps(demo1_features: torch.Tensor) -> None:
    chunks = frame_chunks(demo1_features, fps=25)
    assert torch.equal(training_window(demo1_features, 100), chunks[100:116])
    tail = training_window(demo1_features, 235)  # runs past the official frames: clamps to the last row
    assert tail.shape == (16, 50, 384)
    assert torch.equal(tail[-1], demo1_features[-1].repeat(10, 1))


# ---------------------------------------------------------------- long audio: official vs overlapping windows


@pytest.mark.parametrize("num_mel_frames", [2, 3, 2999, 3000, 3001, 3002, 4000, 6001, 9000, 20000, 90001])
def test_window_plans_weigh_every_row_to_one(num_mel_frames: int) -> None:
    num_rows = num_mel_frames // 2
    for mode in ("official", "overlap"):
        plan = plan_windows(num_mel_frames, 3000, mode)
        total = torch.zeros(num_rows)
        for w in plan:
            assert w.start % 2 == 0 and w.start // 2 <= w.row_lo < w.row_hi <= w.start // 2 + 1500
            weights = w.weights()
            assert weights.shape == (w.row_hi - w.row_lo,) and weights.min() > 0 and weights.max() <= 1
            total[w.row_lo : w.row_hi] += weights
        assert torch.allclose(total, torch.ones(num_rows), atol=1e-6)
        assert all(a.row_hi - b.row_lo == a.fade_out == b.fade_in for a, b in zip(plan, plan[1:]))
    overlap = plan_windows(num_mel_frames, 3000, "overlap")
    if num_mel_frames <= 3000:
        assert overlap == plan_windows(num_mel_frames, 3000, "official")
        return
    assert all(w.start + 3000 <= num_mel_frames for w in overlap)  # full windows inside the clip
    for a, b in zip(overlap, overlap[1:]):
        assert a.row_hi - b.row_lo == 250  # a 5 s cross-fade...
        assert b.row_lo - b.start // 2 >= 125 and a.start // 2 + 1500 - a.row_hi >= 125  # ...2.5 s inside both windows
        rise = b.weights()[: b.fade_in]
        assert (rise.diff() > 0).all() and torch.allclose(rise, 1 - a.weights()[-a.fade_out :], atol=1e-6)
        switch = b.row_lo + 125  # the first row where the second window weighs more
        assert (rise[:125] < 0.5).all() and (rise[125:] > 0.5).all()
        assert switch - b.start // 2 >= 250 and a.start // 2 + 1500 - switch >= 250  # with 5 s of context there


def test_overlap_mode_equals_official_mode_up_to_30_s(
    tiny: AudioEncoder, demo1_features: torch.Tensor, assets: Path
) -> None:
    assert torch.equal(tiny.features(assets / "demo1_audio.wav", windows="overlap"), demo1_features)


def test_overlap_mode_is_as_smooth_across_window_switches_as_anywhere(narrow: AudioEncoder, assets: Path) -> None:
    audio = np.concatenate([load_audio(assets / "demo2_audio.wav"), load_audio(assets / "demo3_audio.wav")])
    assert len(audio) > 35 * 16000  # 38.4 s of speech
    official = narrow.features(audio)
    overlap = narrow.features(audio, windows="overlap")
    assert official.shape == overlap.shape == (len(audio) // 320, 3, 64)

    def steps(f: torch.Tensor) -> torch.Tensor:
        return (f[1:] - f[:-1]).flatten(1).norm(dim=1)  # steps[r - 1]: change from row r - 1 to row r

    typical = steps(official).median()
    assert steps(official)[1499] > 3 * typical  # the official restart at row 1500 (30 s) is a jump
    assert steps(overlap).max() < 1.5 * steps(overlap).median()  # no row-to-row step stands out, switch or not

    first, second = plan_windows(len(audio) // 160, 3000, "overlap")
    mel = log_mel_spectrogram(torch.from_numpy(audio), n_mels=80)
    window_a = official[:1500]  # the first window's rows are the official ones
    window_b = narrow._hidden_states(mel[None, :, second.start : second.start + 3000])[0]  # rows from start // 2
    fade = torch.arange(second.row_lo, first.row_hi)
    a, b, mixed = window_a[fade].flatten(1), window_b[fade - second.start // 2].flatten(1), overlap[fade].flatten(1)
    weight_b = ((mixed - a) * (b - a)).sum(1) / ((b - a) ** 2).sum(1)
    on_segment = a + weight_b[:, None] * (b - a)
    assert (mixed - on_segment).abs().max() < 1e-5  # each fade row is a mix of the two windows' rows...
    assert (weight_b.diff() > 0).all() and weight_b[0] < 0.01 and weight_b[-1] > 0.99  # ...crossing over smoothly
    assert torch.equal(overlap[: fade[0]], official[: fade[0]])  # before the fade: the first window alone
    assert torch.equal(overlap[fade[-1] + 1 :], window_b[fade[-1] + 1 - second.start // 2 :])  # after: the second


# ---------------------------------------------------------------- streaming: bounded memory, the same numbers


@pytest.fixture(scope="module")
def long_audio(assets: Path) -> np.ndarray:
    """67.8 s of speech: three encoder windows in both modes, the last one partial in official mode."""
    audio = np.concatenate([load_audio(assets / f"demo{i}_audio.wav") for i in (2, 3, 1, 2)])
    assert len(audio) // 160 > 6000
    return audio


def test_log_mel_equals_whispers_bitwise_while_transforming_30_s_at_a_time(
    long_audio: np.ndarray, assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stft_lengths: list[int] = []
    stft = torch.stft

    def recording_stft(samples: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        stft_lengths.append(len(samples))
        return stft(samples, *args, **kwargs)

    for audio in (long_audio, long_audio[: 16000 * 30 + 1234], load_audio(assets / "demo1_audio.wav")):
        samples = torch.from_numpy(audio)
        expected = log_mel_spectrogram(samples, n_mels=80)
        monkeypatch.setattr(torch, "stft", recording_stft)
        mel = log_mel(samples)
        monkeypatch.setattr(torch, "stft", stft)
        assert mel.shape == expected.shape == (80, len(audio) // 160)
        assert torch.equal(mel, expected)
    assert max(stft_lengths) <= (3000 + 4) * 160  # 30 s and the samples its edge frames read


def _record_encodes(stream: AudioFeatureStream, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """For each window `stream` encodes from now on, how many windows it held at that moment."""
    held: list[int] = []
    encode = stream.encoder.encode_window

    def recording_encode(mel: torch.Tensor) -> torch.Tensor:
        held.append(len(stream.cached_windows))
        return encode(mel)

    monkeypatch.setattr(stream.encoder, "encode_window", recording_encode)
    return held


@pytest.mark.parametrize("mode", ["official", "overlap"])
def test_stream_read_in_order_gives_the_eager_chunks_encoding_each_window_once(
    narrow: AudioEncoder, long_audio: np.ndarray, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager = narrow.features(long_audio, windows=mode)
    stream = narrow.stream(long_audio, windows=mode)
    held = _record_encodes(stream, monkeypatch)
    assert len(stream) == len(eager) and len(stream.plan) == 3
    assert stream.num_frames(25) == num_video_frames(len(eager), 25) == len(frame_chunks(eager, 25))
    for start in range(0, stream.num_frames(25), 16):  # as the pipeline reads
        count = min(16, stream.num_frames(25) - start)
        assert torch.equal(stream.frame_chunks(fps=25, start=start, count=count), frame_chunks(eager, 25, start, count))
        assert len(stream.cached_windows) <= 2
    assert held == [0, 1, 1]  # three windows, each encoded once; the first is dropped before the third is encoded


@pytest.mark.parametrize("mode", ["official", "overlap"])
def test_stream_read_in_any_order_gives_the_eager_rows_holding_at_most_two_windows(
    short_windows: AudioEncoder, long_audio: np.ndarray, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager = short_windows.features(long_audio, windows=mode)
    stream = short_windows.stream(long_audio, windows=mode)
    held = _record_encodes(stream, monkeypatch)
    assert len(stream.plan) > 20 and len(stream) == len(eager)  # 3 s windows
    rng = np.random.default_rng(0)
    edges = {r for w in stream.plan[1::3] for r in (w.row_lo, w.row_lo + w.fade_in)}  # switches, cross-fade ends
    requests = [("frames", 30.0, r * 30 // 50 - 3, 8) for r in sorted(edges)]
    requests += [
        ("frames", float(rng.choice([25, 30, 29.97])), int(rng.integers(0, 2000)), int(rng.integers(0, 40)))
        for _ in range(12)
    ]
    requests += [
        ("rows", 0.0, lo, int(rng.integers(lo, min(lo + 300, len(eager)) + 1))) for lo in rng.integers(0, len(eager), 6)
    ]
    for i in rng.permutation(len(requests)):
        kind, fps, a, b = requests[i]
        if kind == "rows":
            assert torch.equal(stream.rows(a, b), eager[a:b])
        else:
            assert torch.equal(stream.frame_chunks(fps, a, b), frame_chunks(eager, fps, a, b))
    assert torch.equal(stream.frame_chunks(30, start=1990), frame_chunks(eager, 30, start=1990))  # to the last frame
    assert len(held) > len(stream.plan) and max(held) <= 1 and len(stream.cached_windows) == 2
    with pytest.raises(ValueError, match="outside the 3392 feature rows"):
        stream.rows(0, len(eager) + 1)
