import json
import shutil
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from vadistill.checkpoint import load_checkpoint, save_checkpoint
from vadistill.data.pseudo import (ObjectBank, PasteConfig, height_range, paste_object, scene_object_scale,
                                   scene_object_speeds, scene_objects)
from vadistill.data.synthetic import render_scene
from vadistill.errors import InputError
from vadistill.methods import METHODS
from vadistill.data.clips import ClipDataset
from vadistill.methods.aed_mae import (AedMae, AedMaeConfig, AedMaeNet, AedMaeScorer, adamw, clips_to_input,
                                       complementary_keeps, count_parameters, simplex_grid, token_mean)
from vadistill.methods.base import NotFittedError

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is as fast, and robust on a busy 2-core CI machine
    (two OpenMP threads stall badly when another process holds a core). Results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = dict(input_size=(32, 48), patch_size=8, embed_dim=32, depth=1, num_heads=2, decoder_dim=16,
            decoder_depth=2, decoder_heads=2, mlp_dropout=0.0)


def test_default_model_has_about_3m_parameters_and_paper_shapes():
    net = AedMaeNet(AedMaeConfig()).eval()
    assert count_parameters(net) == 3_042_817  # paper: "about 3 M" at patch 16
    x = torch.randn(1, 9, 320, 640).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = net(x)
        assert out.teacher.shape == out.student.shape == (1, 4, 320, 640)
        assert out.logit.shape == (1,) and out.mask is None
        masked = net(x, mask_ratio=0.5, generator=torch.Generator().manual_seed(0))
    assert masked.mask.shape == (1, 800) and masked.mask.sum() == 400


def test_config_from_dict_round_trip_and_unknown_keys():
    cfg = AedMaeConfig(**TINY, paste=PasteConfig(probability=0.5))
    as_json = json.loads(json.dumps(asdict(cfg)))  # lists instead of tuples, nested dicts
    assert AedMaeConfig.from_dict(as_json) == cfg
    with pytest.raises(ValueError, match="unknown AedMaeConfig keys: \\['mask_ration'\\]"):
        AedMaeConfig.from_dict({"mask_ration": 0.5})
    with pytest.raises(ValueError, match="unknown PasteConfig keys"):
        AedMaeConfig.from_dict({"paste": {"prob": 0.5}})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        AedMaeConfig(input_size=(100, 100))


def test_authors_optimizer_spares_biases_and_norms_from_weight_decay():
    net = AedMaeNet(AedMaeConfig(**TINY))
    params = net.teacher_parameters()
    default = adamw(params, AedMaeConfig(**TINY))  # PyTorch's AdamW: one group, everything decayed
    assert [len(g["params"]) for g in default.param_groups] == [len(params)]
    assert default.param_groups[0]["betas"] == (0.9, 0.999) and default.param_groups[0]["weight_decay"] == 0.05

    authors = adamw(params, AedMaeConfig(**TINY, adam_beta2=0.95, decay_all_parameters=False))
    decayed, spared = authors.param_groups
    assert (decayed["weight_decay"], spared["weight_decay"]) == (0.05, 0.0)
    assert decayed["betas"] == spared["betas"] == (0.9, 0.95)
    assert len(decayed["params"]) + len(spared["params"]) == len(params)
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim <= 1 for p in spared["params"])
    norms = (torch.nn.LayerNorm, torch.nn.BatchNorm2d)
    norm_scales = {id(m.weight) for m in net.modules() if isinstance(m, norms)} & {id(p) for p in params}
    assert norm_scales and norm_scales <= {id(p) for p in spared["params"]}

    # With zero gradients only the decay moves weights: the decayed ones shrink, the spared norm scales stay
    scale = next(p for p in spared["params"] if id(p) in norm_scales)
    weight = decayed["params"][0]
    scale_before, weight_before = scale.detach().clone(), weight.detach().clone()
    for p in params:
        p.grad = torch.zeros_like(p)
    authors.step()
    assert torch.equal(scale.detach(), scale_before) and scale_before.abs().sum() > 0
    assert torch.allclose(weight.detach(), weight_before * (1 - 1e-4 * 0.05))


def test_seeded_masking_is_deterministic():
    cfg = AedMaeConfig(**TINY)
    net = AedMaeNet(cfg).eval()
    x = torch.randn(2, 9, 32, 48)
    with torch.inference_mode():
        a = net(x, 0.5, torch.Generator().manual_seed(3))
        b = net(x, 0.5, torch.Generator().manual_seed(3))
        c = net(x, 0.5, torch.Generator().manual_seed(4))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.teacher, b.teacher)
    assert not torch.equal(a.mask, c.mask)
    assert (a.mask[0] != a.mask[1]).any()  # per-sample masks


def test_token_max_classifier_reads_the_most_anomalous_visible_token():
    net = AedMaeNet(AedMaeConfig(**TINY, classifier_pooling="token-max")).eval()
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in AedMaeNet(AedMaeConfig(**TINY)).parameters())
    encoded = []
    net.encoder_norm.register_forward_hook(lambda module, args, out: encoded.append(out))
    x = torch.randn(2, 9, 32, 48)
    with torch.no_grad():
        out = net(x, 0.5, torch.Generator().manual_seed(0))
        z = encoded[0]  # (B, 1 + N', D): CLS token, then the visible tokens only
        per_token = net.classifier(z[:, 1:])[..., 0]  # (B, N')
        cls_reading = net.classifier(z[:, :1]).flatten()
    assert z.shape[1] == 1 + int((out.mask[0] == 0).sum())
    assert torch.allclose(out.logit, per_token.max(dim=1).values)
    assert not torch.allclose(out.logit, cls_reading)  # not the CLS token's reading
    with pytest.raises(ValueError, match="classifier_pooling"):
        AedMaeConfig(classifier_pooling="mean")


