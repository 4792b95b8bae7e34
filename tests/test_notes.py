"""Note/chord models: causality, evaluation, seeded sampling, continuation, training and resume."""
import json
import math
import random
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from composer.api import notes as notes_api
from composer.models.notes import NotesConfig, build_model, dilations_for
from composer.music import tokens as T
from composer.training import notes as training

ROOT = Path(__file__).resolve().parent.parent


def _tiny(arch, vocab_size=40, context=16, seed=0):
    torch.manual_seed(seed)
    cfg = NotesConfig(arch=arch, vocab_size=vocab_size, context=context, embed=8, hidden=16, layers=1,
                      channels=8, skip=8, dilations=dilations_for(context), dropout=0.0)
    return build_model(cfg).eval()


@pytest.mark.parametrize("arch", ["lstm", "wavenet"])
def test_changing_a_future_token_leaves_earlier_outputs_unchanged(arch):
    model = _tiny(arch)
    x = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        y = model(x)
        for t in (0, 5, 15):
            x2 = x.clone()
            x2[:, t] = (x2[:, t] + 1) % 40
            y2 = model(x2)
            assert torch.allclose(y[:, :t], y2[:, :t], atol=1e-6)
            assert not torch.allclose(y[:, t], y2[:, t])


def test_bar_positions_of_tokens():
    toks = ["<s>", "n:60", "d:12", "n:62", "d:6", "r", "d:30"]
    # 3/4 (36 ticks, class 1), first onset on beat 3 (24 ticks in)
    assert T.position_ids(toks, 36, 24).tolist() == [120, 120, 96, 96, 102, 102, 96]
    # unknown metre: bars of 4/4 counted in the "other" class
    assert T.position_ids(toks, 0, 0).tolist() == [4 * 96 + x for x in (0, 0, 12, 12, 18, 18, 0)]


@pytest.mark.parametrize("arch", ["lstm", "wavenet"])
def test_bar_positions_are_read_causally(arch):
    torch.manual_seed(0)
    cfg = NotesConfig(arch=arch, vocab_size=40, context=16, embed=8, hidden=16, layers=1, channels=8, skip=8,
                      dilations=dilations_for(16), dropout=0.0, bar_pos=True, n_pos=T.N_POS_IDS)
    model = build_model(cfg).eval()
    x = torch.randint(0, 40, (2, 16))
    pos = torch.randint(0, T.N_POS_IDS, (2, 16))
    with torch.no_grad():
        y = model(x, pos)
        pos2 = pos.clone()
        pos2[:, 7] = (pos2[:, 7] + 1) % T.N_POS_IDS
        y2 = model(x, pos2)
        assert torch.allclose(y[:, :7], y2[:, :7], atol=1e-6) and not torch.allclose(y[:, 7], y2[:, 7])
        assert torch.allclose(model.last_logits(x, pos), y[:, -1], atol=1e-5)
    with pytest.raises(ValueError):
        model(x)


def test_wavenet_receptive_field_is_the_context():
    model = _tiny("wavenet", context=16)
    assert model.config.receptive_field() == 16
    x = torch.randint(0, 40, (1, 40))
    with torch.no_grad():
        y = model(x)
        x2 = x.clone()
        x2[0, 10] = (x2[0, 10] + 1) % 40
        y2 = model(x2)
    assert not torch.allclose(y[0, 25], y2[0, 25])   # 15 tokens later: still seen
    assert torch.allclose(y[0, 26:], y2[0, 26:], atol=1e-6)  # 16 later: out of the context


class _Bigram(torch.nn.Module):
    """A 'model' that only looks at the current token: its windowed NLL must equal the exact
    bigram NLL over the whole stream if every token is scored exactly once."""

    def __init__(self, V):
        super().__init__()
        self.table = torch.randn(V, V)

    def forward(self, x):
        return self.table[x]


def test_evaluate_nll_scores_every_token_once():
    V = 12
    m = _Bigram(V)
    ids = np.random.default_rng(0).integers(0, V, 301)
    logp = torch.log_softmax(m.table, -1)
    exact = -float(np.mean([logp[a, b].item() for a, b in zip(ids[:-1], ids[1:])]))
    for context in (8, 16, 64, 1000):
        assert training.evaluate_nll(m, ids, context) == pytest.approx(exact, rel=1e-6)


def test_ngram_baselines_are_smoothed_and_bigram_beats_unigram_on_patterned_data():
    rng = np.random.default_rng(0)
    stream = np.tile([0, 1, 2, 3], 200)
    val = np.tile([0, 1, 2, 3], 20)
    val[5] = 7  # never seen in training: smoothing keeps the NLL finite
    b = training.ngram_baselines({"train": stream}, val, 8)
    assert math.isfinite(b["nll_bigram"]) and b["nll_bigram"] < b["nll_unigram"]
    assert rng is not None


