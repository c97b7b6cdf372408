"""Projected GPU memory of lip-sync inference with the full-size models in fp16, measured on a machine without a GPU.

The real code runs under torch's FakeTensorMode on device "cuda": tensors carry shapes, dtypes and devices but no
data, so nothing is computed and nothing is allocated. A TorchDispatchMode (`CudaMemory`) sees every op's outputs and
counts the bytes of live CUDA storages (rounded up to the caching allocator's 512-byte blocks), from the op that
creates a storage until its last tensor dies: the figure `torch.cuda.memory_allocated()` would show, and its peak
`max_memory_allocated()`. (torch's own `torch.distributed._tools.mem_tracker.MemTracker` does not fit inference: it
installs gradient hooks on every parameter, which fails on frozen ones, and refuses a top-level module called twice,
as the VAE's encoder is once per batch.)

What runs, per version (1.5: crops 256, latents 32x32; 1.6: crops 512, latents 64x64) and mode:

- the models placed as `LipsyncPipeline.from_pretrained` places them: the U-Net of the bundled stage-2 config in
  fp16 on the GPU; the sd-vae-ft-mse VAE (built from `SD_VAE_CONFIG`) in fp16 on the GPU, or on the CPU with
  `--low-vram`; the Whisper-tiny encoder (fp32 weights, fp16 compute) on the GPU, or on the CPU with `--low-vram`.
  Weights are random (no checkpoint is read; a random Whisper-tiny encoder file is written to a temporary folder
  because `AudioEncoder` only loads from a file);
- the audio features of one 16-frame chunk through the real `AudioEncoder.stream(...).frame_chunks` (one 30 s
  Whisper window);
- one chunk of 16 frames through the real `ChunkDenoiser` with classifier-free guidance (the U-Net sees batch
  (2, 13, 16, h, w) and audio (32, 50, 384)), one denoising step (later steps hold nothing more), VAE
  encode/decode in batches of `vae_batch` frames, the VAE moved to the GPU around them with `--low-vram`.

Reported, in GiB: `resident` (what stays on the GPU between chunks: weights and the shared initial noise), and the
peak of live CUDA tensor bytes during the Whisper window, the VAE encodes of the chunk, one U-Net forward, the VAE
decode, and over the whole chunk.

Three parts of the real code cannot run unchanged on fake tensors; they are handled so:

- attention: on a device-less fake tensor `F.scaled_dot_product_attention` can only take the math path, which
  materialises the (queries x keys) score matrix: 8 GiB for one 1.6 U-Net self-attention layer. On a GPU in fp16,
  diffusers' SDPA processor gets a fused kernel (flash, or the memory-efficient one where flash does not apply, as
  on pre-Ampere cards or the VAE's 512-wide head) that never holds it. The benchmark therefore routes every SDPA
  call to the memory-efficient kernel's own op (`aten._scaled_dot_product_efficient_attention`, which has a fake
  implementation): only its output is allocated, the size of flash's. `--attention math` leaves SDPA alone, to
  show what the score matrices would cost (the VAE columns do not move: its one attention layer runs where the
  activations are small). Whisper's attention is its non-fused one in both cases, as on a GPU.
- `Module.to()` on a model whose parameters are fake tensors swaps the tensors in place, which torch refuses while
  anything holds a weak reference to them; the fake mode's memo of freshly made fake tensors does. The benchmark
  clears that memo before each swap (`_fake_modules_movable`), so the real `--low-vram` offloading runs.
- DDIM indexes its noise table with the timestep, and a fake tensor has no value to index with. The benchmark's
  scheduler (`HostTimesteps`) is the bundled DDIM with its timesteps kept as Python ints; the latents it makes are
  the same size.

NOT counted (add them when comparing with a card's memory; the verdict column adds a rough margin for them,
`peak * 1.10 + 0.75 GiB`):
- the CUDA context and the kernels of torch, cuDNN and cuBLAS: ~0.3-0.5 GB, outside torch's allocator;
- the caching allocator's overhead: memory reserved but not allocated (cached blocks, fragmentation, the 2 MiB /
  20 MiB segment rounding), typically 5-20% of the peak;
- workspaces that kernels take for themselves during a call (cuDNN convolution algorithms, cuBLAS), tens to a few
  hundred MB;
- a GPU face detector (the default dlib one runs on the CPU), other programs on the card, and the display.

Run: python benchmarks/vram.py [--versions 1.5 1.6] [--modes default low-vram] [--vae-batch 1 2 4 8 16]
     [--vae-tiling] [--attention fused|math]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler
from diffusers.utils import logging as diffusers_logging
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary
from whisper.model import AudioEncoder as WhisperEncoder
from whisper.model import ModelDimensions

from latentsync.audio import SAMPLE_RATE, AudioEncoder
from latentsync.config import bundled_config, load_config, to_dict
from latentsync.diffusion import load_scheduler
from latentsync.hub import VERSIONS, get_version
from latentsync.models import UNet3DConditionModel
from latentsync.models.vae import SD_VAE_CONFIG
from latentsync.pipelines.diffusion import ChunkDenoiser, DiffusionSettings
from latentsync.testing.whisper import write_whisper_checkpoint

GIB = 2**30
ALLOCATOR_BLOCK = 512  # the CUDA caching allocator rounds every allocation up to a multiple of this
DTYPE = torch.float16
CHUNK_FRAMES = 16  # LipsyncOptions.batch_frames
FPS = 25
WHISPER_TINY = ModelDimensions(
    n_mels=80,
    n_audio_ctx=1500,
    n_audio_state=384,
    n_audio_head=6,
    n_audio_layer=4,
    n_vocab=51865,
    n_text_ctx=448,
    n_text_state=384,
    n_text_head=6,
    n_text_layer=4,
)
TARGET_GIB = {"1.5": 8, "1.6": 12}  # the card sizes each version must run on with --low-vram
MARGIN_FACTOR, MARGIN_GIB = 1.10, 0.75  # allocator overhead; CUDA context + kernel workspaces (rough)
PHASES = ("whisper", "encode", "unet", "decode")


class CudaMemory(TorchDispatchMode):
    """Live bytes of CUDA tensor storages (as `torch.cuda.memory_allocated` counts them) and their peaks.

    A storage counts from the op that creates it until its last tensor dies (a weakref finalizer on the storage);
    views share their base's storage and add nothing. `phase(name)` keeps the peak of a named stretch of the run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.phases: dict[str, int] = {}
        self._running: dict[str, int] = {}
        self._sizes: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cuda":
                self._hold(t.untyped_storage())
        self.peak = max(self.peak, self.live)
        for name, peak in self._running.items():
            self._running[name] = max(peak, self.live)
        return out

    def _hold(self, storage: torch.UntypedStorage) -> None:
        if storage in self._sizes:
            return
        size = -(-storage.nbytes() // ALLOCATOR_BLOCK) * ALLOCATOR_BLOCK
        self._sizes[storage] = size
        self.live += size
        weakref.finalize(storage, self._release, size)

    def _release(self, size: int) -> None:
        self.live -= size

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record the peak from here to the end of the block (the maximum over repeated visits)."""
        self._running[name] = self.live
        try:
            yield
        finally:
            peak = self._running.pop(name)
            self.phases[name] = max(self.phases.get(name, 0), peak)

    def watch(self, owner: object, method: str, name: str) -> None:
        """Make every call of `owner.method` a phase `name` (an instance attribute shadows the method)."""
        inner = getattr(owner, method)

        @wraps(inner)
        def watched(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return inner(*args, **kwargs)

        setattr(owner, method, watched)


class HostTimesteps(DDIMScheduler):
    """The bundled DDIM schedule with its timesteps as Python ints.

    DDIM indexes its noise table with the timestep, and a fake tensor has no value to index with; on a GPU that
    lookup is a scalar, and the latents it produces are the same size either way.
    """

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        with unset_fake_temporarily():
            super().set_timesteps(num_inference_steps)
        self.timesteps = self.timesteps.tolist()


class FusedAttention:
    """`F.scaled_dot_product_attention` as the memory-efficient CUDA kernel runs it: the output, no score matrix.

    It stands in for `F.scaled_dot_product_attention` during a run; `calls` counts the attention calls it served.
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> torch.Tensor:
        if enable_gqa:
            raise NotImplementedError("grouped-query attention is not used by these models")
        self.calls += 1
        op = torch.ops.aten._scaled_dot_product_efficient_attention
        return op(query, key, value, attn_mask, False, dropout_p, is_causal, scale=scale)[0]


@contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def _fake_modules_movable(fake_mode: FakeTensorMode) -> Iterator[None]:
    """Let `Module.to()` move models whose parameters are fake tensors (see the module docstring)."""
    swap = torch.utils.swap_tensors

    def swap_without_memo(t1: torch.Tensor, t2: torch.Tensor) -> None:
        fake_mode.fake_tensor_converter.meta_converter.tensor_memo.clear()
        swap(t1, t2)

    with _patched(torch.utils, "swap_tensors", swap_without_memo):
        yield


@dataclass
class Projection:
    version: str
    low_vram: bool
    vae_batch: int
    vae_tiling: bool
    resident: int
    phases: dict[str, int]
    peak: int
    unet_inputs: list[tuple[int, ...]]  # shapes of the U-Net's sample and audio, as the denoiser passed them
    fused_attention_calls: int
    seconds: float

    @property
    def mode(self) -> str:
        return "low-vram" if self.low_vram else "default"

    @property
    def with_margin(self) -> float:
        """Rough whole-card need in GiB: the tensor peak plus what is not counted."""
        return self.peak / GIB * MARGIN_FACTOR + MARGIN_GIB


def write_whisper_tiny(folder: Path) -> Path:
    """A random Whisper-tiny encoder in the openai-whisper file format (`AudioEncoder` reads only `encoder.*`)."""
    d = WHISPER_TINY
    encoder = WhisperEncoder(d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    return write_whisper_checkpoint(folder / "tiny.pt", dataclasses.asdict(d), state)


def project(
    version: str, low_vram: bool, vae_batch: int, vae_tiling: bool, fused_attention: bool, whisper_path: Path
) -> Projection:
    """Place the full-size models as the pipeline does and lip-sync one chunk, all on fake CUDA tensors."""
    release = get_version(version)
    config = load_config(bundled_config(release.unet_config))
    with torch.device("meta"):  # built without memory; moving them under the fake mode makes fake tensors
        unet = UNet3DConditionModel.from_config(to_dict(config.model)).requires_grad_(False).eval()
        vae = AutoencoderKL.from_config(SD_VAE_CONFIG).requires_grad_(False).eval()
    if vae_tiling:
        vae.enable_tiling()
    offload = "cpu" if low_vram else "cuda"

    started = time.perf_counter()
    memory = CudaMemory()
    attention = FusedAttention()
    with ExitStack() as stack:
        fake_mode = stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
        stack.enter_context(memory)
        stack.enter_context(_fake_modules_movable(fake_mode))
        if fused_attention:
            stack.enter_context(_patched(F, "scaled_dot_product_attention", attention))
        stack.enter_context(torch.no_grad())

        unet.to("cuda", DTYPE)
        vae.to(offload, DTYPE)
        audio_encoder = AudioEncoder(whisper_path, device=offload)
        scheduler = HostTimesteps.from_config(load_scheduler().config)
        denoiser = ChunkDenoiser(
            unet, vae, scheduler, DiffusionSettings(num_inference_steps=1, vae_batch=vae_batch), offload_vae=low_vram
        )
        generator = torch.Generator().manual_seed(0)
        noise = denoiser.initial_noise(release.resolution, generator)  # on the GPU for the whole video
        resident = memory.live

        memory.watch(audio_encoder, "encode_window", "whisper")
        memory.watch(denoiser, "_encode", "encode")
        memory.watch(unet, "forward", "unet")
        memory.watch(denoiser, "_decode", "decode")
        unet_inputs: list[tuple[int, ...]] = []
        unet.register_forward_pre_hook(lambda _, args: unet_inputs.extend(tuple(args[i].shape) for i in (0, 2)))

        with unset_fake_temporarily():  # the log-mel is CPU work on real samples
            speech = np.zeros(CHUNK_FRAMES * SAMPLE_RATE // FPS, dtype=np.float32)
            features = audio_encoder.stream(speech)
        embeds = features.frame_chunks(fps=FPS, start=0, count=CHUNK_FRAMES)
        size = release.resolution
        faces = torch.zeros(CHUNK_FRAMES, 3, size, size)
        mask = torch.ones(1, 1, size, size)
        denoiser(faces, mask, embeds, noise, generator)

    seconds = time.perf_counter() - started
    return Projection(
        version,
        low_vram,
        vae_batch,
        vae_tiling,
        resident,
        memory.phases,
        memory.peak,
        unet_inputs,
        attention.calls,
        seconds,
    )


def describe(row: Projection) -> str:
    sample, audio = row.unet_inputs
    return (
        f"LatentSync {row.version}: crops {get_version(row.version).resolution} px; per denoising step the U-Net "
        f"gets sample {sample} and audio {audio}; fp16; target {TARGET_GIB[row.version]} GiB with --low-vram"
    )


def table(rows: list[Projection]) -> str:
    head = (
        f"{'mode':<9} {'vae_batch':>9} {'tiling':>6} {'resident':>8} {'whisper':>8} {'encode':>8} "
        f"{'unet':>8} {'decode':>8} {'PEAK':>8} {'+margin':>8} {'target':>6} {'verdict':<7} {'sdpa':>5}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        target = TARGET_GIB[r.version]
        phases = " ".join(f"{r.phases.get(p, 0) / GIB:8.2f}" for p in PHASES)
        verdict = "fits" if r.with_margin <= target else "MISSES"
        lines.append(
            f"{r.mode:<9} {r.vae_batch:>9} {'yes' if r.vae_tiling else 'no':>6} {r.resident / GIB:8.2f} {phases} "
            f"{r.peak / GIB:8.2f} {r.with_margin:8.2f} {target:>6} {verdict:<7} {r.fused_attention_calls:>5}"
        )
    return "\n".join(lines)


NOT_COUNTED = f"""\
GiB (2**30 bytes) of live CUDA tensors, as torch.cuda.max_memory_allocated() would report them; resident = weights
and the initial noise kept between chunks; whisper/encode/unet/decode/PEAK = the highest total while that stage runs
(resident weights included), PEAK over the whole chunk. Not counted: the CUDA context and kernels (~0.3-0.5 GB),
the caching allocator's reserve and fragmentation (~5-20%), cuDNN/cuBLAS workspaces (tens to hundreds of MB), a GPU
face detector, the display. +margin = PEAK * {MARGIN_FACTOR:.2f} + {MARGIN_GIB} GiB, a rough whole-card need;
verdict compares it with the version's target card (nominal GiB; cards report a little less). sdpa = attention
calls served by the fused-kernel stand-in (0 with --attention math). With --low-vram Whisper runs on the CPU: its
column then shows only what is resident."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=sorted(VERSIONS), choices=sorted(VERSIONS))
    parser.add_argument("--modes", nargs="+", default=["default", "low-vram"], choices=["default", "low-vram"])
    parser.add_argument("--vae-batch", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--vae-tiling", action="store_true", help="also measure with vae.enable_tiling()")
    parser.add_argument(
        "--attention",
        choices=["fused", "math"],
        default="fused",
        help="fused: SDPA as a GPU runs it in fp16 (default); math: materialise the score matrices",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    diffusers_logging.set_verbosity_error()  # casting the built VAE with .to() warns; from_pretrained would not

    print(f"torch {torch.__version__}, fake CUDA tensors (no GPU needed), SDPA: {args.attention}\n")
    with tempfile.TemporaryDirectory() as tmp:
        whisper_path = write_whisper_tiny(Path(tmp))
        for version in args.versions:
            rows = []
            for mode in args.modes:
                for tiling in [False, True] if args.vae_tiling else [False]:
                    for vae_batch in args.vae_batch:
                        rows.append(
                            project(
                                version, mode == "low-vram", vae_batch, tiling, args.attention == "fused", whisper_path
                            )
                        )
            print(describe(rows[0]))
            print(table(rows))
            print(f"({sum(r.seconds for r in rows):.0f} s)\n")
    print(NOT_COUNTED)


if __name__ == "__main__":
    main()
