"""One latents format: `generate` and the Compose tab read each other's files, note for note."""
import json

import pretty_midi
import pytest

from conftest import run_cli


def _notes(path):
    pm = pretty_midi.PrettyMIDI(str(path))
    return [[(n.pitch, round(n.start, 4), round(n.end, 4)) for n in inst.notes] for inst in pm.instruments]


@pytest.fixture(scope="module")
def client(app_client):
    return app_client


def test_generate_latents_restore_in_the_app_and_back(client, tmp_path):
    out = tmp_path / "gen"
    r = run_cli("generate", "--pieces", "1", "--seed", "5", "--out", out, "--no-audio", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["song_bars"] >= 1
    text = (out / "latents.json").read_text()
    res = client.predict(text, api_name="/compose_from_latents")
    midi, files = res[-1], res[-3]
    assert any(str(f).endswith(".wav") for f in files)
    assert _notes(midi) == _notes(out / "song.mid")
    # the app's own download goes through `generate --latents` and gives the same notes
    download = next(f for f in files if str(f).endswith(".json"))
    again = tmp_path / "again"
    r = run_cli("generate", "--latents", download, "--out", again, "--no-audio")
    assert r.returncode == 0, r.stderr
    assert _notes(again / "song.mid") == _notes(midi)


@pytest.fixture(scope="module")
def good_latents(tmp_path_factory):
    from composer.api.compose import load_composer
    return load_composer().new_state(seed=1).to_json()


@pytest.mark.parametrize("patch, words", [
    ({"truncation": "abc"}, "truncation"), ({"truncation": float("nan")}, "truncation"),
    ({"seed": -1}, "seed"), ({"reroll_counter": -5}, "reroll_counter"),
    ({"chords_override": {"1000": [0.0]}}, "outside the piece"),
])
def test_hostile_latents_are_refused_with_a_message(good_latents, patch, words):
    from composer.api.compose import ComposeState, LatentsError
    d = json.loads(good_latents)
    d.update(patch)
    with pytest.raises(LatentsError, match=words):
        ComposeState.from_json(json.dumps(d))


def test_deeply_nested_latents_are_refused_without_recursion():
    from composer.api.compose import ComposeState, LatentsError
    with pytest.raises(LatentsError, match="nested"):
        ComposeState.from_json("[" * 100_000 + "]" * 100_000)
