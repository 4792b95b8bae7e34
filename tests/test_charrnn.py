"""The ABC character LSTM: model, trainer, checkpoints, sampling controls, n-gram baseline, CLI."""
import json
import math
import re
from pathlib import Path

import pytest
import torch

from composer.api import charrnn as api
from composer.evaluation.charrnn import KneserNeyCharLM
from composer.models.charrnn import PRESETS, CharRNN, CharRNNConfig, Stepper
from composer.music.abc import AbcError
from composer.training import charrnn as trainer

ROOT = Path(__file__).resolve().parents[1]
TUNES = [
    "X:1\nT:Tiny Jig\nR:jig\nM:6/8\nL:1/8\nK:D\nA|dfa afd|gfe fdB|AFA dfa|gec d2:|\n",
    "X:1\nT:Tiny Reel\nR:reel\nM:C|\nL:1/8\nK:G\nGABc dedB|dedB dBAG|FGAB cBAG|FADF G2G2:|\n",
]


def headers_of(text):
    return dict(re.findall(r"^([A-Z]):(.*)$", text.split("\nK:")[0] + "\nK:" + text.split("\nK:")[1].split("\n")[0],
                           flags=re.M))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny LSTM trained briefly on two tunes (it learns them almost by heart)."""
    out = tmp_path_factory.mktemp("charrnn")
    data = out / "data_in"
    data.mkdir()
    (data / "train.abc").write_text(trainer.join(TUNES * 4))
    (data / "val.abc").write_text(trainer.join(TUNES))
    args = trainer.build_parser().parse_args(
        ["--data", str(data), "--out", str(out / "run"), "--preset", "tiny", "--hidden", "96", "--batch", "4",
         "--seq", "32", "--steps", "300", "--lr", "1e-2", "--warmup", "10", "--eval-every", "100",
         "--checkpoint-every", "100", "--quiet", "--threads", "1"])
    summary = trainer.train(args)
    return out / "run", summary


def test_stepper_matches_lstm():
    torch.manual_seed(0)
    model = CharRNN(CharRNNConfig(vocab_size=20, embed=8, hidden=16, layers=3, dropout=0.0)).eval()
    ids = torch.randint(0, 20, (1, 12))
    with torch.no_grad():
        ref, (h_ref, c_ref) = model(ids)
        step, state = Stepper(model), model.init_state(1)
        for t in range(12):
            logits, state = step(int(ids[0, t]), state)
    assert torch.allclose(logits, ref[0, -1], atol=1e-5)
    assert torch.allclose(state[0], h_ref, atol=1e-5) and torch.allclose(state[1], c_ref, atol=1e-5)


def test_presets():
    assert PRESETS["seed"]["embed"] == 256 and PRESETS["seed"]["hidden"] == 1024
    cfg = CharRNNConfig.from_dict({"vocab_size": 50, **PRESETS["default"], "unknown": 1})
    assert CharRNN(cfg)(torch.zeros(2, 5, dtype=torch.long))[0].shape == (2, 5, 50)


def test_tiny_model_overfits_tiny_text(tiny_run):
    run, summary = tiny_run
    assert summary["step"] == 300
    evals = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines() if '"eval"' in l]
    vocab = json.loads((run / "charrnn.json").read_text())["vocab"]
    assert evals[-1]["val_nats_per_char"] < min(0.6, math.log(len(vocab)) / 5)  # learnt the tunes by heart
    assert (run / "charrnn.safetensors").exists() and (run / "last.safetensors").exists() and (run / "last.json").exists()


def test_resume_continues(tiny_run, tmp_path):
    run, _ = tiny_run
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    args = trainer.build_parser().parse_args(
        ["--data", str(run / "data"), "--out", str(copy), "--preset", "tiny", "--hidden", "96", "--batch", "4",
         "--seq", "32", "--steps", "320", "--eval-every", "100", "--quiet", "--threads", "1"])
    summary = trainer.train(args)
    assert summary["step"] == 320
    steps = [json.loads(l)["step"] for l in (copy / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 320


def test_checkpoint_round_trip_half(tiny_run):
    run, _ = tiny_run
    model, vocab, card = trainer.load_model(run / "charrnn")
    assert card["dtype"] == "float16" and card["vocab"] == vocab.chars and "\n" in vocab.chars
    assert card["config"]["hidden"] == 96 and card["metrics"]["val_nats_per_char"] > 0
    ids = torch.as_tensor(vocab.encode(TUNES[0]))[None]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # loaded in float32 for the CPU
    trainer.save_model(model, vocab, run / "again", card)
    again, _, _ = trainer.load_model(run / "again")
    with torch.no_grad():
        assert torch.allclose(model(ids)[0], again(ids)[0], atol=1e-3)


def test_sampling_honours_headers(tiny_run):
    run, _ = tiny_run
    model = api.FolkModel(run / "charrnn")
    asks = dict(meter="3/4", key="E minor", unit="1/16", tune_type="Hornpipe", title="Sea Breeze")
    text = api.generate_tune(model=model, seed=1, max_chars=300, **asks)
    h = headers_of(text)
    assert (h["M"], h["K"], h["L"], h["R"], h["T"]) == ("3/4", "Em", "1/16", "hornpipe", "Sea Breeze")
    assert text.startswith("X:1\nT:Sea Breeze\nR:hornpipe\nM:3/4\nL:1/16\nK:Em\n")
    for seed in range(4):  # only some asked: the rest are written by the model, in order
        text = api.generate_tune(model=model, seed=seed, max_chars=300, key="Ador")
        fields = re.findall(r"^([A-Z]):", text.split("\nK:")[0], flags=re.M)
        assert fields[0] == "X" and fields[1] == "T" and "M" in fields and headers_of(text)["K"] == "Ador"


def test_sampling_prefix_seed_and_stream(tiny_run):
    run, _ = tiny_run
    model = api.FolkModel(run / "charrnn")
    prefix = "M:6/8\nK:D\nA|dfa afd|"
    a = api.generate_tune(model=model, seed=3, prefix=prefix)
    assert "\nM:6/8\n" in a and "\nK:D\nA|dfa afd|" in a
    assert a == api.generate_tune(model=model, seed=3, prefix=prefix)
    full = "X:1\nT:Mine\nM:C|\nL:1/8\nK:G\nGABc dedB|"
    for seed in range(3):  # a complete header is kept as it is (no R: added)
        assert api.generate_tune(model=model, seed=seed, prefix=full).startswith(full)
    steps = list(api.stream_tune(model=model, seed=3, prefix=prefix))
    assert steps[-1] == a  # with the guard, a line being redrawn may show briefly
    plain = api.generate_tune(model=model, seed=3, prefix=prefix, guard=False)
    steps = list(api.stream_tune(model=model, seed=3, prefix=prefix, guard=False))
    assert steps[-1] == plain and all(plain.startswith(s) for s in steps)  # plain sampling only grows
    # the model learnt the two tunes: at a low temperature it writes a valid one
    t = api.generate_tune(model=model, seed=0, temperature=0.3, top_k=3, top_p=0.9)
    assert api.validate(t)["valid"], t
    with pytest.raises(AbcError):
        api.generate_tune(model=model, meter="7/x")
    with pytest.raises(AbcError):
        api.generate_tune(model=model, temperature=0)


def test_plain_sampling_writes_unasked_headers(tiny_run):
    """Plain sampling: the model writes X: and every header not asked for; asked ones are
    forced in their canonical place; a field the user's header leaves out never appears."""
    run, _ = tiny_run
    model = api.FolkModel(run / "charrnn")
    order = "XTRMLK"
    for seed in range(4):
        text = api.generate_tune(model=model, seed=seed, max_chars=300, key="Ador", title="Asked", guard=False)
        head = text.split("\nK:Ador\n")[0]
        fields = re.findall(r"^([A-Z]):", head, flags=re.M)
        assert "T:Asked" in head.split("\n") and fields[0] == "X"
        asked = [f for f in fields if f in "TK"]
        assert asked == sorted(asked, key=order.index)
    full = "X:1\nT:Mine\nM:C|\nL:1/8\nK:G\nGABc dedB|"
    for seed in range(3):
        text = api.generate_tune(model=model, seed=seed, prefix=full, guard=False)
        assert "\nR:" not in text.split("\nK:G\n")[0] and "\nK:G\nGABc dedB|" in text