def test_masked_patches_do_not_leak_into_the_output():
    cfg = AedMaeConfig(**TINY)
    net = AedMaeNet(cfg).eval()
    x = torch.randn(1, 9, 32, 48)
    with torch.inference_mode():
        out = net(x, 0.5, torch.Generator().manual_seed(0))
        token = int(out.mask[0].nonzero()[0])  # a dropped token
        row, col = divmod(token, 48 // 8)
        y = x.clone()
        y[:, :, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 5.0
        again = net(y, 0.5, torch.Generator().manual_seed(0))
    assert torch.allclose(out.teacher, again.teacher, atol=1e-6)


@pytest.mark.parametrize("num_tokens, ratio", [(150, 0.5), (24, 0.5), (25, 0.75), (10, 0.3)])
def test_complementary_masks_hide_every_token_once_with_the_training_mask_size(num_tokens, ratio):
    keeps, owner = complementary_keeps(5, num_tokens, ratio)
    n_keep = max(1, int(num_tokens * (1 - ratio)))  # as AedMaeNet.random_keep
    n_mask = num_tokens - n_keep
    assert keeps.shape == (-(-num_tokens // n_mask), n_keep) and owner.shape == (num_tokens,)  # ceil(N / M) passes
    for k, keep in enumerate(keeps):
        assert torch.equal(keep, keep.sort().values)
        hidden = set(range(num_tokens)) - set(keep.tolist())
        owned = set((owner == k).nonzero().flatten().tolist())
        assert owned <= hidden  # a pass scores only tokens it hid
        assert len(owned) == (n_mask if k < len(keeps) - 1 else num_tokens - k * n_mask)
    again, owner_again = complementary_keeps(5, num_tokens, ratio)
    assert torch.equal(keeps, again) and torch.equal(owner, owner_again)
    assert not torch.equal(keeps, complementary_keeps(6, num_tokens, ratio)[0])


def test_complementary_scoring_never_sees_the_pixels_it_scores():
    """Each pixel's error comes from the pass that hid its token: changing that token's input
    pixels in a context frame leaves the error unchanged (it does change without masking)."""
    frames = np.random.default_rng(1).integers(0, 256, (10, 32, 48, 3), dtype=np.uint8)
    changed = frames.copy()
    changed[3, 8:16, 16:24] = 255 - changed[3, 8:16, 16:24]  # frame 3 is the t+3 input of frame 0
    errors = {}
    for complementary in (False, True):
        cfg = AedMaeConfig(**TINY, inference_mask_ratio=0.5 if complementary else 0.0)
        method = AedMae(cfg)
        torch.manual_seed(0)
        method.net_ = AedMaeNet(cfg).eval()
        before, after = method._pixel_terms(frames), method._pixel_terms(changed)
        errors[complementary] = (before["teacher"][0, 8:16, 16:24], after["teacher"][0, 8:16, 16:24])
        again = method._pixel_terms(frames, 2, 5)  # another batching: the same scores
        assert np.allclose(before["teacher"][2:5], again["teacher"], atol=1e-6)
        assert np.allclose(before["classifier"][2:5], again["classifier"], atol=1e-6)
    assert not np.allclose(*errors[False], atol=1e-6)
    assert np.allclose(*errors[True], atol=1e-6)
    x = clips_to_input(frames[[0, 0, 3]][None])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # the runtime's bf16 engine
        low = method.scorer()(x)
    with torch.inference_mode():
        full = method.scorer()(x)
    assert all(torch.allclose(a.float(), b, atol=0.05, rtol=0.05) for a, b in zip(low, full))
    # ratio 0 scores unmasked whatever complementary_masks says (configs from before it existed)
    unmasked = AedMae(AedMaeConfig(**TINY, inference_mask_ratio=0.0))
    unmasked.net_ = method.net_
    assert unmasked.scorer().keeps is None and unmasked.scorer().random_ratio == 0


def test_visible_map_takes_the_map_channel_from_the_pass_that_saw_the_token():
    """visible_map: every pixel's RGB error still comes from the pass that hid its token, its map
    error from the pass(es) that saw it; the student term and the logit do not change."""
    cfg = AedMaeConfig(**TINY)  # 4 x 6 tokens, ratio 0.5: two passes, each hides what the other sees
    torch.manual_seed(0)
    net = AedMaeNet(cfg).eval()
    x = torch.rand(2, 9, *cfg.input_size) * 2 - 1
    hidden, seen = AedMaeScorer(net, cfg), AedMaeScorer(net, replace(cfg, visible_map=True))
    with torch.inference_mode():
        (t_hidden, s_hidden, l_hidden), (t_seen, s_seen, l_seen) = hidden(x), seen(x)
        target = torch.cat((x[:, 3:6], torch.full_like(x[:, :1], -1.0)), dim=1)
        maps = [(net(x, with_student=True, keep=keep.expand(2, -1)).teacher - target)[:, 3].abs() for keep in seen.keeps]
    assert torch.equal(seen.map_share, seen.owner.flip(0))
    expected_map_change = sum((seen.owner[1 - k] - seen.owner[k]) * maps[k] for k in range(2)) / 4
    assert torch.allclose(t_seen - t_hidden, expected_map_change, atol=1e-6)
    assert torch.equal(s_seen, s_hidden) and torch.equal(l_seen, l_hidden)
    # 5 x 3 tokens: the last chunk overlaps, so one token is hidden by both passes and keeps its owner's map
    odd = AedMaeScorer(AedMaeNet(replace(cfg, input_size=(40, 24))), replace(cfg, input_size=(40, 24), visible_map=True))
    assert torch.allclose(odd.map_share.sum(dim=0), torch.ones(40, 24))
    assert (odd.map_share * odd.owner).sum() == 8 * 8  # that token's 8 x 8 pixels
    # unmasked scoring ignores visible_map (every token is seen anyway)
    unmasked = AedMaeScorer(net, replace(cfg, inference_mask_ratio=0.0, visible_map=True))
    assert unmasked.keeps is None and not unmasked.visible_map


def test_teacher_channels_map_scores_the_anomaly_map_channel_alone():
    """teacher_channels="map": the teacher term is the map channel's error only, read where each
    masking reads it (hidden, seen with visible_map, or unmasked); the other terms do not change."""
    cfg = AedMaeConfig(**TINY)
    torch.manual_seed(0)
    net = AedMaeNet(cfg).eval()
    x = torch.rand(2, 9, *cfg.input_size) * 2 - 1
    target = torch.cat((x[:, 3:6], torch.full_like(x[:, :1], -1.0)), dim=1)
    with torch.inference_mode():
        for changes in ({}, {"visible_map": True}, {"inference_mask_ratio": 0.0}):
            both = AedMaeScorer(net, replace(cfg, **changes))
            t_map, s_map, l_map = AedMaeScorer(net, replace(cfg, teacher_channels="map", **changes))(x)
            _, s_both, l_both = both(x)
            assert torch.equal(s_map, s_both) and torch.equal(l_map, l_both)
            if both.keeps is None:
                expected = (net(x, with_student=False).teacher - target)[:, 3].abs()
            else:
                maps = [(net(x, with_student=False, keep=keep.expand(2, -1)).teacher - target)[:, 3].abs()
                        for keep in both.keeps]
                reads = both.map_share if changes else both.owner  # seen / hidden
                expected = sum(reads[k] * maps[k] for k in range(2))
            assert torch.allclose(t_map, expected, atol=1e-6), changes
    with pytest.raises(ValueError, match="teacher_channels"):
        AedMaeConfig(**TINY, teacher_channels="rgb")


def test_channels_last_input_and_unfitted_errors():
    clips = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 48, 3), dtype=np.uint8)
    x = clips_to_input(clips)
    assert x.shape == (2, 9, 32, 48) and x.is_contiguous(memory_format=torch.channels_last)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert torch.allclose(x[0, 3:6].permute(1, 2, 0), torch.from_numpy(clips[0, 1]).float() / 127.5 - 1)
    assert METHODS["aed-mae"] is AedMae
    with pytest.raises(NotFittedError):
        AedMae(AedMaeConfig(**TINY)).anomaly_scores(np.zeros((4, 32, 48, 3), np.uint8))


# -- end to end on a generated surveillance scene --------------------------------------------------
H, W = 64, 96
# 30 teacher + 10 student epochs. With 5 + 2 (this test's schedule before benchmarks/aed_mae_e2e_seeds.py)
# the probe below passed for 7 of 10 seeds with either loss_tokens, so a pass or a failure said more about
# the draw than about the method; at 30 + 10 both pass on 10 of 10 (benchmarks/results/aed_mae_e2e_seeds.md).
E2E = dict(input_size=(H, W), patch_size=8, embed_dim=48, depth=2, num_heads=2, decoder_dim=32, decoder_depth=2,
           decoder_heads=2, teacher_epochs=30, student_epochs=10, batch_size=16, lr=2e-3, map_filter=(3, 3, 3),
           temporal_filter={"kind": "gaussian", "sigma": 1.0})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("aed_run")
    train = e2e_training_videos()
    method = AedMae(AedMaeConfig.from_dict(E2E)).fit(train, run_dir=run_dir, progress=False)
    return method, run_dir, train


def e2e_training_videos() -> list[np.ndarray]:
    return [render_scene(80, H, W, seed=s).frames for s in (0, 10)]


def pasted_probe(train: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(clean, pasted): an unseen 60-frame scene, and the same frames with the longest object of the
    training videos pasted into frames 20-40 (scale 0.4, drifting). Also used by
    benchmarks/aed_mae_e2e_seeds.py, which measures this test's outcome over seeds and schedules."""
    clean = render_scene(60, H, W, seed=1000).frames
    seq = max(ObjectBank.harvest(train).sequences, key=len)
    pasted = clean.copy()
    pasted[20:41], _ = paste_object(clean[20:41], np.arange(-10, 11), seq, np.random.default_rng(3),
                                    PasteConfig(scale=(0.4, 0.4), speed=(2, 2), drift=0.03, reverse_probability=0))
    return clean, pasted


PASTED_FRAMES = slice(22, 39)  # frames whose temporal neighbourhood holds the object


def probe_outcome(s_clean: np.ndarray, s_pasted: np.ndarray) -> dict:
    """The end-to-end test's criterion on one pair of score curves. Paired: each frame scores higher
    with the object than without it, by a clear margin (scores are in units of the normal-validation
    standard deviation; float noise is ~1e-6), and untouched frames far from the object agree."""
    gain = s_pasted[PASTED_FRAMES] - s_clean[PASTED_FRAMES]
    outcome = {"fraction_raised": float((gain > 0).mean()), "mean_gain": float(gain.mean()),
               "untouched_agree": bool(np.allclose(s_pasted[:10], s_clean[:10], atol=0.3))}
    outcome["passes"] = outcome["fraction_raised"] >= 0.9 and outcome["mean_gain"] > 0.1 and outcome["untouched_agree"]
    return outcome


@pytest.mark.slow
def test_pasted_object_frames_score_higher_than_clean_frames(trained):
    method, _, train = trained
    clean, pasted = pasted_probe(train)
    outcome = probe_outcome(method.anomaly_scores(clean), method.anomaly_scores(pasted))
    print("pasted-object probe:", outcome)
    # the same frames with and without the object: the object raises the score of (nearly) every frame
    assert outcome["fraction_raised"] >= 0.9 and outcome["mean_gain"] > 0.1
    assert outcome["untouched_agree"]
    maps = method.anomaly_maps(pasted)
    assert maps.shape == (60, H, W) and maps.dtype == np.float32 and np.isfinite(maps).all()


@pytest.mark.slow
def test_pasted_object_probe_passes_with_the_all_token_loss(tmp_path):
    """The same probe for the other loss (loss_tokens="all": on Ped2 the better one when the score
    weights are chosen on the synthetic validation, aed_mae_ped2_seed3.md)."""
    train = e2e_training_videos()
    method = AedMae(AedMaeConfig.from_dict({**E2E, "loss_tokens": "all"})).fit(train, run_dir=tmp_path, progress=False)
    clean, pasted = pasted_probe(train)
    outcome = probe_outcome(method.anomaly_scores(clean), method.anomaly_scores(pasted))
    print("pasted-object probe, loss_tokens='all':", outcome)
    assert outcome["fraction_raised"] >= 0.9 and outcome["mean_gain"] > 0.1
    assert outcome["untouched_agree"]


@pytest.mark.slow
def test_save_load_gives_identical_scores_and_maps(trained, tmp_path):
    method, run_dir, _ = trained
    video = render_scene(30, 72, 108, seed=7).frames  # not the model size: maps come back at 72x108
    method.save(tmp_path / "m.ckpt")
    loaded = AedMae.load(tmp_path / "m.ckpt")
    assert np.array_equal(method.anomaly_scores(video), loaded.anomaly_scores(video))
    maps = loaded.anomaly_maps(video)
    assert maps.shape == (30, 72, 108)
    assert np.array_equal(method.anomaly_maps(video), maps)
    payload = load_checkpoint(run_dir / "model.ckpt")
    assert payload["method"] == "aed-mae" and set(payload["score_stats"]) >= {"teacher", "student", "classifier"}
    assert np.isfinite(payload["threshold"])
    assert AedMae.load(run_dir / "model.ckpt").anomaly_scores(video).shape == (30,)


@pytest.mark.slow
def test_scoring_settings_change_without_retraining_and_old_checkpoints_keep_theirs(trained, tmp_path):
    method, run_dir, train = trained
    assert method.config.complementary_masks and method.config.inference_mask_ratio == 0.5  # the defaults
    video = render_scene(20, H, W, seed=4).frames
    unmasked = method.with_scoring(train, complementary_masks=False, inference_mask_ratio=0.0)
    assert unmasked.net_ is method.net_ and method.config.complementary_masks  # the original is untouched
    assert unmasked.score_stats_["teacher"]["mean"] != method.score_stats_["teacher"]["mean"]  # recalibrated
    assert not np.allclose(unmasked.anomaly_scores(video), method.anomaly_scores(video))
    with pytest.raises(ValueError, match="they need retraining\\): \\['embed_dim'\\]"):
        method.with_scoring(train, embed_dim=8)
    # a checkpoint written before complementary masks existed (ratio 0, no such key) loads as unmasked
    payload = load_checkpoint(run_dir / "model.ckpt")
    del payload["config"]["complementary_masks"]
    payload["config"]["inference_mask_ratio"] = 0.0
    save_checkpoint(tmp_path / "old.ckpt", payload)
    old = AedMae.load(tmp_path / "old.ckpt")
    assert not old.config.complementary_masks and old.config.inference_mask_ratio == 0.0
    # one written before pixel_norm existed (no key, no statistics) scores raw errors
    del payload["config"]["pixel_norm"], payload["config"]["pixel_norm_frames"], payload["pixel_stats"]
    save_checkpoint(tmp_path / "older.ckpt", payload)
    older = AedMae.load(tmp_path / "older.ckpt")
    assert not older.config.pixel_norm and older.pixel_stats_ is None and older.scorer().pixel_mean is None
    # pixel_norm on without its statistics is a broken checkpoint, named as such
    payload["config"]["pixel_norm"] = True
    save_checkpoint(tmp_path / "broken.ckpt", payload)
    with pytest.raises(InputError, match="per-pixel statistics are missing"):
        AedMae.load(tmp_path / "broken.ckpt")
    # rescoring an old model with pixel_norm measures the statistics on its training frames
    normed = older.with_scoring(train, pixel_norm=True)
    assert normed.pixel_stats_["teacher_mean"].shape == normed.config.input_size
    normed.save(tmp_path / "normed.ckpt")
    again = AedMae.load(tmp_path / "normed.ckpt")
    assert again.config.pixel_norm and np.array_equal(again.anomaly_scores(video), normed.anomaly_scores(video))
    assert not np.allclose(normed.anomaly_scores(video, raw=True), older.anomaly_scores(video, raw=True))


def test_pixel_norm_standardises_every_pixel_on_training_frames():
    """The scorer's maps are (raw - mean) / std per pixel, with the statistics of the training
    frames it measured them on: mean 0 there, std 1 wherever the raw std is above the floor."""
    cfg = AedMaeConfig(**TINY, pixel_norm=True, pixel_norm_frames=12)
    method = AedMae(cfg)
    torch.manual_seed(0)
    method.net_ = AedMaeNet(cfg).eval()
    frames = render_scene(16, 32, 48, seed=2).frames
    train_set = ClipDataset([frames], cfg.frame_offsets).split_tail(0.25)[0]  # 12 training frames: all picked
    method._measure_pixel_stats(train_set)
    stats = method.pixel_stats_
    clips, _ = train_set.gather(np.arange(len(train_set)))
    with torch.inference_mode():
        raw_t, raw_s, _ = AedMaeScorer(method.net_, replace(cfg, pixel_norm=False))(clips_to_input(clips))
        norm_t, norm_s, _ = method.scorer()(clips_to_input(clips))
    for raw, norm, name in ((raw_t, norm_t, "teacher"), (raw_s, norm_s, "student")):
        assert torch.allclose(norm, (raw - stats[f"{name}_mean"]) / stats[f"{name}_std"], atol=1e-5)
        assert float(norm.mean(dim=0).abs().max()) < 1e-4
        floor = float(stats[f"{name}_std"].min())
        assert floor == pytest.approx(float(raw.double().std(dim=0, unbiased=False).median()), rel=1e-4)
        above = raw.double().std(dim=0, unbiased=False) > floor * 1.01
        assert above.any() and torch.allclose(norm.double().std(dim=0, unbiased=False)[above],
                                              torch.ones(()).double(), atol=1e-3)
    static = AedMae(cfg)
    static.net_ = method.net_
    with pytest.raises(InputError, match="at least 2 normal training frames"):
        static._measure_pixel_stats(ClipDataset([frames[:1]], cfg.frame_offsets))


@pytest.mark.slow
def test_fit_resume_skips_finished_stages(trained):
    method, run_dir, train = trained
    video = render_scene(20, H, W, seed=5).frames
    again = AedMae(AedMaeConfig.from_dict(E2E)).fit(train, run_dir=run_dir, resume=True, progress=False)
    assert np.array_equal(again.anomaly_scores(video), method.anomaly_scores(video))
    with pytest.raises(InputError, match="different config"):
        AedMae(AedMaeConfig.from_dict({**E2E, "lr": 1e-3})).fit(train, run_dir=run_dir, resume=True, progress=False)


@pytest.mark.slow
def test_scoring_variants_reuse_one_model(trained):
    method, _, _ = trained
    video = render_scene(30, H, W, seed=9).frames
    terms = method.score_terms(video)
    assert set(terms) == {"teacher", "student", "classifier"} and all(v.shape == (30,) for v in terms.values())
    raw = method.combine_terms(terms, raw=True)
    assert np.allclose(method.anomaly_scores(video, raw=True), raw)
    teacher_only = method.combine_terms(terms, weights=(1, 0, 0), raw=True)
    s = method.score_stats_["teacher"]
    assert np.allclose(teacher_only, (terms["teacher"] - s["mean"]) / s["std"])
    official = AedMae.__new__(AedMae)
    official.__dict__.update(method.__dict__)
    official.config = replace(method.config, score_norm="video-minmax")
    scores = official.combine_terms(terms)
    assert scores.min() >= 0 and scores.max() <= 1.0 + 1e-9


def test_simplex_grid_covers_the_weight_triangle():
    grid = simplex_grid(0.1)
    assert len(grid) == 66 and len(set(grid)) == 66
    assert all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0 for w in grid)
    assert (1.0, 0.0, 0.0) in grid and (0.0, 0.0, 1.0) in grid and (0.4, 0.3, 0.3) in grid


@pytest.mark.slow
def test_weights_selected_on_synthetic_validation_anomalies(trained, tmp_path):
    method, _, train = trained
    chosen = AedMae.__new__(AedMae)  # a copy: the shared fixture keeps the paper weights
    chosen.__dict__.update(method.__dict__)
    val_set = ClipDataset(train, chosen.config.frame_offsets).split_tail(chosen.config.val_fraction)[1]
    report = chosen.select_score_weights(val_set, ObjectBank.harvest(train))
    assert tuple(report["weights"]) in simplex_grid(0.1) and tuple(chosen.config.score_weights) == tuple(report["weights"])
    assert report["configured_weights"] == [0.4, 0.3, 0.3] and method.config.score_weights == (0.4, 0.3, 0.3)
    # the grid contains the configured weights, so the choice is at least as good on this set
    assert report["auc"] >= report["configured_auc"] and report["auc"] > 0.5
    assert report["positives"] > 0 and report["negatives"] == len(val_set)
    # each term alone is a corner of the grid: inside its range, the best one no better than the chosen mix
    assert set(report["term_aucs"]) == {"teacher", "student", "classifier"}
    low, high = report["grid_auc_range"]
    assert all(low <= a <= high for a in report["term_aucs"].values()) and max(report["term_aucs"].values()) <= report["auc"]
    assert np.isfinite(chosen.threshold_)
    chosen.weight_selection_ = report
    chosen.save(tmp_path / "chosen.ckpt")
    loaded = AedMae.load(tmp_path / "chosen.ckpt")
    video = render_scene(30, H, W, seed=9).frames
    assert loaded.config.score_weights == chosen.config.score_weights and loaded.weight_selection_ == report
    assert np.array_equal(loaded.anomaly_scores(video), chosen.anomaly_scores(video))
    with pytest.raises(ValueError, match="weight_selection"):
        AedMaeConfig(weight_selection="test-labels")
    # validation objects at another size: the report says which sizes were pasted
    small = AedMae.__new__(AedMae)
    small.__dict__.update(method.__dict__)
    small_report = small.select_score_weights(val_set, ObjectBank.harvest(train), scale=(0.1, 0.12))
    assert report["paste_scale"] == list(method.config.paste.scale) and small_report["paste_scale"] == [0.1, 0.12]
    assert small_report["negatives"] == report["negatives"] and small_report["auc"] != report["auc"]
    with pytest.raises(ValueError, match="validation_paste_scale"):
        AedMaeConfig(validation_paste_scale="test")


def test_fit_selects_weights_on_objects_of_the_scenes_size(tmp_path):
    train = [render_scene(60, H, W, seed=s).frames for s in (0, 10)]
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=2, batch_size=8,
        map_filter=(3, 3, 3), weight_selection="synthetic-validation")
    method = AedMae(cfg).fit(train, run_dir=tmp_path / "run", progress=False)
    report = method.weight_selection_
    expected = scene_object_scale(train, cfg.harvest)  # frames already at the model size
    assert report["paste_scale"] == pytest.approx(list(expected))
    assert 0 < expected[0] <= expected[1] < cfg.paste.scale[1]  # walkers are smaller than most training pastes
    assert tuple(method.config.score_weights) == tuple(report["weights"])
    assert AedMae.load(tmp_path / "run" / "model.ckpt").weight_selection_ == report


def test_training_pastes_take_the_scenes_size_and_places(tmp_path):
    train = [render_scene(40, H, W, seed=s).frames for s in (0, 10)]
    heights, centres = scene_objects(train)
    placed = AedMae(AedMaeConfig(**TINY, training_paste_placement="scene"))
    [(paste, where)] = placed._training_placements(train)
    assert paste.scale == pytest.approx(height_range(heights)) and np.array_equal(where, centres)
    assert paste.scale[1] < placed.config.paste.scale[1]  # walkers are smaller than most configured pastes
    assert AedMae(AedMaeConfig(**TINY))._training_placements(train) == [(PasteConfig(), None)]  # default: configured
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=2,
                       batch_size=8, map_filter=(3, 3, 3), training_paste_placement="scene")
    AedMae(cfg).fit(train, run_dir=tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["training_pastes"]
    assert recorded == {"scale": list(paste.scale), "centres": len(centres), "drift_speed": None}
    static = [np.repeat(render_scene(1, H, W, seed=3).frames, 20, axis=0)]
    with pytest.raises(InputError, match="no moving object"):  # refused before any training
        AedMae(cfg).fit(static, run_dir=tmp_path / "static", progress=False)
    with pytest.raises(ValueError, match="training_paste_placement"):
        AedMaeConfig(training_paste_placement="test")


def test_fast_training_pastes_drift_faster_than_the_scenes_objects(tmp_path):
    train = [render_scene(40, H, W, seed=s).frames for s in (0, 10)]
    median = float(np.median(scene_object_speeds(train)))
    fast = AedMae(AedMaeConfig(**TINY, training_paste_placement="scene_fast"))
    [(paste, where)] = fast._training_placements(train)
    [(scene_paste, scene_where)] = AedMae(AedMaeConfig(**TINY, training_paste_placement="scene"))._training_placements(train)
    assert paste.scale == scene_paste.scale and np.array_equal(where, scene_where)  # size and places as "scene"
    assert 0 < median and paste.drift_speed == pytest.approx([3 * median, 8 * median])
    assert scene_paste.drift_speed is None
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=2,
                       batch_size=8, map_filter=(3, 3, 3), training_paste_placement="scene_fast")
    AedMae(cfg).fit(train, run_dir=tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["training_pastes"]
    assert recorded["drift_speed"] == pytest.approx(list(paste.drift_speed))


def test_mixed_training_pastes_draw_the_configured_or_the_scenes_placement_per_batch(tmp_path):
    train = [render_scene(40, H, W, seed=s).frames for s in (0, 10)]
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=2,
                       batch_size=8, map_filter=(3, 3, 3), training_paste_placement="mixed",
                       paste=PasteConfig(probability=1.0))
    mixed = AedMae(cfg)
    placements = mixed._training_placements(train)
    [(scene_paste, scene_where)] = AedMae(replace(cfg, training_paste_placement="scene"))._training_placements(train)
    assert placements[0] == (cfg.paste, None)  # the configured sizes, anywhere
    assert placements[1][0] == scene_paste and np.array_equal(placements[1][1], scene_where)
    # every sample holds a paste (probability 1); its height tells which placement the batch drew
    bank = ObjectBank.harvest(train)
    dataset = ClipDataset(train, cfg.frame_offsets)
    tallest = []
    for epoch in range(6):
        for batch in mixed._batches(dataset, bank, epoch=epoch, stage=1, shuffle=True, placements=placements):
            rows = batch.target[:, 3].flatten(2).amax(2) > 0  # (B, H): rows covered by a paste
            tallest.append(int(rows.sum(1).max()))
    assert max(tallest) > scene_paste.scale[1] * H  # some batches took the configured, larger sizes...
    assert min(tallest) <= np.ceil(scene_paste.scale[1] * H) + 1  # ...and some the scene's
    mixed.fit(train, run_dir=tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["training_pastes"]
    assert [entry["centres"] for entry in recorded] == [0, len(scene_where)]


def test_pasted_loss_early_stopping_watches_the_whole_teacher_loss_on_pasted_validation_clips(tmp_path):
    train = [render_scene(40, H, W, seed=s).frames for s in (0, 10)]  # already at the model size
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=2,
                       batch_size=8, map_filter=(3, 3, 3), paste=PasteConfig(probability=0.5))
    watched = {}
    for rule in ("reconstruction", "pasted-loss"):
        method = AedMae(replace(cfg, early_stopping=rule)).fit(train, run_dir=tmp_path / rule, progress=False)
        # the fitted teacher is the state of its only epoch: recompute what early stopping saw
        _, val_set = ClipDataset(train, cfg.frame_offsets).split_tail(cfg.val_fraction)
        pasted = rule == "pasted-loss"
        bank = ObjectBank.harvest(train, description="harvested from the training videos") if pasted else None
        batches = list(method._batches(val_set, bank, epoch=0, stage=99, shuffle=False,
                                       placements=method._training_placements(train) if pasted else ()))
        assert any(b.label.any() for b in batches) == pasted  # pastes only in the pasted validation
        method.net_.eval()
        with torch.no_grad():
            expected = np.mean([method._teacher_losses(b)["loss" if pasted else "rec"].item() for b in batches])
        watched[rule] = method.history_[0]["val"]
        assert watched[rule] == pytest.approx(expected, rel=1e-5)
    assert watched["pasted-loss"] > watched["reconstruction"]  # map and classification terms added
    with pytest.raises(ValueError, match="early_stopping"):
        AedMaeConfig(early_stopping="test-auc")


