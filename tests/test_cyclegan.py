"""CycleGAN and classifier: shapes, the paper's losses, one step per network, trainers end to end."""
import json

import numpy as np
import pytest
import torch

from composer.models.classifier import ClassifierConfig, GenreClassifier
from composer.models.cyclegan import PRESETS, CycleGAN, Discriminator, Generator, get_config, n_params
from composer.music.genres import GenreData, save_npz
from composer.training import classifier as tclf
from composer.training import cyclegan as tcg
from composer.training.loop import load_checkpoint, read_jsonl

torch.set_num_threads(1)  # the CI box has 2 busy cores: more threads only wait on each other


def batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 64, 84, generator=g) > 0.95).float()


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    m = CycleGAN(get_config("tiny"))
    return m, {k: getattr(m, k) for k in m.NETS}, tcg.make_optimizers(m)


def snapshot(m):
    return {k: [p.detach().clone() for p in getattr(m, k).parameters()] for k in m.NETS}


def changed(m, before):
    return {k for k in m.NETS if any(not torch.equal(a, b) for a, b in zip(before[k], getattr(m, k).parameters()))}


def test_shapes_and_presets():
    x = batch()
    torch.set_grad_enabled(False)
    for preset in ("tiny", "default"):
        cfg = get_config(preset)
        y = Generator(cfg)(x)
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
        assert Discriminator(cfg)(x).shape == (2, 1, 16, 21)
    paper = PRESETS["paper"]
    assert (paper.ngf, paper.n_res, paper.ndf) == (64, 10, 64)
    assert n_params(Generator(get_config("default"))) < n_params(Generator(paper)) / 10
    clf = GenreClassifier(ClassifierConfig(width=8))
    assert clf(x).shape == (2, 2)
    assert torch.allclose(clf.probs(x).sum(1), torch.ones(2))
    torch.set_grad_enabled(True)


def test_instance_norm_eps_is_eps():
    """The PyTorch port passed ``affine`` into eps; ours keeps eps small and affine on."""
    norms = [mod for mod in Generator(get_config("tiny")).modules() if isinstance(mod, torch.nn.InstanceNorm2d)]
    assert norms and all(n.eps == 1e-5 and n.affine for n in norms)


def test_each_step_changes_only_its_own_network(tiny):
    m, nets, opts = tiny
    x = [batch(seed=s) for s in range(4)]
    for name in m.NETS:
        before = snapshot(m)
        tcg.train_step(nets, opts, *x, only=(name,))
        assert changed(m, before) == {name}, name
    before = snapshot(m)
    out = tcg.train_step(nets, opts, *x)
    assert changed(m, before) == set(m.NETS)
    assert {"g_loss", "cycle", "g_adv", "g_adv_m", "d_a_loss", "d_b_loss", "d_am_loss", "d_bm_loss"} <= set(out)


def test_mixed_discriminators_loss_reaches_the_generators(tiny):
    m, nets, _ = tiny
    _, parts, _, _ = tcg.generator_loss(nets, batch(seed=1), batch(seed=2), sigma=0.1, lam=10.0, gamma=1.0)
    parts["g_adv_m"].backward()
    for g in (m.G_AB, m.G_BA):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


def test_generator_loss_is_the_papers_sum(tiny):
    _, nets, _ = tiny
    torch.manual_seed(3)
    total, parts, _, _ = tcg.generator_loss(nets, batch(seed=1), batch(seed=2), sigma=0.0, lam=10.0, gamma=1.0)
    expect = parts["g_adv"] + 10.0 * parts["cycle"] + 1.0 * parts["g_adv_m"]
    assert torch.allclose(total, expect)


def test_discriminator_step_does_not_touch_generators(tiny):
    m, nets, _ = tiny
    fake = m.G_AB(batch()).detach()
    loss = tcg.discriminator_loss(m.D_B, batch(seed=5), fake, sigma=0.5)
    loss.backward()
    assert all(p.grad is None for p in m.G_AB.parameters())
    assert any(p.grad is not None for p in m.D_B.parameters())