def test_a_model_trained_in_c_writes_the_key_asked_for(tiny_run):
    """A model trained on tunes moved to C (train charrnn --transpose-to C) writes in C;
    the tune comes back in the key asked for."""
    run, _ = tiny_run
    model = api.FolkModel(run / "charrnn")
    model.card = dict(model.card, data=dict(model.card.get("data") or {}, transpose_to="C"))
    text = api.generate_tune(model=model, seed=1, key="A dorian", meter="6/8", max_chars=300)
    assert "\nK:Ador\n" in text
    model.card["data"]["transpose_to"] = None
    plain = api.generate_tune(model=model, seed=1, key="C dorian", meter="6/8", max_chars=300)
    from composer.music.abc_transpose import transpose_tune
    assert text == transpose_tune(plain, "A")


def test_validate_reports_position():
    r = api.validate("X:1\nM:2/4\nL:1/8\nK:G\nGABc|dedB dB|G4|]\n")
    assert r["valid"] and not r["strict"] and r["line"] == 5 and r["column"] == 6


def test_kneser_ney():
    text = "abcabcabcabd" * 50
    lm = KneserNeyCharLM(5).fit(text, set(text) | {"z"})
    for h in ("", "a", "abca", "zzzz"):
        assert math.isclose(sum(lm.prob(h, c) for c in lm.vocab), 1.0, rel_tol=1e-9)
    assert lm.nats_per_char("abcabcabcabd" * 3) < 0.3
    assert lm.prob("abca", "z") > 0


