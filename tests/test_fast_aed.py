"""Fast-AED: adversarial distillation, end-to-end run on the generated scene, determinism, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vadistill import metrics
from vadistill.data.clips import clip_indices
from vadistill.data.synthetic import render_scene
from vadistill.methods import METHODS
from vadistill.methods.aed_mae import clips_to_input
from vadistill.methods.fast_aed import (FastAed, FastAedConfig, FastAedStudent, MapDiscriminator, discriminator_loss,
                                        distillation_loss, generator_loss)
from vadistill.teachers import SCALES, AeTeacherConfig, KnnTeacherConfig

torch.set_num_threads(1)


def tiny_config(**changes) -> FastAedConfig:
    base = dict(channels=(8, 16, 32), depth=1, num_heads=2, epochs=3, batch_size=16, pseudo_count=48,
                pretrain_epochs=1, knn=KnnTeacherConfig(pca_dim=16), ae=AeTeacherConfig(epochs=2, widths=(8, 16, 16)))
    base.update(changes)
    return FastAedConfig(**base)


def random_maps(B: int, n: int, generator: torch.Generator, sparse: bool) -> dict[int, torch.Tensor]:
    """Teacher-like maps (sparse boxes of high values) or blurry student-like maps."""
    m16 = torch.rand(B, n, 16, 16, generator=generator)
    m16 = (m16 > 0.9).float() * 2 * m16 if sparse else 0.3 + 0.05 * m16
    return {16: m16, 4: torch.nn.functional.adaptive_max_pool2d(m16, 4), 1: m16.amax(dim=(2, 3), keepdim=True)}


def test_student_outputs_three_scales_per_teacher():
    net = FastAedStudent(tiny_config(), num_teachers=2)
    out = net(torch.randn(2, 9, 128, 192))
    assert {s: tuple(m.shape) for s, m in out.items()} == {1: (2, 2, 1, 1), 4: (2, 2, 4, 4), 16: (2, 2, 16, 16)}


def test_small_input_keeps_the_16x16_head_and_bad_sizes_are_refused():
    # 64x96 gives an 8x12 token grid: the 16x16 head is upsampled from it (the committed Ped2 student)
    net = FastAedStudent(tiny_config(input_size=(64, 96)), num_teachers=1)
    out = net(torch.randn(3, 9, 64, 96))
    assert {s: tuple(m.shape) for s, m in out.items()} == {1: (3, 1, 1, 1), 4: (3, 1, 4, 4), 16: (3, 1, 16, 16)}
    for size in ((60, 96), (24, 96)):  # not a multiple of 8; a grid under 4 cells for the 4x4 head
        with pytest.raises(ValueError, match="input_size"):
            tiny_config(input_size=size)


def test_discriminator_learns_from_fakes_and_never_updates_the_student():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    disc = MapDiscriminator()
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.999))
    fake_losses = []
    for _ in range(30):
        real = random_maps(16, 1, gen, sparse=True)
        fake = {s: m.requires_grad_(True) for s, m in random_maps(16, 1, gen, sparse=False).items()}
        loss_real, loss_fake = discriminator_loss(disc, real, fake)
        opt.zero_grad()
        (loss_real + loss_fake).backward()
        opt.step()
        assert all(m.grad is None for m in fake.values())  # the student's maps are detached at D's input
        fake_losses.append(loss_fake.item())
    assert np.mean(fake_losses[-5:]) < 0.5 * np.mean(fake_losses[:5])
    # The fake term alone carries gradients to D (the authors' detach of D's OUTPUT would leave none).
    _, loss_fake = discriminator_loss(disc, real, fake)
    disc.zero_grad()
    loss_fake.backward()
    assert sum(p.grad.abs().sum() for p in disc.parameters()) > 0


def test_generator_loss_reaches_the_student_through_the_discriminator():
    net = FastAedStudent(tiny_config(), num_teachers=1)
    disc = MapDiscriminator().requires_grad_(False)
    pred = net(torch.randn(2, 9, 128, 192))
    generator_loss(disc, pred).backward()
    assert net.encoder[0][0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())


def test_distillation_loss_sums_scales_and_teachers():
    pred = {s: torch.zeros(2, 2, s, s) for s in SCALES}
    target = {s: torch.ones(2, 2, s, s) for s in SCALES}
    assert distillation_loss(pred, target).item() == pytest.approx(6.0)  # 3 scales x 2 teachers x MSE 1


@pytest.fixture(scope="module")
def scene():
    train = [render_scene(100, seed=s).frames for s in (1, 2)]
    test = render_scene(100, cart_frames=(35, 70), seed=99)
    return train, test


@pytest.fixture(scope="module")
def fitted(scene, tmp_path_factory):
    train, _ = scene
    folder = tmp_path_factory.mktemp("fast_aed")
    method = FastAed(tiny_config()).fit(train, run_dir=folder / "run", progress=False, teacher_dir=folder / "teachers")
    return method, folder


def test_end_to_end_cart_frames_score_above_clean_frames(scene, fitted):
    _, test = scene
    method, _ = fitted
    scores = method.anomaly_scores(test.frames)
    assert scores.shape == (100,)
    assert metrics.micro_auc({"t": scores}, {"t": test.labels}) > 0.8
    maps = method.anomaly_maps(test.frames)
    assert maps.shape == (100, 144, 240) and maps.dtype == np.float32
    assert method.threshold_ is not None and set(method.score_stats_) == {"mean", "std"}
    assert any("d_fake" in h["train"] for h in method.history_)  # the adversarial stage ran


def test_teacher_maps_are_cached_and_resumable(scene, fitted):
    _, test = scene
    method, folder = fitted
    first = method.teacher_maps(test.frames, folder / "teachers", key="test")
    assert (folder / "teachers" / "knn" / "maps" / "test.npz").is_file()
    again = method.teacher_maps(test.frames, folder / "teachers", key="test")
    for name in ("knn", "ae"):
        np.testing.assert_array_equal(first[name]["m16"], again[name]["m16"])
        assert first[name]["m4"].shape == (100, 4, 4)


def test_seeded_training_is_deterministic(scene, fitted):
    train, test = scene
    method, folder = fitted
    again = FastAed(tiny_config()).fit(train, run_dir=folder / "run2", progress=False, teacher_dir=folder / "teachers")
    for key, value in method.student_.state_dict().items():
        torch.testing.assert_close(again.student_.state_dict()[key], value, rtol=0, atol=0)
    np.testing.assert_array_equal(again.anomaly_scores(test.frames[:20]), method.anomaly_scores(test.frames[:20]))


def test_save_load_gives_identical_scores(scene, fitted, tmp_path):
    _, test = scene
    method, _ = fitted
    method.save(tmp_path / "model.ckpt")
    loaded = METHODS["fast-aed"].load(tmp_path / "model.ckpt")
    np.testing.assert_array_equal(loaded.anomaly_scores(test.frames), method.anomaly_scores(test.frames))
    assert loaded.threshold_ == method.threshold_


def test_rescoring_changes_the_teacher_combination_without_retraining(scene, fitted, tmp_path):
    train, test = scene
    method, _ = fitted
    mean = method.with_scoring(train, teacher_combine="mean")
    assert mean.student_ is method.student_ and method.config.teacher_combine == "max"  # the original is untouched
    # recalibrated on the normal validation tails: other statistics, other threshold, other scores
    assert mean.score_stats_ != method.score_stats_ and mean.threshold_ != method.threshold_
    max_scores, mean_scores = method.anomaly_scores(test.frames), mean.anomaly_scores(test.frames)
    assert not np.allclose(max_scores, mean_scores)
    # each head's term: the maximum over positions of the mean of the teachers' maps, standardised anew
    terms = {scale: m.mean(dim=1).flatten(1).amax(dim=1).double().numpy()
             for scale, m in student_maps(method, test.frames).items()}
    expected = (FastAed.raw_from_terms(terms) - mean.score_stats_["mean"]) / mean.score_stats_["std"]
    np.testing.assert_allclose(mean.anomaly_scores(test.frames, raw=True), expected, rtol=1e-5, atol=1e-5)
    mean.save(tmp_path / "mean.ckpt")
    loaded = FastAed.load(tmp_path / "mean.ckpt")
    assert loaded.config.teacher_combine == "mean" and loaded.threshold_ == mean.threshold_
    with pytest.raises(ValueError, match="epochs"):
        method.with_scoring(train, epochs=1)


def student_maps(method: FastAed, frames: np.ndarray) -> dict[int, torch.Tensor]:
    """{scale: (T, teachers, s, s)} the student's maps of every frame, one per teacher."""
    small = method._load_video(frames)[0]
    clips = small[clip_indices(len(small), np.arange(len(small)), method.config.frame_offsets)]
    with torch.inference_mode():
        return method.student_(clips_to_input(clips))


def test_config_round_trip():
    cfg = tiny_config(teachers=("knn",), adv_weight=0.0)
    assert FastAedConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        FastAedConfig.from_dict({"nope": 1})
