"""The command line: render, info, bench."""
import json

from composer.render.audio import read_wav
from tests.conftest import run_cli


def test_render_writes_wav(tmp_path, example_midi):
    out = tmp_path / "chorale.wav"
    res = run_cli("render", example_midi, "--out", out, "--sample-rate", 22050)
    assert res.returncode == 0, res.stderr
    x, sr = read_wav(out)
    assert sr == 22050 and x.shape[1] == 2 and abs(x).max() > 1000


def test_render_refuses_non_wav_out(tmp_path, example_midi):
    res = run_cli("render", example_midi, "--out", tmp_path / "x.mp3")
    assert res.returncode == 1 and ".wav" in res.stderr


def test_info_json():
    res = run_cli("info", "--json")
    assert res.returncode == 0
    info = json.loads(res.stdout)
    assert info["soundfont"].endswith((".sf2", ".sf3")) and info["device"] in ("cpu", "cuda", "mps")
    assert info["torch"].startswith("2.") and isinstance(info["checkpoints"], list)


def test_bench_render_and_viz():
    res = run_cli("bench", "--json", "--only", "render", "viz")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["render_rtf"] > 1 and out["render_vs_cli"] > 0 and out["pianoroll_png_ms"] > 0


def test_unknown_model_exits_non_zero():
    res = run_cli("train", "nonsense")
    assert res.returncode == 2 and "needs a model" in res.stderr