def test_cli_sample_json(tiny_run, capsys):
    from composer.cli import charrnn as abc_cli
    run, _ = tiny_run
    rc = abc_cli.main(["sample", "--n", "2", "--seed", "4", "--meter", "6/8", "--key", "D", "--json",
                       "--checkpoint", str(run / "charrnn"), "--max-chars", "200"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(out) == 2 and {"abc", "valid", "strict"} <= set(out[0])
    assert all("\nM:6/8\n" in t["abc"] and "\nK:D\n" in t["abc"] for t in out)
    assert abc_cli.main(["sample", "--checkpoint", str(run / "nothing")]) == 1
    rc = abc_cli.main(["sample", "--n", "3", "--no-guard", "--json", "--checkpoint", str(run / "charrnn"),
                       "--max-chars", "200"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(out) == 3 and all(isinstance(t["abc"], str) and "strict" in t for t in out)


def test_loss_breakdown_counts_bodies_and_tokens():
    from composer.evaluation.charrnn import body_spans, loss_breakdown
    from composer.training.charrnn import join
    tunes = ["X:1\nT:a\nM:2/4\nL:1/8\nK:D\nAB cd|\n", "X:1\nT:b\nM:2/4\nL:1/8\nK:G\n^f2 g2|]\n"]
    text = join(tunes)
    spans, n = body_spans(tunes)
    assert n == len(text) and [text[a:b] for a, b in spans] == ["AB cd|\n", "^f2 g2|]\n"]
    nats = [1.0] * (len(text) - 1)
    lb = loss_breakdown(nats, text, tunes)
    # tokens: A B c d | and ^f 2 g 2 |]: 10; body characters 7 + 9
    assert lb["music_tokens"] == 10 and lb["music_chars"] == 16 and lb["per_token"] == 1.6
    assert lb["per_token_no_space"] == pytest.approx(12 / 10)


@pytest.mark.skipif(not (ROOT / "checkpoints" / "charrnn.json").exists(), reason="no shipped checkpoint")
def test_shipped_checkpoint():
    card = json.loads((ROOT / "checkpoints" / "charrnn.json").read_text())
    assert card["dtype"] == "float16" and card["vocab"] and card["config"]["hidden"]
    assert card["data"]["include_essen"] is False
    model = api.load()
    text = api.generate_tune(model=model, seed=0, meter="6/8", key="G", tune_type="jig")
    assert text.startswith("X:1\n") and "\nR:jig\nM:6/8\n" in text and "\nK:G\n" in text


def test_guard_redraws_broken_lines(tiny_run):
    """A model that knows two tunes writes, with the guard, only lines the bar tracker accepts."""
    from composer.music.abc import BarTracker
    run, _ = tiny_run
    model = api.FolkModel(run / "charrnn")
    for seed in range(3):
        text = api.generate_tune(model=model, seed=seed, temperature=1.5, meter="6/8", unit="1/8", max_chars=400)
        body = text.split("\nK:", 1)[1].split("\n")[1:]
        tracker = BarTracker("6/8", "1/8")
        bad = 0
        for line in [l for l in body if l]:
            bad += not tracker.check(line)[0]
            tracker.commit(line)
        assert bad <= 1  # a line is kept as it is only after max_tries failed draws