def test_noise_is_non_negative_and_optional():
    x = batch()
    assert torch.equal(tcg.noisy(x, 0.0), x)
    y = tcg.noisy(x, 1.0)
    assert (y >= x).all() and (y > x).float().mean() > 0.9


def _domain(tmp_path, name, seed, poly):
    rng = np.random.default_rng(seed)
    w = np.zeros((12, 4, 16, 84), np.uint8)
    for k in range(12):
        for s in range(0, 64, 4):
            for p in rng.choice(np.arange(30, 60), size=poly, replace=False):
                w[k, s // 16, s % 16, p] = 2
    split = np.array([0] * 9 + [1] * 3, np.int8)
    song = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    return str(save_npz(GenreData(name, w, song, split, ["a", "b", "c", "d"]), tmp_path / f"{name}.npz"))


def test_trainers_end_to_end_with_resume(tmp_path):
    a, b = _domain(tmp_path, "alpha", 0, 1), _domain(tmp_path, "beta", 1, 4)
    out = tmp_path / "cg"
    common = ["--domain-a", a, "--domain-b", b, "--out", str(out), "--preset", "tiny", "--batch", "2",
              "--checkpoint-every", "2", "--log-every", "1", "--quiet", "--threads", "1"]
    assert tcg.main(common + ["--steps", "2"]) == 0
    tensors, card = load_checkpoint(out / "last.safetensors")
    assert card["step"] == 2 and card["domains"] == ["alpha", "beta"] and card["config"]["ngf"] == 4
    assert {k.split(".")[0] for k in tensors} >= {"G_AB", "G_BA", "D_A", "D_B", "D_Am", "D_Bm", "opt_G_AB"}
    assert card["density_range"]["beta"][0] > card["density_range"]["alpha"][1]
    assert tcg.main(common + ["--steps", "3"]) == 0
    _, card = load_checkpoint(out / "last.safetensors")
    rows = read_jsonl(out / "log.jsonl")
    assert card["step"] == 3 and [r["step"] for r in rows] == [1, 2, 3]
    assert all({"g_loss", "cycle", "d_am_loss", "wall_s"} <= set(r) for r in rows)
    ship = tcg.export_generators(out / "last.safetensors", tmp_path / "cyclegan_alpha_beta.safetensors")
    shipped, scard = load_checkpoint(ship)
    assert {k.split(".")[0] for k in shipped} == {"G_AB", "G_BA"}
    assert all(v.dtype == torch.float16 for v in shipped.values())
    assert json.loads(ship.with_suffix(".json").read_text())["step"] == 3
    # a fine-tune from the shipped generators with the melody loss
    tuned = tmp_path / "tuned"
    assert tcg.main(common[:4] + ["--out", str(tuned)] + common[6:] + ["--steps", "1", "--init-from", str(ship),
                                                                       "--melody-weight", "2"]) == 0
    tt, tcard = load_checkpoint(tuned / "last.safetensors")
    assert tcard["melody_weight"] == 2.0 and tcard["init_from"] == str(ship)
    assert "melody" in read_jsonl(tuned / "log.jsonl")[-1]
    with pytest.raises(Exception, match="not a 'default' CycleGAN"):
        tcg.main(common[:4] + ["--out", str(tmp_path / "x")] + common[6:8] + ["--preset", "default", "--steps", "1",
                                                                             "--init-from", str(ship)])

    cout = tmp_path / "clf"
    assert tclf.main(["--domain-a", a, "--domain-b", b, "--out", str(cout), "--steps", "30", "--width", "8",
                      "--batch", "8", "--lr", "2e-3", "--checkpoint-every", "30", "--log-every", "1", "--quiet", "--threads", "1"]) == 0
    _, ccard = load_checkpoint(cout / "last.safetensors")
    assert ccard["classes"] == ["alpha", "beta"] and ccard["step"] == 30
    losses = [r["loss"] for r in read_jsonl(cout / "log.jsonl") if "loss" in r]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])   # one voice against four: it learns
    assert 0.0 <= ccard["test"]["acc"] <= 1.0 and len(ccard["test"]["acc_per_class"]) == 2
    assert (cout / "best.safetensors").exists()
    # the defaults fight the register shortcut: centring, transposition, random-note controls
    assert ccard["config"]["register_norm"] is True and ccard["transpose"] == 12 and ccard["controls"] == 1.0
    shipped = tclf.export_classifier(cout / "last.safetensors", tmp_path / "classifier_alpha_beta.safetensors",
                                     extra={"figures": {"held_out": 1.0}})
    st, sc = load_checkpoint(shipped)
    assert all(v.dtype == torch.float16 for v in st.values()) and sc["figures"] == {"held_out": 1.0}