def _fake_songs(n=40, seed=0):
    rng = random.Random(seed)
    songs = []
    for i in range(n):
        root = rng.choice([60, 62, 65, 67])
        scale = [0, 2, 4, 5, 7, 9, 11, 12]
        events = [((root + rng.choice(scale),), rng.choice([6, 12, 12, 24])) for _ in range(40)]
        songs.append(T.Song(f"song{i}", f"g{i}", "melody", T.tokens_from_events(events), 48, 12 * (i % 4)))
    return songs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Train a tiny WaveNet for a few steps on a small songs file, then resume it."""
    folder = tmp_path_factory.mktemp("notes")
    data = folder / "songs.json"
    T.save_songs(data, _fake_songs(), {"fake": 40})
    out = folder / "run"
    common = ["--arch", "wavenet", "--data", str(data), "--out", str(out), "--preset", "tiny", "--context", "16",
              "--batch", "8", "--eval-every", "10", "--log-every", "5", "--threads", "1", "--quiet",
              "--val-fraction", "0.25", "--transpose", "1"]
    assert training.main(common + ["--steps", "10"]) == 0
    first = training.load_model(out / "notes_wavenet")[1]
    assert training.main(common + ["--steps", "20"]) == 0
    return out, first


def test_training_logs_resumes_and_writes_a_model_card(tiny_run):
    out, first = tiny_run
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20]  # resumed at 10, not restarted
    assert all({"loss", "wall_s"} <= set(r) for r in train_rows)
    assert [r["step"] for r in evals] == [10, 20] and all("val" in r for r in evals)
    assert train_rows[-1]["wall_s"] >= train_rows[1]["wall_s"]
    model, card = training.load_model(out / "notes_wavenet")
    assert card["vocab"] == first["vocab"] and card["config"]["vocab_size"] == len(card["vocab"])
    assert card["dtype"] == "float16" and card["data"]["train_groups"] and card["data"]["val_groups"]
    assert "nll_bigram" in card["metrics"] and "fallbacks_val" in card["data"]
    resume = json.loads((out / "last.json").read_text())
    assert resume["step"] == 20 and not list(out.glob("*.pt"))


def test_sampling_is_reproducible_with_a_seed_and_follows_the_grammar(tiny_run):
    out, _ = tiny_run
    nm = notes_api.load(str(out / "notes_wavenet.safetensors"))
    prompt = nm.vocab.encode(T.parse_note_names("C4 D4 E4/0.5 F4/0.5 G4/2"))
    a = notes_api.sample_ids(nm, prompt, 96, temperature=1.2, top_k=10, top_p=0.9, seed=7)
    b = notes_api.sample_ids(nm, prompt, 96, temperature=1.2, top_k=10, top_p=0.9, seed=7)
    c = notes_api.sample_ids(nm, prompt, 96, temperature=1.2, top_k=10, top_p=0.9, seed=8)
    assert a == b and a != c
    kinds = [nm.vocab.kinds[i] for i in a]
    assert all(k == "dur" for k in kinds[1::2]) and all(k in ("note", "chord", "rest") for k in kinds[0::2])
    assert sum(nm.durations[i] for i in a[1::2]) == 96


def _prompt_midi(tempo=90):
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0)]
    inst = pretty_midi.Instrument(73, name="Flute")
    spq = 60 / tempo
    t = 1.0  # the prompt starts one quarter in: the continuation must still start at its end
    for p, q in [(67, 1), (69, 0.5), (71, 0.5), (72, 1), (74, 2), (72, 1.5)]:
        inst.notes.append(pretty_midi.Note(90, p, t * spq, (t + q) * spq))
        t += q
    pm.instruments.append(inst)
    return pm, t * spq


def test_continuation_starts_where_the_prompt_ends_and_lasts_the_bars(tiny_run):
    out, _ = tiny_run
    pm, end = _prompt_midi()
    res, seam, info = notes_api.continue_midi(pm, bars=2, model=str(out / "notes_wavenet.safetensors"),
                                              temperature=1.0, seed=3)
    assert seam == pytest.approx(end, abs=1e-6)
    assert info["bar_quarters"] == 3.0
    cont = res.instruments[-1]
    assert cont.name == "Continuation" and cont.program == 73
    assert res.instruments[0].notes[0].start == pm.instruments[0].notes[0].start  # prompt kept as it was
    new = info["tokens"].split()
    # the prompt ends at 7.5 quarters: finish that 3/4 bar (to 9), then 2 bars (to 15)
    assert T.tokens_length_quarters(new) == pytest.approx(7.5)
    spq = 60 / 90
    assert info["end_s"] == pytest.approx(15 * spq)
    starts = sorted(n.start for n in cont.notes)
    if new[0] != T.REST:
        assert starts[0] == pytest.approx(seam)
    assert all(seam - 1e-6 <= n.start and n.end <= 15 * spq + 1e-6 for n in cont.notes)
    again = notes_api.continue_midi(pm, bars=2, model=str(out / "notes_wavenet.safetensors"), seed=3)[2]
    assert again["tokens"] == info["tokens"]


def test_a_common_tonic_model_continues_in_the_prompts_key(tiny_run):
    """The tiny model is trained in C major / A minor: a prompt in G is moved up a fourth to C,
    continued, and the continuation moved back, so it equals the continuation of the same
    prompt written in C, transposed down a fourth."""
    out, _ = tiny_run
    path = str(out / "notes_wavenet.safetensors")
    nm = notes_api.load(path)
    assert nm.tonic == "key" and nm.card["data"]["tonic"] == "key"
    in_g = T.parse_note_names("G4 A4/0.5 B4/0.5 C5 D5 B4 G4 F#4/0.5 A4/0.5 G4/2")
    assert notes_api.prompt_key(in_g).name == "G major" and notes_api.model_shift(nm, in_g) == 5
    in_c = T.transpose_tokens(in_g, 5)
    assert notes_api.prompt_key(in_c).name == "C major" and notes_api.model_shift(nm, in_c) == 0
    a = notes_api.continue_tokens(in_g, 96, model=path, seed=4)
    b = notes_api.continue_tokens(in_c, 96, model=path, seed=4)
    assert a == T.transpose_tokens(b, -5) and T.tokens_length_quarters(a) == pytest.approx(8.0)
    pm = notes_api.prompt_from_text("G4 A4/0.5 B4/0.5 C5 D5 B4 G4 F#4/0.5 A4/0.5 G4/2")
    info = notes_api.continue_midi(pm, bars=1, model=path, seed=0)[2]
    assert info["key"] == "G major" and info["meter"] == "4/4" and info["key_shift"] == 5 and info["tonic"] == "key"


def test_training_data_moves_every_sequence_to_c_major_or_a_minor(tmp_path):
    data = tmp_path / "songs.json"
    T.save_songs(data, _fake_songs(24, seed=2), {})
    d = training.load_data(str(data), val_fraction=0.25, transpose=0, tonic="key")
    for s in d.train_songs + d.val_songs:
        assert T.tokens_key(s.tokens).name in ("C major", "A minor")
    plain = training.load_data(str(data), val_fraction=0.25, transpose=0, tonic="none")
    assert any(T.tokens_key(s.tokens).name not in ("C major", "A minor") for s in plain.train_songs)
    assert d.describe()["tonic"] == "key" and plain.describe()["tonic"] == "none"


def test_long_prompts_and_grid_prompts(tiny_run):
    out, _ = tiny_run
    path = str(out / "notes_wavenet.safetensors")
    long = notes_api.prompt_from_text(" ".join(["C4/0.5 E4/0.5 G4"] * 80))  # 240 tokens > context 16
    res, seam, info = notes_api.continue_midi(long, bars=1, model=path, seed=0)
    assert info["prompt_tokens"] > 200 and seam == pytest.approx(80 * 2 * 0.6)
    grid = np.zeros((3, 8), bool)
    grid[0, 0:2] = True   # a held note over two cells
    grid[1, 2] = grid[1, 3] = False
    grid[2, 4] = True
    pm = notes_api.prompt_from_grid(grid, [60, 64, 67], step_quarters=0.5, tempo=120)
    notes = sorted((n.start, n.end, n.pitch) for n in pm.instruments[0].notes)
    assert notes == [(0.0, 0.5, 60), (1.0, 1.25, 67)]


shipped = pytest.mark.skipif(not (ROOT / "checkpoints" / "notes_lstm.safetensors").exists()
                             or not (ROOT / "checkpoints" / "notes_wavenet.safetensors").exists(),
                             reason="shipped notes checkpoints not present")


@shipped
def test_shipped_models_beat_the_bigram_by_15_percent_and_share_tokens():
    cards = {a: json.loads((ROOT / "checkpoints" / f"notes_{a}.json").read_text()) for a in ("lstm", "wavenet")}
    assert cards["lstm"]["vocab"] == cards["wavenet"]["vocab"]
    assert cards["lstm"]["config"]["context"] == cards["wavenet"]["config"]["context"]
    for card in cards.values():
        m = card["metrics"]
        assert m["val_nll"] <= 0.85 * m["nll_bigram"], m
        assert card["dtype"] == "float16"


@shipped
def test_shipped_model_continues_typed_notes():
    pm = notes_api.prompt_from_text("E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2")
    for arch in ("lstm", "wavenet"):
        res, seam, info = notes_api.continue_midi(pm, bars=2, model=arch, temperature=0.9, seed=1)
        assert seam == pytest.approx(7 * 0.6) and info["new_notes"] > 0  # 7 quarters at 100 bpm
        assert T.tokens_length_quarters(info["tokens"].split()) == pytest.approx(9.0)  # to bar 2, + 2 bars


@shipped
def test_continue_tab_handler_and_cli(tmp_path):
    from composer.ui import continue_tab as tab
    png, wav, files, score, status, midi = tab.continue_melody(
        "Grid", None, None, "", tab.default_grid(), "WaveNet (dilated causal CNN)", 1, 1.0, 0, 0.95, 2, tab.SAME, 120)
    assert Path(png).exists() and Path(wav).exists() and len(files) == 3 and "1 bar added" in status
    assert "C major" in status and "4/4" in status  # the grid's motif C D E G | E C: the prompt's key and meter
    *outs, seed = tab.continue_another(
        "Grid", None, None, "", tab.default_grid(), "LSTM", 1, 1.0, 0, 0.95, 2, tab.SAME, 120)
    assert len(outs) == 6 and seed >= 1 and f"seed {seed}" in outs[4]
    from conftest import run_cli
    out = tmp_path / "cont.mid"
    r = run_cli("continue", "--notes", "C4 E4 G4/2", "--bars", "2", "--model", "lstm", "--seed", "5", "--out", out,
                "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["bars"] == 2 and out.exists()
    pm = pretty_midi.PrettyMIDI(str(out))
    assert pm.instruments[-1].name == "Continuation" and min(n.start for n in pm.instruments[-1].notes) >= 2.4 - 1e-6



def test_continue_cli_user_errors_are_one_line(tmp_path, capsys):
    from composer.cli.main import main
    assert main(["continue", "--notes", "C4 E4", "--bars", "99", "--out", str(tmp_path / "x.mid")]) == 1
    assert main(["continue", "--notes", "C4 H4", "--out", str(tmp_path / "x.mid")]) == 1
    assert main(["continue", "--notes", "C4", "--out", str(tmp_path / "x.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "bars" in err[0] and "H4" in err[1] and ".wav" in err[2]


def test_init_from_a_checkpoint_without_bar_positions(tmp_path):
    """A model trained without bar positions warm-starts one with them: same outputs at first
    (the new embedding starts at zero), then it trains on."""
    data = tmp_path / "songs.json"
    T.save_songs(data, _fake_songs(24, seed=3), {})
    common = ["--arch", "lstm", "--data", str(data), "--preset", "tiny", "--context", "16", "--batch", "4",
              "--eval-every", "5", "--threads", "1", "--quiet", "--val-fraction", "0.3", "--steps", "5"]
    assert training.main(common + ["--out", str(tmp_path / "a"), "--no-bar-pos"]) == 0
    src, card = training.load_model(tmp_path / "a" / "notes_lstm")
    assert not src.config.bar_pos
    model = build_model(NotesConfig.from_dict({**card["config"], "bar_pos": True, "n_pos": T.N_POS_IDS}))
    note = training.init_weights(model, tmp_path / "a" / "last.safetensors", card["vocab"])
    assert note["zeroed"] == ["embed.pos.weight"]
    x = torch.randint(0, len(card["vocab"]), (1, 12))
    with torch.no_grad():
        assert torch.allclose(model.eval()(x, torch.randint(0, T.N_POS_IDS, (1, 12))), src(x), atol=1e-3)
    assert training.main(common + ["--out", str(tmp_path / "b"), "--init-from", str(tmp_path / "a" / "last.safetensors")]) == 0
    card_b = json.loads((tmp_path / "b" / "notes_lstm.json").read_text())
    assert card_b["config"]["bar_pos"] and card_b["training"]["init_from"]["zeroed"] == ["embed.pos.weight"]


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    """Weights, Adam state, the batch sampler's and dropout's RNG all come back from
    last.safetensors: 10 + 10 resumed steps give the weights of 20 straight steps."""
    from safetensors.torch import load_file
    data = tmp_path / "songs.json"
    T.save_songs(data, _fake_songs(24, seed=1), {})
    common = ["--arch", "lstm", "--data", str(data), "--preset", "tiny", "--context", "16", "--batch", "4",
              "--dropout", "0.2", "--eval-every", "5", "--threads", "1", "--quiet", "--val-fraction", "0.3",
              "--transpose", "1", "--steps", "20"]
    assert training.main(common + ["--out", str(tmp_path / "a")]) == 0
    assert training.main(common + ["--out", str(tmp_path / "b"), "--stop-after", "10"]) == 0
    assert json.loads((tmp_path / "b" / "last.json").read_text())["step"] == 10
    assert training.main(common + ["--out", str(tmp_path / "b")]) == 0
    a, b = (load_file(str(tmp_path / x / "last.safetensors")) for x in "ab")
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith("model."):
            assert torch.equal(a[k], b[k]), k
