"""Training runs for the app: one at a time per server, in a child process, watched through its log.

The trainer runs as ``python -m composer train MODEL …`` in its own process with one torch
thread, so a training run never holds the app's GIL or both cores, and the Compose tab
stays responsive for everyone. Progress is read from the trainer's ``log.jsonl`` and its
periodic ``last.safetensors``; the same files resume a run and feed the preview.

Uploaded data (a zip or single files) is unpacked with limits and without ever using a
name from the archive as a path.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from composer.errors import ComposerError, DataError

from composer.paths import PACKAGE_PARENT as ROOT  # the child runs `python -m composer` from here
MAX_UPLOAD_BYTES = 100 * 1024 * 1024     # a zip, compressed
MAX_UNPACKED_BYTES = 300 * 1024 * 1024   # everything inside it
MAX_FILES = 5000
MAX_STEPS = 100_000


class TrainingBusyError(ComposerError):
    """Another training run is in progress on this server."""


@dataclass(frozen=True)
class Trainable:
    """How to train one model from the app."""

    key: str                     # unique name in the app
    label: str
    cli: tuple[str, ...]         # `python -m composer train ...` words before the options
    builtin: tuple[str, ...]     # the options that select the built-in corpus
    extensions: tuple[str, ...]  # files a user may upload as data (passed as --data FOLDER); () = none
    checkpoint: str              # file the trainer rewrites periodically in --out (progress, resume)
    every_flag: str              # its option for "checkpoint / evaluate every N steps"
    quiet_flag: str              # its option for "no progress bar"
    loss_keys: tuple[str, ...]   # log fields drawn as curves
    best_file: str | None = None  # the shippable model the trainer writes itself, or ...
    export: str | None = None    # ... "module:function(src, dst, extra)" making one from the checkpoint


TRAINABLES = {
    "musegan": Trainable("musegan", "MuseGAN (four-voice chorales)", ("musegan",), ("--data", "bach"),
                         (".mid", ".midi"), "last.safetensors", "--checkpoint-every", "--quiet",
                         ("g_loss", "c_loss", "gp"), export="composer.training.musegan:export_generator"),
    "charrnn": Trainable("charrnn", "Folk tunes: ABC char-RNN", ("charrnn",), ("--data", "folk"), (".abc",),
                         "last.safetensors", "--ckpt-every", "--no-tqdm", ("loss", "val_nats_per_char"),
                         best_file="charrnn.safetensors"),
    "notes-lstm": Trainable("notes-lstm", "Continue: note/chord LSTM", ("notes", "--arch", "lstm"), ("--data", "all"),
                            (".mid", ".midi"), "last.safetensors", "--eval-every", "--no-tqdm", ("loss", "val"),
                            best_file="notes_lstm.safetensors"),
    "notes-wavenet": Trainable("notes-wavenet", "Continue: note/chord WaveNet", ("notes", "--arch", "wavenet"),
                               ("--data", "all"), (".mid", ".midi"), "last.safetensors", "--eval-every", "--no-tqdm",
                               ("loss", "val"), best_file="notes_wavenet.safetensors"),
    # two domains each: the built-in pair here; two folders of your own through the CLI
    "cyclegan": Trainable("cyclegan", "Genre transfer: CycleGAN Bach <-> folk", ("cyclegan",),
                          ("--domain-a", "bach", "--domain-b", "folk"), (), "last.safetensors", "--checkpoint-every",
                          "--quiet", ("g_loss", "cycle"), export="composer.training.cyclegan:export_generators"),
    "classifier": Trainable("classifier", "Genre classifier Bach / folk", ("classifier",),
                            ("--domain-a", "bach", "--domain-b", "folk"), (), "last.safetensors", "--checkpoint-every",
                            "--quiet", ("loss", "test_acc"), export="composer.training.classifier:export_classifier"),
}


def available_trainables() -> dict[str, Trainable]:
    from composer.training import has_module
    return {k: v for k, v in TRAINABLES.items() if has_module(f"composer.training.{v.cli[0]}")}


# ----------------------------------------------------------------------------------------------
# Uploaded data
# ----------------------------------------------------------------------------------------------

@dataclass
class PreparedData:
    folder: Path
    accepted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: reason"


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    path, k = folder / f"{stem}{suffix}", 1
    while path.exists():
        path, k = folder / f"{stem}-{k}{suffix}", k + 1
    return path


def prepare_upload(paths: list[str | Path], extensions: tuple[str, ...], dest: Path) -> PreparedData:
    """Copy uploaded files and the allowed members of uploaded zips into ``dest``.

    MIDI files are checked with :func:`composer.music.midi.load_midi_bytes`; a bad file is
    skipped with its reason, never a crash. Raises :class:`DataError` when nothing usable is left
    or a limit is exceeded.
    """
    from composer.music.midi import load_midi_bytes
    from composer.render.outputs import safe_stem
    dest.mkdir(parents=True, exist_ok=True)
    out = PreparedData(dest)
    total = 0

    def accept(name: str, data: bytes):
        nonlocal total
        suffix = Path(name).suffix.lower()
        if suffix not in extensions:
            out.skipped.append(f"{Path(name).name}: not a {'/'.join(extensions)} file")
            return
        total += len(data)
        if total > MAX_UNPACKED_BYTES:
            raise DataError(f"the uploaded data is over {MAX_UNPACKED_BYTES // 2**20} MB unpacked")
        if suffix in (".mid", ".midi"):
            try:
                load_midi_bytes(data, name=Path(name).name)
            except ComposerError as exc:
                out.skipped.append(f"{Path(name).name}: {exc}")
                return
        elif suffix == ".abc" and b"K:" not in data:
            out.skipped.append(f"{Path(name).name}: no ABC tune (no K: header)")
            return
        target = _unique(dest, safe_stem(name, "file"), suffix)
        target.write_bytes(data)
        out.accepted.append(Path(name).name)

    for p in paths or []:
        p = Path(p)
        size = p.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise DataError(f"'{p.name}' is {size / 2**20:.0f} MB; the upload limit is {MAX_UPLOAD_BYTES // 2**20} MB")
        if p.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(p) as zf:
                    members = [m for m in zf.infolist() if not m.is_dir()]
                    if len(members) > MAX_FILES:
                        raise DataError(f"'{p.name}' holds {len(members)} files; the limit is {MAX_FILES}")
                    if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                        raise DataError(f"'{p.name}' unpacks to over {MAX_UNPACKED_BYTES // 2**20} MB")
                    for m in members:
                        if Path(m.filename).name.startswith(".") or "__MACOSX" in m.filename:
                            continue
                        accept(m.filename, zf.read(m))
            except zipfile.BadZipFile:
                raise DataError(f"'{p.name}' is not a readable zip file") from None
        else:
            accept(p.name, p.read_bytes())
    if not out.accepted:
        reasons = "; ".join(out.skipped[:5]) or "no files"
        raise DataError(f"no usable {'/'.join(extensions)} files in the upload ({reasons})")
    return out


# ----------------------------------------------------------------------------------------------
# A run
# ----------------------------------------------------------------------------------------------

@dataclass
class TrainingJob:
    """One training run in a child process."""

    trainable: Trainable
    out: Path
    steps: int
    batch: int
    data: str
    owner: str = ""
    proc: subprocess.Popen | None = None
    started: float = field(default_factory=time.time)
    stopped_by_user: bool = False
    data_note: str = ""

    @property
    def log_path(self) -> Path:
        return self.out / "log.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.out / self.trainable.checkpoint

    def command(self) -> list[str]:
        every = max(10, self.steps // 10)
        data = list(self.trainable.builtin) if self.data == "builtin" else ["--data", self.data]
        return [sys.executable, "-m", "composer", "train", *self.trainable.cli, *data,
                "--steps", str(self.steps), "--batch", str(self.batch), "--out", str(self.out),
                self.trainable.every_flag, str(every), "--threads", "1", self.trainable.quiet_flag]

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._stderr = open(self.out / "stderr.txt", "wb")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     env=env, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the trainer to stop (SIGINT, as Ctrl-C), then end it if it does not."""
        if not self.running:
            return
        self.stopped_by_user = True
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def records(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line being written right now
        return out

    def state(self) -> str:
        if self.running:
            return "running"
        if self.stopped_by_user:
            return "stopped"
        return "finished" if self.proc is not None and self.proc.returncode == 0 else "failed"

    def error_tail(self) -> str:
        path = self.out / "stderr.txt"
        if not path.exists():
            return ""
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        return (errors or lines or [""])[-1][:500]

    def progress(self) -> dict:
        """Step, total, fraction, seconds elapsed and an estimate of seconds left."""
        recs = [r for r in self.records() if "step" in r]
        step = int(recs[-1]["step"]) if recs else 0
        elapsed = time.time() - self.started
        timed = [r for r in recs if "wall_s" in r or "time_s" in r]
        if len(timed) >= 2:
            key = "wall_s" if "wall_s" in timed[-1] else "time_s"
            rate = (timed[-1]["step"] - timed[0]["step"]) / max(1e-6, timed[-1][key] - timed[0][key])
        else:
            rate = step / elapsed if elapsed > 0 and step else 0.0
        left = (self.steps - step) / rate if rate > 0 else None
        return {"state": self.state(), "step": step, "total": self.steps, "fraction": min(1.0, step / self.steps),
                "elapsed_s": elapsed, "eta_s": left}


class JobManager:
    """At most one training run per server."""

    def __init__(self):
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None

    def start(self, key: str, data: str, steps: int, batch: int, out: Path, owner: str = "",
              data_note: str = "") -> TrainingJob:
        trainables = available_trainables()
        if key not in trainables:
            raise ComposerError(f"no trainer for {key!r}; available: {', '.join(trainables)}")
        if not 1 <= steps <= MAX_STEPS:
            raise ComposerError(f"steps must be 1-{MAX_STEPS}")
        if not 1 <= batch <= 512:
            raise ComposerError("batch size must be 1-512")
        with self._lock:
            if self.job is not None and self.job.running:
                mins = (time.time() - self.job.started) / 60
                who = "you" if owner and owner == self.job.owner else "another user"
                raise TrainingBusyError(f"a training run ({self.job.trainable.label}) started by {who} {mins:.0f} "
                                        "min ago is still running; one run at a time per server")
            self.job = TrainingJob(trainables[key], Path(out), int(steps), int(batch), data, owner=owner,
                                   data_note=data_note)
            self.job.start()
            return self.job

    def stop(self) -> None:
        with self._lock:
            job = self.job
        if job is not None:
            job.stop()


JOBS = JobManager()
