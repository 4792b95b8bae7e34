"""ABC corpus cleaning, validity checks (calibrated on real tunes) and conversions."""
import pytest

from composer.music import abc

RAW = """% file header, not a tune
Some free text.

X: 12
T:The Test Reel
T:Another title
R:Reel
B:Some Book
N:collected somewhere
Z:transcriber
M:C|
K:D major
"4"A|"D"d2 fd "^SEGUE"A2 FA|dfaf "A7"e2 (3efg|\\
 % a comment
afdf edBA|d2 f2 d3:|

X:13
T:Second
M:6/8
L:1/8
K:G
GAB c2 d|e3 d3|]
"""

GOOD = "X:1\nT:Good\nM:6/8\nL:1/8\nK:G\nD|GAB c2d|e3 d2B|GAB cBA|G3 G2:|\n"


def test_split_and_clean():
    raws = abc.split_tunes(RAW)
    assert len(raws) == 2
    tune = abc.clean_tune(raws[0])
    lines = tune.split("\n")
    assert lines[:6] == ["X:1", "T:The Test Reel", "R:reel", "M:C|", "L:1/8", "K:D"]
    body = "\n".join(lines[6:])
    assert '"4"' not in body and "SEGUE" not in body and "comment" not in body  # fingering, annotation
    assert '"D"' in body and '"A7"' in body  # chord symbols are music
    assert "B:" not in tune and "N:" not in tune and "Z:" not in tune
    assert "\\" not in tune
    assert abc.clean_tune(raws[1]).startswith("X:1\nT:Second\nM:6/8\nL:1/8\nK:G\n")


def test_clean_drops_unusable_and_dedupes():
    assert abc.clean_tune("X:1\nT:No key\nM:2/4\nABc|\n") is None
    assert abc.clean_tune("X:1\nM:2/4\nK:G\nV:1\nABcd|\n") is None  # multi-voice
    t = abc.clean_tunes([GOOD, GOOD.replace("T:Good", "T:Same music"), GOOD.replace("GAB c2d", "GAB d2d")])
    assert len(t) == 2
    assert abc.default_unit("2/4") == "1/16" and abc.default_unit("6/8") == "1/8"


@pytest.mark.parametrize("raw, norm", [("E Minor", "Em"), ("A Mixolydian", "Amix"), ("D major", "D"),
                                       ("Ador", "Ador"), ("f#m", "F#m"), ("Bb", "Bb")])
def test_normalize_key(raw, norm):
    assert abc.normalize_key(raw) == norm