def test_keep_teacher_epochs_saves_each_epochs_weights_that_score_after_recalibration(tmp_path):
    train = [render_scene(40, H, W, seed=s).frames for s in (0, 10)]
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=3, student_epochs=1, max_steps_per_epoch=2,
                       batch_size=8, map_filter=(3, 3, 3), patience=5)
    method = AedMae(cfg).fit(train, run_dir=tmp_path, progress=False, keep_teacher_epochs=True)
    snapshots = sorted((tmp_path / "teacher_epochs").glob("*.ckpt"))
    assert [s.name for s in snapshots] == ["001.ckpt", "002.ckpt", "003.ckpt"]
    first = load_checkpoint(snapshots[0])["net"]
    assert not torch.equal(first["teacher_head.weight"], load_checkpoint(snapshots[2])["net"]["teacher_head.weight"])
    video = render_scene(20, H, W, seed=500).frames
    before = method.anomaly_scores(video)
    method.net_.load_state_dict(first)  # the first epoch's network, recalibrated for its own statistics
    rescored = method.with_scoring(train).anomaly_scores(video)
    assert np.isfinite(rescored).all() and not np.allclose(rescored, before)


def test_teacher_average_epochs_makes_the_teacher_the_mean_of_the_last_epochs(tmp_path):
    train = [render_scene(40, H, W, seed=s).frames for s in (0, 10)]
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=3, student_epochs=1, max_steps_per_epoch=2,
                       batch_size=8, map_filter=(3, 3, 3), patience=5, teacher_average_epochs=2)
    kept = AedMae(cfg).fit(train, run_dir=tmp_path / "kept", progress=False, keep_teacher_epochs=True)
    epochs = [load_checkpoint(tmp_path / "kept" / "teacher_epochs" / f"{e:03d}.ckpt")["net"] for e in (2, 3)]
    assert not torch.equal(epochs[0]["teacher_head.weight"], epochs[1]["teacher_head.weight"])
    for name, value in kept.net_.state_dict().items():
        if not name.startswith("student"):  # stage 2 trains the student only
            expected = (epochs[0][name] + epochs[1][name]) / 2 if value.is_floating_point() else epochs[1][name]
            torch.testing.assert_close(value, expected)
    # without keep_teacher_epochs only the epochs the average needs stay on disk; the same teacher
    lean = AedMae(cfg).fit(train, run_dir=tmp_path / "lean", progress=False)
    assert sorted(p.name for p in (tmp_path / "lean" / "teacher_epochs").glob("*.ckpt")) == ["002.ckpt", "003.ckpt"]
    assert all(torch.equal(a, b) for a, b in zip(kept.net_.teacher_parameters(), lean.net_.teacher_parameters()))
    resumed = AedMae(cfg).fit(train, run_dir=tmp_path / "lean", resume=True, progress=False)  # finished: re-averaged
    assert all(torch.equal(a, b) for a, b in zip(lean.net_.teacher_parameters(), resumed.net_.teacher_parameters()))


