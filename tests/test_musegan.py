"""MuseGAN: batched model, cell independence, WGAN-GP trainer (incl. 2-process DDP), checkpoints, generation."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from composer.api import musegan as mg
from composer.errors import CheckpointError
from composer.models.musegan import Critic, Generator, get_config, sample_latents
from composer.training import musegan as trainer

ROOT = Path(__file__).resolve().parent.parent
RANGES = ((60, 81), (52, 74), (46, 69), (36, 66))


def synthetic_npz(path: Path, songs: int = 6, bars: int = 6, seed: int = 0) -> Path:
    """Chorale-shaped cache: 4 monophonic voices of quarter notes inside the Bach ranges."""
    rng = np.random.default_rng(seed)
    codes = np.zeros((4, songs * bars, 16, 84), dtype=np.uint8)
    for v, (lo, hi) in enumerate(RANGES):
        for b in range(songs * bars):
            for q in range(4):
                p = rng.integers(lo + 3, hi - 3) - 24
                codes[v, b, 4 * q, p] = 2
                codes[v, b, 4 * q + 1:4 * q + 4, p] = 1
    np.savez(path, codes=codes, song_start=np.arange(songs) * bars, song_bars=np.full(songs, bars),
             split=np.array([0] * (songs - 2) + [1, 1], dtype=np.int8), names=np.array([f"s{i}" for i in range(songs)]),
             programs=np.array([40, 41, 42, 43]), voices=np.array(["S", "A", "T", "B"]), version=np.array(1))
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return synthetic_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def test_shapes_and_range():
    cfg = get_config("tiny")
    G, C = Generator(cfg), Critic(cfg)
    z = sample_latents(3, cfg)
    x = G(**z)
    assert x.shape == (3, 4, cfg.n_bars, 16, 84)
    assert x.min() >= -1 and x.max() <= 1
    assert C(x).shape == (3,)
    for order in ("bars_first", "pitch_first"):
        cfg4 = get_config("tiny", n_bars=4, critic_order=order)
        assert Critic(cfg4)(Generator(cfg4)(**sample_latents(2, cfg4))).shape == (2,)


def test_seed_preset_has_seed_sizes():
    cfg = get_config("seed")
    assert (cfg.z_dim, cfg.temporal_hidden, cfg.critic_hidden, cfg.critic_fc, cfg.n_bars) == (32, 1024, 128, 1024, 2)
    assert get_config("default").n_bars == 4


def _trained_ish(cfg):
    """A generator whose BatchNorm statistics are not the identity, in eval mode."""
    torch.manual_seed(0)
    G = Generator(cfg)
    with torch.no_grad():
        G.train()
        for _ in range(3):
            G(**sample_latents(16, cfg))
    return G.eval()


@pytest.mark.parametrize("preset", ["tiny", "tiny_categorical"])
def test_changing_one_grid_cell_changes_only_that_track_and_bar(preset):
    cfg = get_config(preset, n_bars=4)
    G = _trained_ish(cfg)
    z = sample_latents(2, cfg)
    with torch.no_grad():
        grid = G.expand_latents(**z)
        assert grid.shape == (2, 4, 4, 4 * cfg.z_dim)
        base = G.decode(grid)
        edited = grid.clone()
        # sample 1, tenor, bar 3 (the categorical output moves only when an argmax flips: a big edit)
        edited[1, 2, 3] += torch.randn(4 * cfg.z_dim) * (30 if cfg.output == "categorical" else 3)
        out = G.decode(edited)
    changed = (out - base).abs().amax(dim=(3, 4)) > 1e-6   # (batch, tracks, bars)
    expected = torch.zeros_like(changed)
    expected[1, 2, 3] = True
    assert torch.equal(changed, expected)


def test_latent_roles():
    cfg = get_config("tiny", n_bars=4)
    G = _trained_ish(cfg)
    z = sample_latents(1, cfg)
    with torch.no_grad():
        base = G.expand_latents(**z)
        z2 = dict(z, melody=z["melody"].clone())
        z2["melody"][0, 1] += 2.0                      # alto's melody: only alto cells move
        d = (G.expand_latents(**z2) - base).abs().amax(-1)[0]
        assert d[1].gt(0).any() and d[[0, 2, 3]].eq(0).all()
        z3 = dict(z, chords=z["chords"] + 2.0)        # chords: every track moves
        d = (G.expand_latents(**z3) - base).abs().amax(-1)[0]
        assert d.gt(0).any(dim=1).all()


def test_categorical_output_is_one_sung_line_per_voice_in_range():
    from composer.music.pianoroll import float_to_codes
    cfg = get_config("tiny_categorical", n_bars=4)
    G = _trained_ish(cfg)
    with torch.no_grad():
        x = G(**sample_latents(16, cfg)).numpy()
    assert set(np.unique(x).tolist()) <= {-1.0, 0.0, 1.0}
    sounding = x > -1                                           # (b, tracks, bars, steps, pitches)
    assert sounding.sum(-1).max() <= 1                          # at most one pitch per voice and step
    for t, (lo, hi) in enumerate(RANGES):
        p = np.nonzero(sounding[:, t])[-1] + 24
        assert len(p) and p.min() >= lo and p.max() <= hi
    # a HOLD (0) inside a bar only continues the same pitch
    hold = x[..., 1:, :] == 0
    assert (sounding[..., :-1, :][hold]).all()
    # eval mode's gather gives what the training recurrence gives (forward values)
    G2 = Generator(cfg)
    G2.load_state_dict(G.state_dict())
    G2.train()
    for m in G2.modules():  # BatchNorm as in eval, the straight-through path otherwise
        if hasattr(m, "running_mean"):
            m.training = False
    with torch.no_grad():
        z = sample_latents(16, cfg, generator=torch.Generator().manual_seed(3))
        assert torch.allclose(G2(**z), G(**z), atol=1e-5)
    # the raw output is a clean roll: the decoder returns it unchanged
    assert np.array_equal(float_to_codes(x, monophonic=True).astype(np.float32) - 1, x)


def test_categorical_output_passes_gradients_straight_through():
    cfg = get_config("tiny_categorical")
    G = Generator(cfg).train()
    x = G(**sample_latents(4, cfg))
    (x * torch.randn_like(x)).sum().backward()
    assert G.head.weight.grad.abs().sum() > 0 and G.fc.lin.weight.grad.abs().sum() > 0


def test_init_categorical_generator_from_a_tanh_checkpoint(npz, tmp_path):
    src = tmp_path / "tanh"
    assert run_trainer(["--data", str(npz), "--preset", "tiny", "--batch", "4", "--out", str(src), "--steps", "1",
                        "--critic-steps", "1"]) == 0
    dst = tmp_path / "cat"
    assert run_trainer(["--data", str(npz), "--preset", "tiny_categorical", "--batch", "4", "--out", str(dst),
                        "--steps", "1", "--critic-steps", "1",
                        "--init-generator", str(src / "last.safetensors")]) == 0
    card = json.loads((dst / "last.json").read_text())
    assert card["config"]["output"] == "categorical" and card["init"]["step"] == 1
    model = mg.load_generator(dst / "last.safetensors")
    codes = mg.generate(model, mg.random_latents(model, 3, seed=1))
    assert codes.shape == (3, 4, 2, 16, 84)


def test_gradient_penalty_of_linear_critic():
    w = torch.randn(4, 2, 16, 84)
    w = w / w.norm() * 2.0                              # |grad| = 2 everywhere -> gp = (2 - 1)^2
    critic = lambda x: (x * w).flatten(1).sum(1)        # noqa: E731
    real, fake = torch.rand(5, 4, 2, 16, 84), torch.rand(5, 4, 2, 16, 84)
    assert trainer.gradient_penalty(critic, real, fake).item() == pytest.approx(1.0, rel=1e-4)


def test_train_step_updates_both_networks():
    cfg = get_config("tiny")
    G, C = Generator(cfg), Critic(cfg)
    og = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.9))
    oc = torch.optim.Adam(C.parameters(), 1e-3, betas=(0.5, 0.9))
    g0 = [p.clone() for p in G.parameters()]
    c0 = [p.clone() for p in C.parameters()]
    real = torch.rand(8, 4, cfg.n_bars, 16, 84) * 2 - 1
    out = trainer.train_step(G, C, og, oc, lambda: real, cfg, 8, torch.device("cpu"))
    assert all(torch.isfinite(v) for v in out.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(c0, C.parameters()))
    assert all(p.requires_grad for p in C.parameters())


def test_windows_transpose_within_ranges(npz):
    w = trainer.Windows(npz, 4, "train", hop=1)
    assert len(w) == 4 * (6 - 4 + 1)
    x = w.sample(64, np.random.default_rng(0))
    assert x.shape == (64, 4, 4, 16, 84)
    for v, (lo, hi) in enumerate(RANGES):
        p = np.flatnonzero((x[:, v] > 0).any(axis=(0, 1, 2))) + 24
        assert p.min() >= lo and p.max() <= hi
    assert (w.shift_hi > 0).any() and (w.shift_lo < 0).any()
    valid = trainer.Windows(npz, 2, "valid", hop=2)
    assert len(valid) == 2 * 3


def run_trainer(args):
    return trainer.main(args + ["--quiet", "--threads", "1"])


def test_trainer_checkpoints_resumes_and_logs(npz, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(npz), "--preset", "tiny", "--batch", "4", "--out", str(out), "--checkpoint-every", "2",
              "--log-every", "1", "--critic-steps", "2"]
    assert run_trainer(common + ["--steps", "2"]) == 0
    card = json.loads((out / "last.json").read_text())
    assert card["step"] == 2 and card["config"]["n_bars"] == 2 and "trained_on" in card
    assert run_trainer(common + ["--steps", "3"]) == 0   # resumes at 2
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"step", "g_loss", "c_loss", "gp", "wall_s"} <= set(rows[0])
    assert json.loads((out / "last.json").read_text())["step"] == 3
    # the checkpoint is plain safetensors: it loads without pickle, as the API's generator
    model = mg.load_generator(out / "last.safetensors")
    codes = mg.generate(model, mg.random_latents(model, 2, seed=1))
    assert codes.shape == (2, 4, 2, 16, 84)
    assert ((codes > 0).sum(-1) <= 1).all()             # monophonic voices
    # export: generator only, float16
    from safetensors.torch import load_file
    dst = trainer.export_generator(out / "last.safetensors", tmp_path / "ship" / "musegan.safetensors",
                                   {"metrics": {"qn": 0.5}})
    t = load_file(str(dst))
    assert all(v.dtype == torch.float16 for v in t.values() if v.is_floating_point())
    assert not any(k.startswith(("C.", "opt_")) for k in t)
    assert json.loads(dst.with_suffix(".json").read_text())["metrics"] == {"qn": 0.5}
    shipped = mg.load_generator(dst)
    assert mg.generate(shipped, mg.random_latents(shipped, 1)).shape == (1, 4, 2, 16, 84)


def test_torchrun_two_processes_gloo(npz, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "composer.training.musegan", "--data", str(npz), "--preset", "tiny", "--batch", "4",
           "--steps", "2", "--critic-steps", "1", "--out", str(out), "--quiet", "--log-every", "1"]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "x2" in r.stderr                              # both processes joined
    card = json.loads((out / "last.json").read_text())
    assert card["step"] == 2 and card["batch"] == 8 and "x2" in card["trained_on"]


def test_load_generator_errors(tmp_path):
    with pytest.raises(CheckpointError):
        mg.load_generator(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    bad.with_suffix(".json").write_text(json.dumps({"config": get_config("tiny").to_dict()}))
    with pytest.raises(CheckpointError):
        mg.load_generator(bad)


def test_slerp_and_random_latents():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert np.allclose(mg.slerp(a, b, 0.0), a) and np.allclose(mg.slerp(a, b, 1.0), b)
    assert np.allclose(mg.slerp(a, b, 0.5), [[2 ** -0.5, 2 ** -0.5]])   # stays on the circle (lerp would not)
    cfg = get_config("tiny")
    model = mg.LoadedGenerator(Generator(cfg).eval(), cfg, {}, None, torch.device("cpu"))
    z = mg.random_latents(model, 3, seed=0)
    # randn, not rand: about half the values are negative
    assert 0.3 < (z["groove"] < 0).mean() < 0.7
    assert np.abs(mg.random_latents(model, 3, seed=0, truncation=0.5)["style"]).max() <= 0.5


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    cfg = get_config("tiny")
    G = _trained_ish(cfg)
    from composer.training.loop import save_checkpoint
    path = tmp_path_factory.mktemp("ckpt") / "musegan.safetensors"
    save_checkpoint(path, G.state_dict(), {"model": "musegan", "preset": "tiny", "config": cfg.to_dict()})
    return path


def test_generate_cli_writes_files_and_reproduces_from_latents(tiny_checkpoint, tmp_path):
    from composer.api.compose import LATENTS_FORMAT, ComposeState
    from composer.cli import musegan as generate
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert generate.main(["--pieces", "2", "--seed", "3", "--out", str(a), "--checkpoint", str(tiny_checkpoint),
                          "--truncation", "2"]) == 0
    for stem in ("piece_01", "piece_02", "song"):
        assert (a / f"{stem}.mid").stat().st_size > 0
        assert (a / f"{stem}.png").stat().st_size > 0
    saved = json.loads((a / "latents.json").read_text())
    assert saved["format"] == LATENTS_FORMAT and saved["version"] == 1   # the Compose tab's one format
    st = ComposeState.from_json((a / "latents.json").read_text())
    assert st.n_bars == 2 * st.bars_per_phrase and st.truncation == 2.0
    assert max(np.abs(x).max() for anchor in st.anchors for x in anchor.values()) <= 2.0
    # the song and each piece render again note for note from their latents
    assert generate.main(["--latents", str(a / "latents.json"), "--out", str(b), "--checkpoint",
                          str(tiny_checkpoint), "--no-audio"]) == 0
    assert (a / "song.mid").read_bytes() == (b / "song.mid").read_bytes()
    assert generate.main(["--latents", str(a / "piece_02.json"), "--out", str(c), "--checkpoint",
                          str(tiny_checkpoint), "--no-audio"]) == 0
    assert (a / "piece_02.mid").read_bytes() == (c / "song.mid").read_bytes()


def test_old_generate_latents_still_load(tiny_checkpoint):
    from composer.api.compose import ComposeState, load_composer
    comp = load_composer(str(tiny_checkpoint))
    z, T = comp.cfg.z_dim, comp.cfg.n_tracks
    rng = np.random.default_rng(0)
    old = {"seed": 3, "truncation": 2.0, "blend": 1, "tempo": 80.0, "checkpoint": "musegan.safetensors", "n_bars": comp.cfg.n_bars,
           "chords": rng.standard_normal((1, z)).tolist(), "style": rng.standard_normal((1, z)).tolist(),
           "melody": rng.standard_normal((1, T, z)).tolist(), "groove": rng.standard_normal((1, T, z)).tolist()}
    st = ComposeState.from_json(json.dumps(old))
    assert st.n_bars == comp.cfg.n_bars and st.seed == 3 and st.tempo == 80.0
    np.testing.assert_allclose(st.anchors[0]["melody"], np.asarray(old["melody"][0], np.float32))
    assert len(comp.midi(st).instruments) == T


def test_bench_functions_run():
    from composer.bench import musegan as bench_musegan
    assert bench_musegan.train_iter_seconds("tiny", iters=1, batch=4) > 0
    assert bench_musegan.generate_ms("tiny", repeats=2) > 0


def test_eval_cli_compares_with_bach_and_ships_the_chosen_truncation(npz, tmp_path, capsys):
    from composer.evaluation import musegan as ev
    run = tmp_path / "run"
    assert run_trainer(["--data", str(npz), "--preset", "tiny", "--batch", "4", "--out", str(run), "--steps", "1",
                        "--critic-steps", "1"]) == 0
    ckpt = str(run / "last.safetensors")
    assert ev.main(["--checkpoint", ckpt, "--data", str(npz), "--n", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for col in ev.COLUMNS:
        assert set(ev.KEYS) <= set(out[col])
        assert out["bar_met"][col].endswith("/%d" % len(out["bar"]))
    # the reference passes every row measured against itself (the synthetic data is no chorale:
    # the absolute rows may fail)
    from composer.music import metrics
    assert all(out["bar"][k]["held_out_bach"] for k in metrics.BAR_KEYS + ("nn_distance", "diversity"))
    assert out["training_bach"]["copied_bars"] == 1.0 and out["training_bach"]["nn_distance"] == 0.0
    assert out["truncation"] is None
    # 'auto' picks the truncation closest to the *training* windows and writes the search into the card
    dst = tmp_path / "ship" / "musegan.safetensors"
    assert ev.main(["--checkpoint", ckpt, "--data", str(npz), "--n", "30", "--truncation", "auto",
                    "--export", str(dst), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    card = json.loads(dst.with_suffix(".json").read_text())
    grid = card["metrics"]["truncation_search"]["grid"]
    assert set(grid) == {str(t) for t in ev.TRUNCATION_GRID}
    assert str(card["truncation"]) == min(grid, key=grid.get) and shown["truncation"] == card["truncation"]
    assert mg.resolve_truncation(mg.load_generator(dst), None) == card["truncation"]
    with pytest.raises(SystemExit):  # argparse: a one-line usage error
        ev.main(["--checkpoint", ckpt, "--data", str(npz), "--truncation", "wide"])


def test_critic_layers_match_torch_conv3d_through_the_gradient_penalty():
    """The critic's own Conv3d/LeakyReLU give nn.Conv3d's scores and penalty gradients."""
    import torch.nn as nn
    from composer.models.musegan import CriticConv3d, CriticLeakyReLU

    torch.manual_seed(0)

    def net(conv, act):
        return nn.Sequential(conv(4, 8, (2, 1, 1)), act(), conv(8, 8, (1, 1, 12), (1, 1, 12)), act(),
                             conv(8, 16, (1, 4, 1), (1, 2, 1), padding=(0, 1, 0)), act(), nn.Flatten(),
                             nn.Linear(16 * 8 * 7, 1)).to(memory_format=torch.channels_last_3d)

    ref = net(nn.Conv3d, lambda: nn.LeakyReLU(0.3))
    ours = net(CriticConv3d, lambda: CriticLeakyReLU(0.3))
    ours.load_state_dict(ref.state_dict())
    real, fake = torch.rand(5, 4, 2, 16, 84) * 2 - 1, torch.rand(5, 4, 2, 16, 84) * 2 - 1

    def grads(model):
        model.zero_grad()
        gp = trainer.gradient_penalty(model, real, fake)
        loss = model(fake).mean() - model(real).mean() + 10 * gp
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    torch.manual_seed(1)
    loss_ref, g_ref = grads(ref)
    torch.manual_seed(1)
    loss_ours, g_ours = grads(ours)
    assert torch.allclose(loss_ref, loss_ours, rtol=1e-5)
    for a, b in zip(g_ref, g_ours):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in g_ours[:-1])  # (the last bias cancels in fake - real)
    # the critic itself, with the penalty's weight_grads=False pass, through one train step
    cfg = get_config("tiny")
    C = Critic(cfg)
    x = torch.rand(3, 4, 2, 16, 84, requires_grad=True)
    (g,) = torch.autograd.grad(C(x, weight_grads=False).sum(), x, create_graph=True)
    g.square().sum().backward()
    # every weight gets the penalty's gradient; biases do not enter an input gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in C.named_parameters() if n.endswith("weight"))
    assert all(p.grad is None or not p.grad.any() for n, p in C.named_parameters() if n.endswith("bias"))


def _chorale_float(chords, length=8, bars=1):
    """SATB chords (MIDI) of ``length`` steps each as a -1/0/1 tensor (1, 4, bars, 16, 84)."""
    x = -torch.ones(1, 4, bars * 16, 84)
    for k, chord in enumerate(chords):
        for t, p in enumerate(chord):
            x[0, t, k * length, p - 24] = 1
            x[0, t, k * length + 1:(k + 1) * length, p - 24] = 0
    return x.view(1, 4, bars, 16, 84)


def test_voice_stats_hear_parallels_motion_and_harmony():
    held = trainer.voice_stats(_chorale_float([(72, 67, 64, 48), (72, 67, 64, 48)]))
    moving = trainer.voice_stats(_chorale_float([(72, 67, 64, 48), (74, 69, 65, 50)]))
    assert held["parallels"].item() == 0
    assert moving["parallels"].item() > 0                   # S-B octaves and A-B fifths, C -> D
    # every step pair moves by some interval or stays: motion sums to 1 per voice
    assert torch.allclose(held["motion"].sum(-1), torch.ones(4))
    assert held["motion"][:, 12].eq(1).all()                # index 12 = no motion
    assert moving["motion"][0, 14] > 0                       # the soprano's whole step up
    # S-A: C over G is a fourth (5 semitones, upper minus lower)
    assert held["harmony"][0, 5].item() == pytest.approx(1.0)
    assert torch.allclose(held["onsets"], torch.full((4,), 2 / 16))


def test_voice_loss_reaches_the_generator():
    cfg = get_config("tiny_categorical")
    G = Generator(cfg).train()
    fake = G(**sample_latents(4, cfg))
    real = _chorale_float([(72, 67, 64, 48), (74, 69, 65, 50)] * 2, bars=2).expand(4, -1, -1, -1, -1)
    loss = trainer.voice_loss(fake, real, 1.0, 1.0)
    loss.backward()
    assert loss.item() > 0 and G.head.weight.grad.abs().sum() > 0


def test_baselines_keep_bach_rhythm_and_change_pitches(npz):
    from composer.evaluation import musegan as ev
    from composer.music import metrics
    held = ev.reference_codes(4, str(npz), "valid")
    rnd = ev.random_pitch_baseline(held, seed=1)
    tr = ev.transposed_voices_baseline(held, seed=1)
    for base in (rnd, tr):
        assert base.shape == held.shape
        assert np.array_equal(metrics.note_length_hist(base), metrics.note_length_hist(held))
        assert not np.array_equal(base, held)
    assert metrics.range_ok(rnd) == 1.0
    pitch, onset = metrics.voice_lines(held)
    p2, o2 = metrics.voice_lines(rnd)
    assert np.array_equal(pitch >= 0, p2 >= 0) and np.array_equal(onset, o2)
    p3, _ = metrics.voice_lines(tr)
    d = (p3 - pitch)[pitch >= 0].reshape(-1)
    assert set(np.abs(d).tolist()) <= {1, 2, 3}


def test_onsets_learn_from_voice_terms_only_when_asked(npz, tmp_path):
    cfg = get_config("tiny_categorical", onset_grad="stats")
    G = Generator(cfg).train()
    fake = G(**sample_latents(4, cfg))
    assert G.last_onsets.shape == (4, 4, cfg.n_bars * 16)
    # the output level carries no onset gradient: the critic cannot push for onsets
    fake.sum().backward()
    assert G.head.weight.grad[..., -1].abs().sum() == 0
    G.zero_grad()
    fake = G(**sample_latents(4, cfg))
    real = _chorale_float([(72, 67, 64, 48), (74, 69, 65, 50)] * 2, bars=2).expand(4, -1, -1, -1, -1)
    trainer.voice_loss(fake, real, 1.0, 0.0, onsets=G.last_onsets).backward()
    assert G.head.weight.grad[..., -1].abs().sum() > 0
    out = tmp_path / "run"
    assert run_trainer(["--data", str(npz), "--preset", "tiny_categorical", "--batch", "4", "--out", str(out),
                        "--steps", "1", "--critic-steps", "1", "--mm-weight", "1", "--onset-grad", "stats"]) == 0
    assert json.loads((out / "last.json").read_text())["config"]["onset_grad"] == "stats"
