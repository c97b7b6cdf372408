"""H.264 + AAC writing in one pass, frame by frame, published atomically."""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import threading
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from latentsync.constants import MODEL_SAMPLE_RATE, VIDEO_FPS

from .errors import MediaError

# Containers that can put their index first so players start before the download ends.
_FASTSTART_SUFFIXES = {".mp4", ".m4v", ".mov"}
# Frames `write` may run ahead of the encoder thread (1080p: 6 MB each); when the queue is full, `write` waits.
QUEUE_FRAMES = 8


class VideoWriter:
    """Encode RGB frames to H.264 (libx264, yuv420p, BT.709 tagged) with optional AAC audio.

    Use as a context manager and call `write` once per (height, width, 3) uint8 RGB frame. Everything
    goes to a temporary file beside `path`, which replaces `path` only when the block exits cleanly
    (and at least one frame was written); on any exception the temporary file is deleted, so `path`
    is never half-written.

    Odd sizes: yuv420p needs even dimensions, so an odd width or height loses its last column or
    row (`encoded_size` gives the stored size). `audio` is mono (n,) or channels-first (c, n)
    float samples in [-1, 1] at `sample_rate`; it is encoded while the frames arrive (audio up to the
    end of each frame), and whatever is left after the last frame is written in full at exit, so
    trim or pad it to the video's length beforehand (see `SyncPlan.fit_audio`). PyAV buffers
    the samples into the AAC encoder's fixed 1024-sample frames itself.

    The default preset favours speed: x264 `veryfast` encodes 1080p about twice as fast as
    `medium` (ffmpeg's default), for a somewhat larger file at the same crf.

    Encoding runs in a background thread, so that the caller's next frame is prepared while this
    one is converted and compressed (both release the GIL): `write` copies the frame and queues it,
    up to QUEUE_FRAMES ahead. An encoding error is raised by the next `write`, or at the block's
    exit, which waits for every queued frame.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float | Fraction = VIDEO_FPS,
        audio: np.ndarray | None = None,
        sample_rate: int = MODEL_SAMPLE_RATE,
        crf: int = 18,
        preset: str = "veryfast",
        audio_bitrate: int = 96_000,
        keyint: int | None = None,
    ) -> None:
        if width < 2 or height < 2:
            raise MediaError(f"{path}: frame size {width}x{height} is too small to encode")
        if audio is not None:
            audio = _as_channels_first(audio, path)
        self.path = Path(path)
        self.width, self.height = width, height
        self.encoded_size = (width - width % 2, height - height % 2)
        self.fps = Fraction(fps)
        self.audio = audio
        self.sample_rate = sample_rate
        self.crf, self.preset, self.audio_bitrate = crf, preset, audio_bitrate
        self.keyint = keyint  # a keyframe exactly every `keyint` frames (None: x264's own choice)
        self.frames_written = 0  # frames accepted by `write`
        self._encoded = 0  # frames the encoder thread has encoded
        self._audio_written = 0
        self._container: av.container.OutputContainer | None = None
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(QUEUE_FRAMES)
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None  # the encoder thread's failure, raised in the caller's thread
        self._abandoned = False  # set on a failed exit: the thread drops what is still queued

    def __enter__(self) -> VideoWriter:
        if not self.path.parent.is_dir():
            raise MediaError(f"{self.path}: parent directory does not exist")
        # A hidden sibling (same file system, so the final rename is atomic) with the same suffix, so
        # the muxer is chosen as for `path`; created by the muxer itself, so it gets the usual permissions.
        self._temp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(6)}.partial{self.path.suffix}")
        try:
            self._open()
        except (ValueError, av.error.FFmpegError) as error:  # e.g. "Could not determine output format"
            self._discard()
            raise MediaError(f"{self.path}: cannot write this kind of file ({error})") from error
        except BaseException:
            self._discard()
            raise
        self._worker = threading.Thread(target=self._encode_queued, name=f"encode {self.path.name}", daemon=True)
        self._worker.start()
        return self

    def write(self, frame: np.ndarray) -> None:
        """Queue one RGB frame (a copy: the caller may reuse its array) for encoding with the audio during it."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write called outside its `with` block")
        self._raise_encoder_error()
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise MediaError(
                f"{self.path}: frame {self.frames_written} is {frame.dtype} {frame.shape}, "
                f"expected uint8 {(self.height, self.width, 3)}"
            )
        width, height = self.encoded_size
        self._queue.put(np.array(frame[:height, :width], order="C"))
        self.frames_written += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        published = False
        try:
            if exc_type is None:
                self._stop_worker()
                self._finish()
                os.replace(self._temp, self.path)
                published = True
        finally:
            if not published:
                self._abandoned = True
                self._stop_worker()
                with contextlib.suppress(av.error.FFmpegError):
                    self._output.close()
                self._discard()
            self._container = None

    @property
    def _output(self) -> av.container.OutputContainer:
        """The container, open from `__enter__` until `__exit__` (only used in between)."""
        assert self._container is not None
        return self._container

    def _open(self) -> None:
        options: dict[str, str] = {"movflags": "+faststart"} if self.path.suffix.lower() in _FASTSTART_SUFFIXES else {}
        self._container = av.open(str(self._temp), "w", format=None if self.path.suffix else "mp4", options=options)
        video = self._container.add_stream("libx264", rate=self.fps)
        video.width, video.height = self.encoded_size
        video.pix_fmt = "yuv420p"
        codec_options: dict[str, object] = {"crf": str(self.crf), "preset": self.preset}
        if self.keyint is not None:
            codec_options["x264-params"] = f"keyint={self.keyint}:min-keyint={self.keyint}:scenecut=0"
        video.options = codec_options
        context = video.codec_context
        context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
        context.color_range = 1  # limited ("tv") range
        self._video = video
        if self.audio is not None:
            layout = "mono" if self.audio.shape[0] == 1 else "stereo"
            self._audio = self._container.add_stream("aac", rate=self.sample_rate, layout=layout)
            self._audio.bit_rate = self.audio_bitrate
        # Opens the codecs and the file now, so that their errors surface here and not in the encoder thread.
        self._container.start_encoding()

    def _encode_queued(self) -> None:
        """The encoder thread: encode queued frames until the None that ends the queue.

        After a failure (or when abandoned) it keeps taking frames off the queue without encoding
        them, so that a `write` waiting for room never blocks for good.
        """
        while (rgb := self._queue.get()) is not None:
            if self._error is None and not self._abandoned:
                try:
                    self._encode(rgb)
                except BaseException as error:  # handed to the caller's thread
                    self._error = error

    def _encode(self, rgb: np.ndarray) -> None:
        """Encode one frame, then the audio that plays during it."""
        yuv = av.VideoFrame.from_numpy_buffer(rgb, format="rgb24").reformat(
            format="yuv420p", dst_colorspace="itu709", dst_color_range="MPEG"
        )
        yuv.pts = self._encoded
        self._output.mux(self._video.encode(yuv))
        self._encoded += 1
        if self.audio is not None:
            self._write_audio(self._encoded * self.sample_rate // self.fps)

    def _stop_worker(self) -> None:
        """End the encoder thread once it has emptied the queue, and wait for it."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def _raise_encoder_error(self) -> None:
        if self._error is not None:
            if isinstance(self._error, av.error.FFmpegError):
                raise MediaError(f"{self.path}: encoding failed ({self._error})") from self._error
            raise self._error

    def _finish(self) -> None:
        """Flush both encoders (audio after its remaining samples) and write the trailer."""
        self._raise_encoder_error()
        if self.frames_written == 0:
            raise MediaError(f"{self.path}: no frames were written")
        self._output.mux(self._video.encode(None))
        if self.audio is not None:
            self._write_audio(self.audio.shape[1])
            self._output.mux(self._audio.encode(None))
        self._output.close()

    def _write_audio(self, until: int) -> None:
        """Encode the audio samples from the last position up to sample `until`."""
        assert self.audio is not None  # only called when there is audio
        samples = self.audio[:, self._audio_written : until]
        if samples.shape[1] == 0:
            return
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768.0
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self._audio.layout.name)
        chunk.sample_rate = self.sample_rate
        chunk.pts = self._audio_written
        chunk.time_base = Fraction(1, self.sample_rate)
        self._output.mux(self._audio.encode(chunk))
        self._audio_written += samples.shape[1]

    def _discard(self) -> None:
        self._temp.unlink(missing_ok=True)


def _as_channels_first(audio: np.ndarray, path: str | Path) -> np.ndarray:
    """Validate the audio and shape it (channels, samples): float32, or int16 (half the memory for long audio,
    converted a chunk at a time as it is encoded)."""
    if audio.dtype != np.int16 and not np.issubdtype(audio.dtype, np.floating):
        raise MediaError(f"{path}: audio must be float samples in [-1, 1] or int16, got {audio.dtype}")
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise MediaError(f"{path}: audio must be (samples,) or (1 or 2 channels, samples), got {audio.shape}")
    return audio if audio.dtype == np.int16 else audio.astype(np.float32, copy=False)