def test_student_pastes_false_distils_from_the_same_teacher_on_clean_clips(tmp_path):
    """student_pastes=False: stage 2 never sees a pasted object. Started from another run's finished
    teacher checkpoint (as the benchmark's clean_student experiment does), only the student trains."""
    train = [render_scene(40, H, W, seed=s).frames for s in (0, 10)]
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=2,
                       batch_size=8, map_filter=(3, 3, 3), paste=PasteConfig(probability=1.0))
    pasted_per_stage = {}  # stage -> per batch, whether it holds a pasted object

    class Recording(AedMae):
        def _batches(self, dataset, bank, *, stage, **kwargs):
            for batch in super()._batches(dataset, bank, stage=stage, **kwargs):
                pasted_per_stage.setdefault(stage, []).append(bool(batch.label.any()))
                yield batch

    pasted = Recording(cfg).fit(train, run_dir=tmp_path / "pasted", progress=False)
    assert all(pasted_per_stage[1]) and all(pasted_per_stage[2])  # probability 1: every batch, both stages
    pasted_per_stage.clear()
    (tmp_path / "clean").mkdir()
    shutil.copyfile(tmp_path / "pasted" / "stage_teacher.ckpt", tmp_path / "clean" / "stage_teacher.ckpt")
    clean = Recording(replace(cfg, student_pastes=False)).fit(train, run_dir=tmp_path / "clean", resume=True,
                                                              progress=False)
    assert 1 not in pasted_per_stage and len(pasted_per_stage[2]) == 2 and not any(pasted_per_stage[2])
    same = [torch.equal(a, b) for a, b in zip(pasted.net_.teacher_parameters(), clean.net_.teacher_parameters())]
    assert all(same)  # the teacher was reused, not retrained
    assert not all(torch.equal(a, b) for a, b in zip(pasted.net_.student_parameters(), clean.net_.student_parameters()))


