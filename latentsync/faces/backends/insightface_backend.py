"""insightface backend: SCRFD face finder + 106-point landmarks, the scheme the official 1.5/1.6 data pipeline used.

insightface is not a dependency: users install it (with onnxruntime or onnxruntime-gpu) and supply its model
pack. The pack is looked for before insightface is asked, because insightface would otherwise try to download it.
insightface's pretrained models are for non-commercial research use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentsync.runtime import pick_device

from ..landmarks import BackendUnavailableError, Face, check_frame, require

# The official pipeline's detector input size.
DETECT_SIZE = 512
# Faces the official detector passes over (so that the same face is chosen): boxes under 50 x 80 px, wider than 1.5
# or narrower than 0.2 times their height, or scored under 0.5.
MIN_BOX = (50, 80)
ASPECT_RANGE = (0.2, 1.5)
MIN_SCORE = 0.5


def usable(box: np.ndarray, score: float) -> bool:
    """Whether the official detector would consider this face (its box measured in whole pixels, as it does)."""
    x1, y1, x2, y2 = np.asarray(box).astype(np.int_).tolist()
    width, height = x2 - x1, y2 - y1
    if width < MIN_BOX[0] or height < MIN_BOX[1] or score < MIN_SCORE:
        return False
    return ASPECT_RANGE[0] <= width / height <= ASPECT_RANGE[1]


class InsightFaceDetector:
    """insightface faces with 106 landmarks.

    Options: `root` — folder holding ``models/<model>/*.onnx`` (the official layout is
    checkpoints/auxiliary/models/buffalo_l); `model` — the pack's name; `det_size` — the face finder's square input
    size. The frame goes to insightface unchanged, as RGB, exactly as the official pipeline passed its frames, so
    the landmarks match what the released checkpoints were trained on (insightface itself expects BGR).
    """

    name = "insightface"

    def __init__(
        self,
        device: str | None = None,
        *,
        root: str | Path = "checkpoints/auxiliary",
        model: str = "buffalo_l",
        det_size: int = DETECT_SIZE,
    ) -> None:
        model_dir = Path(root).expanduser() / "models" / model
        if not any(model_dir.glob("*.onnx")):
            raise BackendUnavailableError(
                f"insightface model folder {model_dir} is missing or holds no .onnx files; put the {model!r} pack "
                f"there (its detection and 2d106 landmark models), or pass root= the folder that holds models/{model}"
            )
        app_module = require("insightface.app", "pip install insightface onnxruntime-gpu (or onnxruntime)")
        device = str(pick_device(device))
        if device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            providers: list = [("CUDAExecutionProvider", {"device_id": index})]
            ctx_id = index
        else:
            providers, ctx_id = ["CPUExecutionProvider"], -1
        self._app = app_module.FaceAnalysis(
            name=model,
            root=str(Path(root).expanduser()),
            allowed_modules=["detection", "landmark_2d_106"],
            providers=providers,
        )
        self._app.prepare(ctx_id=ctx_id, det_size=(det_size, det_size))

    def detect(self, frame: np.ndarray) -> list[Face]:
        """The faces the official detector would choose among (see `usable`)."""
        frame = check_frame(frame)
        return [
            Face(box=face.bbox, landmarks=face.landmark_2d_106, score=face.det_score)
            for face in self._app.get(frame)
            if usable(face.bbox, float(face.det_score))
        ]