def test_torchrun_two_processes_gloo(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    a, b = _domain(tmp_path, "alpha", 0, 1), _domain(tmp_path, "beta", 1, 4)
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29541",
           "-m", "composer.training.cyclegan", "--domain-a", a, "--domain-b", b, "--preset", "tiny",
           "--batch", "2", "--steps", "2", "--out", str(out), "--quiet", "--log-every", "1", "--threads", "1"]
    r = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads((out / "last.json").read_text())
    assert card["step"] == 2 and card["batch"] == 4 and "x2" in card["trained_on"]


def test_pitch_coordinates_let_the_discriminator_hear_register():
    """Without coordinates a PatchGAN scores a chord the same in any octave (inside the
    roll); with them it can tell a bass register from a treble one."""
    from composer.models.cyclegan import CycleGANConfig
    low, high = torch.zeros(1, 1, 64, 84), torch.zeros(1, 1, 64, 84)
    low[..., ::4, [20, 24, 27]] = 1
    high[..., ::4, [56, 60, 63]] = 1
    torch.manual_seed(0)
    plain = Discriminator(get_config("tiny", coords=False))
    torch.manual_seed(0)
    coord = Discriminator(get_config("tiny", coords=True))
    with torch.no_grad():
        p_low, p_high = plain(low), plain(high)
        c_low, c_high = coord(low), coord(high)
    # the same patch scores, shifted by 9 columns (36 pitches / stride 4), without coordinates
    assert torch.allclose(p_low[..., 2:8], p_high[..., 11:17], atol=1e-5)
    assert not torch.allclose(c_low[..., 2:8], c_high[..., 11:17], atol=1e-3)
    assert CycleGANConfig.from_dict({"ngf": 4}).coords is False      # cards from before the channel
    assert get_config("default").coords and not get_config("paper").coords


def test_input_skip_starts_the_generator_near_the_identity():
    torch.manual_seed(0)
    x = batch(4)
    with torch.no_grad():
        y = Generator(get_config("tiny", skip=3.0))(x)
        z = Generator(get_config("tiny", skip=0.0))(x)
    agree = ((y > 0.5) == (x > 0.5)).float().mean()
    assert agree > 0.97 and ((y > 0.5) & (x > 0.5)).sum() > 0.9 * x.sum()
    assert ((z > 0.5) & (x > 0.5)).sum() < 0.9 * x.sum()      # the paper's generator starts anywhere


def test_register_centring_makes_the_classifier_deaf_to_transposition():
    """A window and the same window a fifth or an octave up reach the first layer identical."""
    from composer.models.classifier import centre_register
    x = torch.zeros(1, 1, 64, 84)
    x[..., ::4, [20, 24, 27, 32]] = 1
    x[..., 2::4, 30] = 1
    torch.manual_seed(0)
    norm = GenreClassifier(ClassifierConfig(width=4, register_norm=True)).eval()
    torch.manual_seed(0)
    plain = GenreClassifier(ClassifierConfig(width=4, register_norm=False)).eval()
    with torch.no_grad():
        for shift in (5, 12, -7):
            y = torch.roll(x, shift, dims=-1)
            assert torch.equal(centre_register(x, 42), centre_register(y, 42))
            assert torch.allclose(norm(x), norm(y))
            assert not torch.allclose(plain(x), plain(y), atol=1e-4)
    c = centre_register(x, 42)[0, 0]
    on = torch.nonzero(c.sum(0)).flatten().float()
    assert abs(float((c.sum(0)[on.long()] * on).sum() / c.sum()) - 42) <= 0.5
    assert torch.equal(centre_register(torch.zeros(1, 1, 64, 84), 42), torch.zeros(1, 1, 64, 84))
    assert ClassifierConfig.from_dict({"width": 64}).register_norm is False   # cards from before