def test_split_is_by_title_and_stable():
    names = [f"Tune {chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(200)]
    tunes = [GOOD.replace("Good", n) for n in names]
    tunes += [GOOD.replace("Good", "Tune ha").replace("GAB", "GAG")]  # a variant of "Tune ha"
    train, val = abc.split_train_val(tunes)
    assert (train, val) == abc.split_train_val(tunes)
    assert 5 < len(val) < 45
    variants = [t for t in train + val if "Tune ha\n" in t]
    assert len(variants) == 2
    assert len({t in val for t in variants}) == 1  # both variants on the same side


@pytest.fixture(scope="module")
def folk():
    return abc.load_dataset("folk")


def test_folk_corpus_counts(folk):
    c = folk.counts
    assert c["raw_by_collection"]["ryansMammoth"] == 1059
    assert c["unique"] > 4000 and len(folk.val) > 300
    assert not {abc.music_key(t) for t in folk.train} & {abc.music_key(t) for t in folk.val}
    assert all(t.startswith("X:1\nT:") for t in folk.train[:50])


def test_real_tunes_pass_checks(folk):
    tunes = folk.val[::20][:20]
    res = [abc.check_abc(t) for t in tunes]
    assert all(r.valid for r in res)
    assert sum(r.strict for r in res) >= 17  # real strict rate is ~0.97 on the validation split


@pytest.mark.parametrize("text, what", [
    ("T:no x\nM:2/4\nK:G\nABcd|\n", "X:"),
    ("X:1\nT:no meter\nK:G\nABcd|\n", "M:"),
    ("X:1\nM:2/4\nL:1/8\nABcd|\n", "K:"),
    ("X:1\nM:2/4\nK:G\n", "no music"),
    ("X:1\nM:2/4\nK:G\n||| ]]] ,,,\n", ""),
])
def test_garbage_is_invalid(text, what):
    r = abc.check_abc(text)
    assert not r.valid and not r.strict and what in r.error and r.line is not None


def test_bar_lengths():
    assert abc.check_abc(GOOD).strict
    bad = GOOD.replace("e3 d2B", "e3 d2B c2")
    r = abc.check_abc(bad)
    assert r.valid and not r.strict and "too long" in r.error
    assert (r.line, r.column) == (6, 11)
    short = "X:1\nM:3/4\nL:1/8\nK:D\nA2 B2 c2|d2 e2|f2 g2 a2|]\n"
    assert not abc.check_abc(short).strict
    # pickups, repeats, endings and the double repeat '::' are fine
    ok = "X:1\nM:2/4\nL:1/8\nK:D\nA|d2 fd|A2 FA::G|B2 dB|[1 A3:|[2 A2 z|]\n"
    assert abc.check_abc(ok).strict
    # music21 drops a note decorated with the fermata shorthand H: the check works around it
    assert abc.check_abc("X:1\nM:3/4\nL:1/8\nK:D\nA2 B2 c2|d2 e2 Hf2|]\n").strict


def test_conversions():
    pm = abc.abc_to_pretty_midi(GOOD, program=73, tempo=90)
    notes = pm.instruments[0].notes
    assert len(notes) == 34 and pm.instruments[0].program == 73
    assert notes[0].pitch == 62  # D4; the repeat is played twice (2 x 17 notes)
    xml = abc.abc_to_musicxml(GOOD)
    assert "<score-partwise" in xml and "<step>G</step>" in xml
    with pytest.raises(abc.AbcError):
        abc.abc_to_pretty_midi("X:1\nT:x\n")


def test_bar_tracker_accepts_real_lines(folk):
    import re
    total = rejected = 0
    for tune in folk.val[:150]:
        lines = tune.rstrip("\n").split("\n")
        k = next(i for i, l in enumerate(lines) if l.startswith("K:"))
        tracker = abc.BarTracker(re.search(r"^M:(.*)$", tune, re.M).group(1),
                                 re.search(r"^L:(.*)$", tune, re.M).group(1))
        for line in lines[k + 1:]:
            total += 1
            rejected += not tracker.check(line)[0]
            tracker.commit(line)
    assert rejected / total < 0.06  # ~3 % of real lines have a wrong bar (the strict check agrees)


@pytest.mark.parametrize("line, ok", [
    ("GAB c2d|e3 d2B|GAB cBA|G3 G2:|", True),
    ("D|GAB c2d|", True),                      # pickup
    ("GAB c2d|e3 d2B c2|", False),             # too long
    ("GAB c2d|e3|GAB cBA|", False),            # too short in the middle
    ("(3GAB c2d e|(3GAB c2 d|", False),      # a triplet takes two eighths: the second bar is short
    ("GAB c2d|[1 G3 G2:|[2 G3 z3|]", True),  # endings
    ("{ga}G>AB c2d|e3 d2B|", True),            # graces count for nothing; broken rhythm keeps the sum
    ("[GB]3 [Ac]3|", True),
    ("GAB [c2d|", False),                      # unclosed chord
    ("GAB \"G c2d|", False),                   # unclosed quote
])
def test_bar_tracker_lines(line, ok):
    tracker = abc.BarTracker("6/8", "1/8")
    assert tracker.check(line)[0] is ok


def test_bar_tracker_carries_bars_across_lines():
    tracker = abc.BarTracker("2/4", "1/8")
    assert tracker.check("GABc|dedB|de")[0]
    tracker.commit("GABc|dedB|de")
    assert tracker.check("dB|G4|]")[0]
    assert not tracker.check("dBA|G4|]")[0]
    assert abc.header_value_ok("M", "6/8") and not abc.header_value_ok("M", "7/x")
    assert abc.header_value_ok("K", "Ador") and not abc.header_value_ok("K", "DmED")


def test_cheap_limits_refuse_before_music21_reads():
    # a lone surrogate (cannot travel over HTTP, but the API and CLI can receive it)
    r = abc.check_abc("X:1\nM:4/4\nL:1/8\nK:G\nA\ud800B|\n")
    assert not r.valid and "invalid character" in r.error and r.line == 5
    r = abc.check_abc("X:1\nM:9/0\nL:1/8\nK:G\nAB|\n")
    assert not r.valid and r.line == 2 and "meter" in r.error
    long_line = "X:1\nM:4/4\nL:1/8\nK:G\n" + "A" * 3000 + "\n"
    assert "characters" in abc.check_abc(long_line).error


def test_additive_meter_is_read_as_its_bar_length_quickly():
    import time
    t = time.monotonic()
    r = abc.check_abc("X:1\nM:2+2+2+2/8\nL:1/8\nK:G\nabcd efga|abcd efga|\n")
    assert r.valid and r.strict and time.monotonic() - t < 5
