"""face-alignment backend: the FAN network (68 iBUG points) behind the S3FD face finder, for GPU users.

Its weights are not packaged: face_alignment downloads them on first use into TORCH_HOME's hub/checkpoints folder.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch.hub

from latentsync.runtime import pick_device

from ..landmarks import BackendUnavailableError, Face, check_frame, require

INSTALL_HINT = "pip install face-alignment"


def weight_files(face_detector: str = "sfd") -> list[Path]:
    """Where face_alignment keeps (or will download) the 2-D FAN weights and, for "sfd", the face finder's."""
    api = require("face_alignment.api", INSTALL_HINT)
    urls = [api.models_urls["2DFAN-4"]]
    if face_detector == "sfd":
        urls.append(require("face_alignment.detection.sfd.sfd_detector", INSTALL_HINT).models_urls["s3fd"])
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / os.path.basename(url) for url in urls]


class FaceAlignmentDetector:
    """face_alignment faces with 68 landmarks.

    Options: `allow_download` — when False, fail at once if the weights are not on disk instead of fetching them;
    any other keyword goes to `face_alignment.FaceAlignment` (e.g. `face_detector`, `flip_input`, `dtype`;
    `compile` defaults to False here because compiling costs minutes on first use).
    """

    name = "face-alignment"

    def __init__(self, device: str | None = None, *, allow_download: bool = True, **fa_options) -> None:
        fa = require("face_alignment", INSTALL_HINT)
        fa_options.setdefault("compile", False)
        missing = [str(f) for f in weight_files(fa_options.get("face_detector", "sfd")) if not f.is_file()]
        if missing and not allow_download:
            raise BackendUnavailableError(
                f"face-alignment weights not found: {', '.join(missing)}. They download on first use; allow it, or "
                "copy the files there (TORCH_HOME sets the folder)."
            )
        try:
            self._fa = fa.FaceAlignment(fa.LandmarksType.TWO_D, device=str(pick_device(device)), **fa_options)
        except OSError as exc:
            if not missing:
                raise
            raise BackendUnavailableError(
                f"face-alignment could not fetch its weights ({', '.join(missing)}): {exc}. Run it once with network "
                "access, or copy the files there (TORCH_HOME sets the folder)."
            ) from exc

    def detect(self, frame: np.ndarray) -> list[Face]:
        frame = check_frame(frame)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            landmarks, _, boxes = self._fa.get_landmarks_from_image(frame, return_bboxes=True)
        if landmarks is None:
            return []
        # face_alignment boxes are (x1, y1, x2, y2, score) rows.
        return [Face(box=box[:4], landmarks=points[:, :2], score=box[4]) for points, box in zip(landmarks, boxes)]