def test_transposed_batches_stay_in_range_and_move():
    rng = np.random.default_rng(0)
    w = np.zeros((20, 4, 16, 84), bool)
    w[:10, :, ::4, 2] = True            # at the bottom: may only go up
    w[10:, :, ::4, 80] = True           # near the top: at most 3 up
    x = tclf.transposed_batch(w, 64, rng, 12, "cpu")
    pitch = x[:, 0].sum(1).argmax(1)
    assert x.sum() == 64 * 16 and pitch.min() >= 0 and pitch.max() <= 83
    assert len(set(pitch.tolist())) > 5                     # it does transpose
    same = tclf.transposed_batch(w, 8, np.random.default_rng(1), 0, "cpu")
    assert set(same[:, 0].sum(1).argmax(1).tolist()) <= {2, 80}


def test_random_note_controls_match_the_register_and_nothing_else():
    from composer.music.genres import NoteStats, random_note_windows, repitched_windows, transpose_windows
    rng = np.random.default_rng(0)
    w = np.zeros((30, 4, 16, 84), bool)
    for k in range(30):
        for s in range(0, 64, 4):
            w[k, s // 16, s % 16:s % 16 + 4, 40 + (s // 4 + k) % 8] = True
    st = NoteStats.of(w)
    r = random_note_windows(st, 200, rng)
    used = np.flatnonzero(r.any(axis=(0, 1, 2)))
    assert set(used) <= set(range(40, 48)) and r.shape == (200, 4, 16, 84)
    rp = repitched_windows(w, st, rng)
    assert np.array_equal(rp.any(-1), w.any(-1))             # the rhythm kept: same sounding steps
    assert not np.array_equal(rp, w)
    assert len(transpose_windows(w, 30)) == 30 and len(transpose_windows(w, 40)) == 0   # 47 + 40 > 83


def test_melody_loss_wants_the_top_line_kept_and_nothing_above():
    x = torch.zeros(1, 1, 64, 84)
    x[..., 40] = 1                          # the tune
    x[..., ::4, 28] = 1                     # an accompaniment below it
    keep = x * 0.98 + 0.01
    lose = keep.clone()
    lose[..., 40] = 0.01                    # the tune dropped
    over = keep.clone()
    over[..., 50] = 0.99                    # a new line above the tune
    below = keep.clone()
    below[..., 20] = 0.99                   # new notes below it: not the melody loss's business
    l_keep = float(tcg.melody_loss(x, keep))
    assert l_keep < 0.05
    assert float(tcg.melody_loss(x, lose)) > 1.0 and float(tcg.melody_loss(x, over)) > l_keep + 0.05
    assert float(tcg.melody_loss(x, below)) == pytest.approx(l_keep, abs=1e-6)
    m = CycleGAN(get_config("tiny"))
    nets = {k: getattr(m, k) for k in m.NETS}
    _, parts, _, _ = tcg.generator_loss(nets, batch(seed=1), batch(seed=2), sigma=0.0, lam=10.0, gamma=1.0, mu=2.0)
    assert "melody" in parts and torch.allclose(
        parts["g_loss"], parts["g_adv"] + 10.0 * parts["cycle"] + parts["g_adv_m"] + 2.0 * parts["melody"])
    _, plain, _, _ = tcg.generator_loss(nets, batch(seed=1), batch(seed=2), sigma=0.0, lam=10.0, gamma=1.0)
    assert "melody" not in plain
