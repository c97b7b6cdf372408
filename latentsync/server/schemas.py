"""Request and response shapes of the API (they also make the OpenAPI page at /docs).

The job defaults are the project's one set of inference defaults (`config.defaults.INFERENCE`), so the page, the
schema, a bare `POST` and `latentsync infer` agree.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from latentsync.config.defaults import INFERENCE as JOB_DEFAULTS
from latentsync.media.sync import SyncMode
from latentsync.server.jobs import Status

# The hosted models whose submit endpoints this server answers; all of them run the loaded LatentSync model.
MODELS = {
    "bytedance/latentsync": "ByteDance LatentSync",
    "bytedance/lipsync/audio-to-video": "ByteDance LipSync, audio to video",
    "sync/lipsync-1.9.0-beta": "sync. lipsync 1.9.0 beta",
    "sync/lipsync-3": "sync. lipsync-3",
}


class LipsyncRequest(BaseModel):
    """The hosted APIs' fields, plus this server's own knobs (optional on every endpoint).

    Strict: `"steps": "3"` or `"steps": true` is refused rather than guessed at.
    """

    model_config = ConfigDict(strict=True, populate_by_name=True, extra="ignore")

    video: str = Field(description="http(s) URL of the video, or a download_url from the upload endpoint")
    audio: str = Field(description="http(s) URL of the speech (any audio, or a video's sound), or an upload URL")
    sync_mode: SyncMode = Field(
        JOB_DEFAULTS.sync_mode,  # type: ignore[arg-type]
        description="when the lengths differ: cut_off, loop, bounce, silence or remap",
    )
    steps: int = Field(JOB_DEFAULTS.steps, ge=1, le=100, description="DDIM steps")
    guidance_scale: float = Field(JOB_DEFAULTS.guidance_scale, ge=1.0, le=10.0, description="audio guidance; 1: off")
    seed: int = Field(JOB_DEFAULTS.seed, ge=0, le=2**63 - 1, description="the same seed gives the same output")
    face_index: int | None = Field(None, ge=-16, le=15, description="which face, counted left to right (0: leftmost)")
    face_at: list[float] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[x, y] in the video's pixels: the face there is lip-synced (see POST /api/v3/faces)",
    )
    active_speaker: bool = Field(
        False,
        description="several faces: lip-sync the one speaking in the video's own audio (not with face_index/face_at)",
    )
    webhook_url: str | None = Field(
        None,
        alias="webhookUrl",
        description="http(s) URL that gets the result envelope as a POST when the job ends (signed, see README)",
    )


class FacesRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    video: str = Field(description="the video's http(s) URL or upload download_url")


class Urls(BaseModel):
    get: str


class Timings(BaseModel):
    inference: int = Field(description="milliseconds the lip sync took (0 until completed)")


class Prediction(BaseModel):
    id: str
    model: str
    outputs: list[str] = Field(description="the result video's signed URL once completed (works without the key)")
    urls: Urls
    has_nsfw_contents: list[bool] = Field(description="always empty: this server runs no content filter")
    status: Status
    created_at: str
    error: str
    timings: Timings
    progress: float = Field(description="0 to 1; 1 when completed")
    jobs_ahead: int = Field(description="jobs that run before this waiting one (0 unless created)")


class PredictionResponse(BaseModel):
    code: int = 200
    message: str = "success"
    data: Prediction


class Upload(BaseModel):
    type: str = Field(description="video, audio, image or file")
    download_url: str = Field(description="pass it as `video` or `audio` of a job")
    filename: str
    size: int


class UploadResponse(BaseModel):
    code: int = 200
    message: str = "success"
    data: Upload


class FaceBox(BaseModel):
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in the video's pixels")
    center: tuple[float, float] = Field(description="a point to pass as `face_at` to choose this face")


class Faces(BaseModel):
    width: int
    height: int
    faces: list[FaceBox] = Field(description="the faces found in the first frame that has any, left to right")
    frame: int = Field(description="index of that frame")
    image: str = Field(description="that frame as a data: URL (JPEG, at most 640 px wide) to draw the boxes on")


class FacesResponse(BaseModel):
    code: int = 200
    message: str = "success"
    data: Faces


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class DeletedResponse(BaseModel):
    code: int = 200
    message: str = "success"
    data: Deleted


class ErrorResponse(BaseModel):
    code: int
    message: str
    data: None = None


ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 413, 507)
}
