"""The lossy steps the official sync scorer puts frames through, repeated in-process so LSE matches published numbers.

The official evaluation (LatentSync's `eval/syncnet_detect.py` and `eval/syncnet/syncnet_eval.py`, after
joonson/syncnet_python) never hands decoded frames to the networks:

1. the input is re-encoded to 25 fps H.264 (`-qscale:v 2 -r 25`; libx264 ignores qscale, so x264's defaults apply);
2. every frame of that file is written as a JPEG with `-qscale:v 2` and read back with cv2 for S3FD and the crops;
3. the 224 px crops are written with cv2.VideoWriter ('mp4v': MPEG-4 part 2), the file the scorer then reads;
4. the scorer dumps that file's frames as JPEGs with ffmpeg's defaults - MJPEG rate control aiming at 200 kb/s, so
   the quality falls over the first second - and reads them with cv2.

The audio goes through AAC twice on the way: in the re-encode of step 1, and when each track's 16 kHz cut is muxed
into its crop video (the scorer reads that). Each step changes pixels (step 4 alone by 3.4 grey levels on average)
or samples (one AAC generation moves LSE-C by about 0.01), so each is repeated here with the same libavcodec
encoders through PyAV and with cv2, without ffmpeg processes. ffmpeg converts the decoded yuv420p to the
full range JPEG stores with swscale's integer formulas; those of ffmpeg 5.1 (which the published runs used) are
applied here, as newer swscale rounds chroma half a level differently. The default dump's rate control counts every
header byte, so the encoder is set up as ffmpeg sets it: one slice, the source's aspect ratio (a JFIF segment).
On the official scorer's crop clip this reproduces every frame the official run read, bit for bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from latentsync.errors import LatentSyncError

FPS = 25
MJPEG_DEFAULT_BIT_RATE = 200_000  # libavcodec's default bit rate: what ffmpeg's image2 output aims at without -q
DETECT_QSCALE = 2  # `-qscale:v 2` of the frame dump that S3FD and the crops read
CROP_FOURCC = "mp4v"


def _view(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A plane's pixels as a (height, width) uint8 view (its row padding cut off)."""
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The Y, U, V planes of a decoded frame as 8-bit 4:2:0 without row padding, turned upright as ffmpeg's
    autorotate does (other formats, e.g. 10-bit phone video, converted by the installed swscale first)."""
    from latentsync.media.probe import quarter_turns

    turns = quarter_turns(frame.rotation)  # read before reformat, which drops the display matrix
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    return [np.ascontiguousarray(np.rot90(_view(plane), turns)) for plane in frame.planes]


def _frame(planes: list[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    frame = av.VideoFrame(planes[0].shape[1], planes[0].shape[0], pix_fmt)
    for plane, values in zip(frame.planes, planes):
        _view(plane)[:] = values
    return frame


def full_range(frame: av.VideoFrame) -> av.VideoFrame:
    """The yuvj420p frame ffmpeg 5.1's swscale makes of a decoded frame before MJPEG encoding.

    15-bit intermediates, luma (min(x, 30189) * 19077 - 39057361) >> 14, chroma (min(x, 30775) * 4663 - 9289992)
    >> 12, rounded back to 8 bits without dithering. A frame already in the full range is kept as it is.
    """
    if frame.format.name == "yuvj420p":
        return _frame(_planes(frame), "yuvj420p")
    y, u, v = (p.astype(np.int64) << 7 for p in _planes(frame))
    y = (np.minimum(y, 30189) * 19077 - 39057361) >> 14
    u, v = ((np.minimum(c, 30775) * 4663 - 9289992) >> 12 for c in (u, v))
    return _frame([np.clip((c + 64) >> 7, 0, 255).astype(np.uint8) for c in (y, u, v)], "yuvj420p")


class JpegDump:
    """ffmpeg's `-f image2 %06d.jpg` on one video stream: one MJPEG encoder for all frames, so its rate control
    carries from frame to frame (`qscale=None`, ffmpeg's default) or every frame at a fixed quantiser (`-qscale:v`)."""

    def __init__(self, qscale: int | None = None, sample_aspect_ratio: Fraction | None = None) -> None:
        self.qscale = qscale
        self.sample_aspect_ratio = sample_aspect_ratio
        self.encoder: av.VideoCodecContext | None = None
        self.count = 0

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
        encoder.time_base, encoder.framerate = Fraction(1, FPS), Fraction(FPS)
        encoder.bit_rate = MJPEG_DEFAULT_BIT_RATE
        encoder.thread_count = 1  # one slice: several give other bit counts, hence another quantiser ramp
        if self.sample_aspect_ratio:  # ffmpeg passes the source's on, and it adds a JFIF segment the bit count sees
            encoder.sample_aspect_ratio = self.sample_aspect_ratio
        if self.qscale is not None:  # the rate control clamped to one quantiser is -qscale's fixed quantiser
            encoder.qmin = encoder.qmax = self.qscale
        return encoder

    def __call__(self, frame: av.VideoFrame) -> bytes:
        """The JPEG file ffmpeg writes for the next frame of the stream."""
        picture = full_range(frame)
        if self.encoder is None:
            self.encoder = self._open(picture.width, picture.height)
        picture.pts, picture.time_base = self.count, Fraction(1, FPS)
        self.count += 1
        packets = self.encoder.encode(picture)  # MJPEG has no delay: one packet per frame
        return b"".join(bytes(p) for p in packets)


def read_jpeg(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB as the official code reads its JPEGs (cv2.imread: libjpeg-turbo, BGR, turned to RGB)."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise LatentSyncError("a frame did not survive the JPEG round trip (the encoder gave no image)")
    return np.ascontiguousarray(image[..., ::-1])


def decoded_frames(path: str | Path, fps: int = FPS) -> Iterator[av.VideoFrame]:
    """The video's frames as decoded, retimed to `fps` as `ffmpeg -r` (and our VideoReader) does."""
    from latentsync.media.probe import open_video
    from latentsync.media.reader import nominal_frame_duration
    from latentsync.media.retime import retime, timed

    with open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        yield from retime(timed(container.decode(stream), nominal_frame_duration(stream, Fraction(fps))), Fraction(fps))


def jpeg_frames(path: str | Path, qscale: int | None = None) -> Iterator[np.ndarray]:
    """The RGB frames of a video after the official pipeline's JPEG dump of it and cv2's read-back."""
    from latentsync.media.probe import open_video

    with open_video(path) as (_, stream):
        aspect = stream.codec_context.sample_aspect_ratio
    dump = JpegDump(qscale, aspect)
    for frame in decoded_frames(path):
        yield read_jpeg(dump(frame))


def reencode(path: str | Path, out: Path) -> Path:
    """Step 1: the input as 25 fps H.264 with libx264's defaults (CRF 23, preset medium), video only."""
    with av.open(str(out), "w") as container:
        stream: av.VideoStream | None = None
        for index, frame in enumerate(decoded_frames(path)):
            pix_fmt = "yuvj420p" if frame.format.name == "yuvj420p" else "yuv420p"  # libx264 keeps the full range
            planes = _planes(frame)
            if stream is None:
                stream = container.add_stream("libx264", rate=FPS)
                stream.width, stream.height, stream.pix_fmt = planes[0].shape[1], planes[0].shape[0], pix_fmt
            picture = _frame(planes, pix_fmt)
            picture.pts, picture.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(picture))
        if stream is None:
            raise LatentSyncError(f"{path}: no video frames")
        container.mux(stream.encode(None))
    return out


def _encode_audio(frames: Iterable[av.AudioFrame], out: Path, rate: int, layout: str) -> Path:
    """AAC (libavcodec's own encoder at its default bit rate, as ffmpeg picks for .mp4 audio) of `frames` into `out`."""
    with av.open(str(out), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = layout
        for frame in frames:
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out


def reencode_audio(path: str | Path, out: Path) -> Path:
    """Step 1's audio: the input's first audio stream re-encoded to AAC at its own rate and channels."""
    from latentsync.audio import AudioError

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioError(f"{path}: no audio stream")
        frames = container.decode(container.streams.audio[0])
        first = next(frames, None)
        if first is None:
            raise AudioError(f"{path}: the audio stream contains no samples")
        return _encode_audio(_untimed(itertools.chain([first], frames)), out, first.sample_rate, first.layout.name)


def _untimed(frames: Iterable[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Frames stamped by their sample count (as ffmpeg's `-async 1` does for clean input), so the encoder's priming
    samples get negative timestamps and the muxer's edit list hides them from decoders."""
    count = 0
    for frame in frames:
        frame.pts, frame.time_base = count, Fraction(1, frame.sample_rate)
        count += frame.samples
        yield frame


def aac_round_trip(audio: np.ndarray, out: Path) -> np.ndarray:
    """16 kHz mono float audio after the AAC encode of a track's crop video and the scorer's decode of it."""
    from latentsync.audio import load_audio

    samples = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)[None]
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = 16000
    return load_audio(_encode_audio(_untimed([frame]), out, 16000, "mono"))


def write_crops(crops: Iterable[np.ndarray], out: Path) -> Path:
    """Step 3: 224 px RGB crops through cv2.VideoWriter('mp4v', 25 fps), as the official crop video is written."""
    import cv2

    writer = None
    try:
        for crop in crops:
            if writer is None:
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*CROP_FOURCC), FPS, crop.shape[1::-1])
                if not writer.isOpened():
                    raise LatentSyncError("OpenCV cannot write mp4v video here (opencv built without FFmpeg?)")
            writer.write(np.ascontiguousarray(crop[..., ::-1]))
    finally:
        if writer is not None:
            writer.release()
    return out
