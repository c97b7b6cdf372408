"""FVD and the image metrics on real face clips, with random weights in the official formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.evaluation import write_face_clips, write_i3d, write_inception, write_vgg16

from latentsync.cli import main
from latentsync.eval.fvd import frechet_distance


@pytest.fixture(scope="module")
def clips(tmp_path_factory, assets):
    root = tmp_path_factory.mktemp("clips")
    return write_face_clips(root / "real", assets), write_face_clips(root / "degraded", assets, degrade=True)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aux")
    write_i3d(folder / "i3d_torchscript.pt")
    write_vgg16(folder / "vgg16-397923af.pth")
    return folder


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # shifted mean by 2 in every dimension: |mu|^2 = 12; doubled std: Tr(1 + 4 - 2*2) = 3 per dimension
    assert frechet_distance(a, 2 * rng.normal(size=(4000, 3)) + 2) == pytest.approx(12 + 3, rel=0.08)


@pytest.mark.slow
def test_fvd_of_a_folder_against_itself_and_a_degraded_copy(clips, weights, capsys, caplog):
    real, degraded = clips
    args = ["--weights", str(weights), "--device", "cpu", "--json"]
    assert main(["eval", "fvd", str(real[0].parent), str(real[0].parent), *args]) == 0
    same = json.loads(capsys.readouterr().out)
    assert "below 30 clips" in caplog.text
    assert main(["eval", "fvd", str(real[0].parent), str(degraded[0].parent), *args, "--standard"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert (same["real"], same["fake"], same["failed"]) == (2, 2, 0)
    assert abs(same["fvd"]) < 1e-6 and other["fvd"] > 1e-3
    assert same["input_range"].startswith("[0, 1]") and other["input_range"].startswith("[-1, 1]")
    assert "not MediaPipe's" in same["face_crops"]  # the report says the crops are not the official kind


@pytest.mark.slow
def test_image_metrics_are_perfect_against_itself_and_worse_when_degraded(clips, weights, capsys):
    real, degraded = clips
    args = ["--weights", str(weights), "--device", "cpu", "--json", "--max-frames", "2"]
    assert main(["eval", "image", str(real[0]), str(real[0]), *args]) == 0
    same = json.loads(capsys.readouterr().out)["pairs"][0]
    assert main(["eval", "image", str(real[0]), str(degraded[0]), *args]) == 0
    worse = json.loads(capsys.readouterr().out)["pairs"][0]
    for region in ("face", "mouth"):
        assert same[region]["psnr"] is None and same[region]["ssim"] == pytest.approx(1, abs=1e-4)
        assert same[region]["lpips"] == pytest.approx(0, abs=1e-5)
        assert worse[region]["psnr"] < 35 and worse[region]["ssim"] < 0.95 and worse[region]["lpips"] > 1e-4
    assert same["frames"] == 2


@pytest.mark.slow
def test_fid_with_a_local_inception_file_is_zero_against_itself_and_larger_when_degraded(
    clips, weights, tmp_path, capsys
):
    real, degraded = clips
    inception = write_inception(tmp_path / "weights-inception-2015-12-05-6726825d.pth")
    args = ["--weights", str(weights), "--device", "cpu", "--json", "--max-frames", "2", "--inception", str(inception)]
    assert main(["eval", "image", str(real[0]), str(real[0]), *args]) == 0
    same = json.loads(capsys.readouterr().out)["mean"]
    assert main(["eval", "image", str(real[0]), str(degraded[0]), *args]) == 0
    worse = json.loads(capsys.readouterr().out)["mean"]
    for region in ("face", "mouth"):  # from 2-3 frames the covariances are near singular: ~0 within rounding
        assert abs(same[region]["fid"]) < 0.05 and worse[region]["fid"] > 20 * max(abs(same[region]["fid"]), 0.01)


def test_a_missing_inception_file_is_named_with_where_to_get_it(clips, weights, tmp_path, capsys):
    real, _ = clips
    missing = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    code = main(["eval", "image", str(real[0]), str(real[0]), "--weights", str(weights), "--inception", str(missing)])
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and "torch-fidelity/releases" in err and "--inception" in err