def test_loss_tokens_choose_which_tokens_each_loss_trains(tmp_path):
    """loss_tokens="masked" (MAE) puts only the dropped tokens' outputs in the reconstruction and map
    losses; "all" (the authors' code) the visible ones too; "map-all" the visible ones in the map loss
    only: the gradient reaching the teacher's RGB and map outputs."""
    train = [render_scene(40, H, W, seed=0).frames]
    cfg = AedMaeConfig(**{**TINY, "input_size": (H, W)}, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=1,
                       batch_size=4, map_filter=(3, 3, 3), motion_weighting=False, paste=PasteConfig(probability=0.0))
    for tokens in ("masked", "all", "map-all"):
        method = AedMae(replace(cfg, loss_tokens=tokens)).fit(train, run_dir=tmp_path / tokens, progress=False)
        batch = next(method._batches(ClipDataset(train, cfg.frame_offsets), None, epoch=0, stage=99, shuffle=False))
        outputs = []
        hook = method.net_.register_forward_hook(lambda module, args, out: outputs.append(out))
        method.net_.train()
        for parameter in method.net_.parameters():
            parameter.requires_grad_(True)  # the student stage froze the shared parts
        losses = method._teacher_losses(batch)
        hook.remove()
        out = outputs[0]
        out.teacher.retain_grad()
        (losses["rec"] + losses["map"]).backward()
        dropped = out.mask.bool()
        for channels, trained_visible in ((slice(0, 3), tokens == "all"), (slice(3, 4), tokens != "masked")):
            reached = token_mean(out.teacher.grad[:, channels].abs(), cfg.patch_size) > 0  # (B, N) tokens trained
            assert reached[dropped].all()
            assert (reached[~dropped].all() if trained_visible else not reached[~dropped].any())


def test_weight_selection_falls_back_to_the_training_size_on_a_static_scene():
    static = np.repeat(render_scene(1, H, W, seed=3).frames, 20, axis=0)
    method = AedMae(AedMaeConfig(**TINY, weight_selection="synthetic-validation"))
    with pytest.warns(UserWarning, match="no moving object.*training pastes' size"):
        assert method._validation_placement([static]) == (None, None)
    moving = [render_scene(30, H, W, seed=3).frames]
    anywhere = AedMae(AedMaeConfig(**TINY, validation_paste_scale="training", validation_paste_positions="anywhere"))
    assert anywhere._validation_placement(moving) == (None, None)
    # positions "scene" (the default): the centres of the footage's moving objects, with or without their size
    heights, centres = scene_objects(moving)
    for scale in ("scene", "training"):
        placed = AedMae(AedMaeConfig(**TINY, validation_paste_scale=scale))
        size, where = placed._validation_placement(moving)
        assert np.array_equal(where, centres) and (size is None) == (scale == "training")
    with pytest.raises(ValueError, match="validation_paste_positions"):
        AedMaeConfig(validation_paste_positions="test")


def test_fit_keeps_the_trained_model_when_weight_selection_has_nothing_to_paste(tmp_path):
    """No synthetic anomalies in training and a static scene: the objects for the weight choice are
    harvested from the training videos, none is found, and the model is kept with its configured weights."""
    static = [np.repeat(render_scene(1, H, W, seed=s).frames, 24, axis=0) for s in (3, 4)]
    cfg = AedMaeConfig(**TINY, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=1, batch_size=8,
                       map_filter=(3, 3, 3), paste=PasteConfig(probability=0.0), weight_selection="synthetic-validation")
    with pytest.warns(UserWarning, match="holds no object to paste; scoring keeps the configured weights"):
        method = AedMae(cfg).fit(static, run_dir=tmp_path / "run", progress=False)
    loaded = AedMae.load(tmp_path / "run" / "model.ckpt")
    assert loaded.weight_selection_ is None and tuple(loaded.config.score_weights) == (0.4, 0.3, 0.3)
    assert np.isfinite(method.threshold_)
