"""Training runs for the app: one at a time per server, in a child process, watched through its log.

The trainer runs as ``python -m composer train MODEL …`` in its own process with one torch
thread, so a training run never holds the app's GIL or both cores, and the Compose tab
stays responsive for everyone. Progress is read from the trainer's ``log.jsonl`` and its
periodic ``last.safetensors``; the same files resume a run and feed the preview.

A run belongs to the visitor who started it (an owner key: the page's token, kept in the
browser across reloads); only they may stop or save it, the others see it read-only. The
run is recorded in a lock file (``active.json``, pid and owner's hash) beside the runs, so an
app restarted after a crash finds a trainer that outlived it and adopts it: the one-run rule
holds across crashes, and the owner can still stop or save it.

Uploaded data (a zip or single files) is unpacked with limits and without ever using a
name from the archive as a path: members are inflated as a stream that stops at the limit,
and the count and total size of the files are checked before any of them is parsed.
"""
from __future__ import annotations

import hashlib
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

#: The one upload limit: the server refuses bigger files (Gradio's ``max_file_size``), the Train
#: tab states it where the upload is, and the unpacker checks it again.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024      # one uploaded file (a zip: compressed)
MAX_UNPACKED_BYTES = 200 * 1024 * 1024   # everything inside the upload, inflated
MAX_MEMBER_BYTES = 32 * 1024 * 1024      # one file inside a zip (a MIDI: MAX_MIDI_BYTES)
MAX_FILES = 5000
MAX_CHECK_SECONDS = 60.0                 # parsing the accepted files, all together
MAX_STEPS = 100_000
STOP_GRACE_S = 1.5                        # SIGTERM -> SIGKILL: Stop takes effect within ~2 s


def size_text(n: int) -> str:
    """Bytes as MB (MiB) with enough digits to tell two sizes apart: ``2.00 MB``, ``20 MB``."""
    mb = n / 2**20
    return f"{mb:.0f} MB" if n % 2**20 == 0 else f"{mb:.2f} MB" if mb >= 0.01 else f"{n} bytes"


def upload_limit_text() -> str:
    """The upload limit as the UI states it."""
    return f"{size_text(MAX_UPLOAD_BYTES)} per file"


def runs_root() -> Path:
    """Where the app's training runs (and the lock file) live: ``$COMPOSER_RUNS`` or the cache's runs/."""
    from composer.music.corpus import cache_dir
    path = Path(os.environ.get("COMPOSER_RUNS") or cache_dir() / "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def owner_hash(owner: str) -> str:
    """What the lock file keeps of an owner key (never the key itself)."""
    return hashlib.sha256(f"composer-owner:{owner}".encode()).hexdigest()[:32] if owner else ""


class TrainingBusyError(ComposerError):
    """Another training run is in progress on this server."""


class NotOwnerError(ComposerError):
    """The run belongs to another visitor."""


@dataclass(frozen=True)
class Trainable:
    """How to train one model from the app."""

    key: str                     # unique name in the app
    label: str
    cli: tuple[str, ...]         # `python -m composer train ...` words before the options
    builtin: tuple[str, ...]     # the options that select the built-in corpus
    extensions: tuple[str, ...]  # files a user may upload as data (passed as --data FOLDER); () = none
    checkpoint: str              # file the trainer rewrites periodically in --out (progress, resume)
    evaluates: bool              # has --eval-every (a validation curve the tab draws, as often as it saves)
    loss_keys: tuple[str, ...]   # log fields drawn as curves
    best_file: str | None = None  # the shippable model the trainer writes itself, or ...
    export: str | None = None    # ... "module:function(src, dst, extra)" making one from the checkpoint


TRAINABLES = {
    "musegan": Trainable("musegan", "MuseGAN (four-voice chorales)", ("musegan",), ("--data", "bach"),
                         (".mid", ".midi"), "last.safetensors", False,
                         ("g_loss", "c_loss", "gp"), export="composer.training.musegan:export_generator"),
    "charrnn": Trainable("charrnn", "Folk tunes: ABC char-RNN", ("charrnn",), ("--data", "folk"), (".abc",),
                         "last.safetensors", True, ("loss", "val_nats_per_char"),
                         best_file="charrnn.safetensors"),
    "notes-lstm": Trainable("notes-lstm", "Continue: note/chord LSTM", ("notes", "--arch", "lstm"), ("--data", "all"),
                            (".mid", ".midi"), "last.safetensors", True, ("loss", "val"),
                            best_file="notes_lstm.safetensors"),
    "notes-wavenet": Trainable("notes-wavenet", "Continue: note/chord WaveNet", ("notes", "--arch", "wavenet"),
                               ("--data", "all"), (".mid", ".midi"), "last.safetensors", True,
                               ("loss", "val"), best_file="notes_wavenet.safetensors"),
    # two domains each: the built-in pair here; two folders of your own through the CLI
    "cyclegan": Trainable("cyclegan", "Genre transfer: CycleGAN Bach <-> folk", ("cyclegan",),
                          ("--domain-a", "bach", "--domain-b", "folk"), (), "last.safetensors", False,
                          ("g_loss", "cycle"), export="composer.training.cyclegan:export_generators"),
    "classifier": Trainable("classifier", "Genre classifier Bach / folk", ("classifier",),
                            ("--domain-a", "bach", "--domain-b", "folk"), (), "last.safetensors", False,
                            ("loss", "test_acc"), export="composer.training.classifier:export_classifier"),
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


def _inflate(zf: zipfile.ZipFile, member: zipfile.ZipInfo, cap: int) -> bytes | None:
    """The member's bytes, inflated as a stream that stops after ``cap`` bytes (None: more than that).

    The size a zip declares for a member is not trusted: only the bytes actually inflated count.
    """
    with zf.open(member) as f:
        data = f.read(cap + 1)
    return None if len(data) > cap else data


def prepare_upload(paths: list[str | Path], extensions: tuple[str, ...], dest: Path) -> PreparedData:
    """Copy uploaded files and the allowed members of uploaded zips into ``dest``.

    Two passes: first every candidate file is written to ``dest`` (zip members inflated as a
    stream that stops at the limits; the count and the total inflated size checked) without
    parsing anything; then each is checked (MIDI with :func:`composer.music.midi.load_midi_bytes`,
    ABC for a ``K:`` header) within :data:`MAX_CHECK_SECONDS` in all. A bad file is skipped
    with its reason, never a crash. Raises :class:`DataError` when a limit is exceeded or
    nothing usable is left.
    """
    from composer.music.midi import MAX_MIDI_BYTES, load_midi_bytes
    from composer.render.outputs import safe_stem
    dest.mkdir(parents=True, exist_ok=True)
    out = PreparedData(dest)
    total = 0
    count = 0
    staged: list[tuple[str, Path]] = []  # (name shown to the user, file in dest)

    def stage(name: str, data: bytes):
        nonlocal total
        suffix = Path(name).suffix.lower()
        total += len(data)
        if total > MAX_UNPACKED_BYTES:
            raise DataError(f"the uploaded data is over {size_text(MAX_UNPACKED_BYTES)} unpacked")
        target = _unique(dest, safe_stem(name, "file"), suffix)
        target.write_bytes(data)
        staged.append((Path(name).name, target))

    def member_cap(suffix: str) -> int:
        return MAX_MIDI_BYTES if suffix in (".mid", ".midi") else MAX_MEMBER_BYTES

    for p in paths or []:
        p = Path(p)
        size = p.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise DataError(f"'{p.name}' is {size_text(size)}; the upload limit is {upload_limit_text()}")
        if p.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(p) as zf:
                    members = [m for m in zf.infolist() if not m.is_dir()]
                    if len(members) > MAX_FILES:
                        raise DataError(f"'{p.name}' holds {len(members)} files; the limit is {MAX_FILES}")
                    if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                        raise DataError(f"'{p.name}' unpacks to over {size_text(MAX_UNPACKED_BYTES)}")
                    for m in members:
                        name = Path(m.filename).name
                        if name.startswith(".") or "__MACOSX" in m.filename:
                            continue
                        suffix = Path(name).suffix.lower()
                        if suffix not in extensions:
                            out.skipped.append(f"{name}: not a {'/'.join(extensions)} file")
                            continue
                        count += 1
                        if count > MAX_FILES:
                            raise DataError(f"the upload holds over {MAX_FILES} files")
                        cap = min(member_cap(suffix), MAX_UNPACKED_BYTES - total)
                        try:
                            data = _inflate(zf, m, cap)
                        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
                            out.skipped.append(f"{name}: cannot be unpacked ({str(exc)[:80]})")
                            continue
                        if data is None:
                            if cap < member_cap(suffix):
                                raise DataError(f"the uploaded data is over {size_text(MAX_UNPACKED_BYTES)} unpacked")
                            out.skipped.append(f"{name}: over {size_text(member_cap(suffix))} unpacked")
                            continue
                        stage(m.filename, data)
            except zipfile.BadZipFile:
                raise DataError(f"'{p.name}' is not a readable zip file") from None
        else:
            suffix = p.suffix.lower()
            if suffix not in extensions:
                out.skipped.append(f"{p.name}: not a {'/'.join(extensions)} file")
                continue
            count += 1
            if count > MAX_FILES:
                raise DataError(f"the upload holds over {MAX_FILES} files")
            stage(p.name, p.read_bytes())

    # second pass: parse, within a time budget
    t0 = time.monotonic()
    for name, target in staged:
        if time.monotonic() - t0 > MAX_CHECK_SECONDS:
            raise DataError(f"checking the uploaded files took over {MAX_CHECK_SECONDS:.0f} s; upload fewer "
                            "or smaller files")
        data = target.read_bytes()
        suffix = target.suffix.lower()
        reason = None
        if suffix in (".mid", ".midi"):
            try:
                load_midi_bytes(data, name=name)
            except ComposerError as exc:
                reason = str(exc)
        elif suffix == ".abc" and b"K:" not in data:
            reason = "no ABC tune (no K: header)"
        if reason:
            out.skipped.append(f"{name}: {reason}")
            target.unlink(missing_ok=True)
        else:
            out.accepted.append(name)
    if not out.accepted:
        reasons = "; ".join(out.skipped[:5]) or "no files"
        raise DataError(f"no usable {'/'.join(extensions)} files in the upload ({reasons})")
    return out


# ----------------------------------------------------------------------------------------------
# A run
# ----------------------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (ended, not yet reaped) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
    except OSError:
        return []


@dataclass
class TrainingJob:
    """One training run in a child process (``proc``), or adopted from an app that died (``pid``)."""

    trainable: Trainable
    out: Path
    steps: int
    batch: int
    data: str
    owner: str = ""              # the owner's hash (:func:`owner_hash`)
    proc: subprocess.Popen | None = None
    pid: int | None = None
    started: float = field(default_factory=time.time)
    stopped_by_user: bool = False
    data_note: str = ""
    adopted: bool = False

    @property
    def log_path(self) -> Path:
        return self.out / "log.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.out / self.trainable.checkpoint

    def owned_by(self, owner_key: str) -> bool:
        return bool(owner_key) and owner_hash(owner_key) == self.owner

    def command(self) -> list[str]:
        every = max(10, self.steps // 10)
        data = list(self.trainable.builtin) if self.data == "builtin" else ["--data", self.data]
        return [sys.executable, "-m", "composer", "train", *self.trainable.cli, *data,
                "--steps", str(self.steps), "--batch", str(self.batch), "--out", str(self.out),
                "--checkpoint-every", str(every), *(["--eval-every", str(every)] if self.trainable.evaluates else []),
                "--threads", "1", "--quiet"]

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.out / "stderr.txt", "wb") as stderr:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
                                         env=env, start_new_session=True)
        self.pid = self.proc.pid

    @property
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None or not _pid_alive(self.pid):
            return False
        cmd = _cmdline(self.pid)  # empty while the process exits: still running until it is gone
        return not cmd or str(self.out) in cmd

    def stop(self, timeout: float = STOP_GRACE_S) -> None:
        """End the trainer within about two seconds: SIGTERM, then SIGKILL if it is still there.

        No clean-up is needed in the trainer: its checkpoints are written atomically
        (:func:`composer.checkpoints.save_checkpoint`), so the last one stays whole whatever the
        moment. SIGTERM, not SIGINT: a server started in the background (``nohup``, ``&``) passes
        an ignored SIGINT on to its children, and such a trainer never heard Ctrl-C.
        """
        if not self.running:
            return
        self.stopped_by_user = True
        self._signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        while self.running and time.monotonic() < end:
            time.sleep(0.05)
        if self.running:
            self._signal(signal.SIGKILL)
            while self.running and time.monotonic() < end + 0.5:
                time.sleep(0.02)

    def _signal(self, sig: int) -> None:
        """Signal the trainer's process group (it was started in a session of its own)."""
        try:
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

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
            return "stopping" if self.stopped_by_user else "running"
        if self.stopped_by_user:
            return "stopped"
        if self.proc is None:  # adopted: no exit status; the log says how far it got
            recs = [r for r in self.records() if "step" in r]
            return "finished" if recs and int(recs[-1]["step"]) >= self.steps else "ended"
        return "finished" if self.proc.returncode == 0 else "failed"

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

    def busy_text(self) -> str:
        """"The trainer is busy" with the time left, for everyone but the owner."""
        left = self.progress()["eta_s"]
        when = f"about {max(1, round(left / 60))} minutes left" if left is not None else "time left not known yet"
        return f"The trainer is busy ({self.trainable.label}, started by another visitor): {when}."

    def to_lock(self) -> dict:
        return {"pid": self.pid, "key": self.trainable.key, "out": str(self.out), "steps": self.steps,
                "batch": self.batch, "data": self.data, "owner": self.owner, "started": self.started,
                "data_note": self.data_note}


class JobManager:
    """At most one training run per server, recorded in a lock file that outlives the app."""

    def __init__(self, root: Path | None = None):
        self._lock = threading.Lock()
        self._root = root
        self.job: TrainingJob | None = None
        self._looked = False

    @property
    def lock_path(self) -> Path:
        return (self._root or runs_root()) / "active.json"

    def adopt_orphan(self) -> TrainingJob | None:
        """A trainer left running by an app that died: adopt it (None when there is none).

        A lock file whose process is gone, or is not that run's trainer, is removed.
        """
        path = self.lock_path
        try:
            rec = json.loads(path.read_text())
            pid, out = int(rec["pid"]), str(rec["out"])
            trainable = TRAINABLES[rec["key"]]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            path.unlink(missing_ok=True)
            return None
        cmd = _cmdline(pid)
        if not (_pid_alive(pid) and out in cmd and "train" in cmd):
            path.unlink(missing_ok=True)
            return None
        return TrainingJob(trainable, Path(out), int(rec["steps"]), int(rec["batch"]), str(rec["data"]),
                           owner=str(rec.get("owner", "")), pid=pid, started=float(rec.get("started", time.time())),
                           data_note=str(rec.get("data_note", "")), adopted=True)

    def current(self) -> TrainingJob | None:
        """The server's run (running or the last one); looks for an orphan on first use."""
        with self._lock:
            if not self._looked:
                self._looked = True
                if self.job is None:
                    self.job = self.adopt_orphan()
            job = self.job
        if job is not None and not job.running:
            self._release(job)
        return job

    def _release(self, job: TrainingJob) -> None:
        try:
            rec = json.loads(self.lock_path.read_text())
            if int(rec.get("pid", -1)) == job.pid:
                self.lock_path.unlink(missing_ok=True)
        except (OSError, ValueError):
            pass

    def running_job(self) -> TrainingJob | None:
        job = self.current()
        return job if job is not None and job.running else None

    def check_free(self, owner: str = "") -> None:
        """Raise :class:`TrainingBusyError` when a run is in progress (before any upload is unpacked)."""
        job = self.running_job()
        if job is not None:
            if job.owned_by(owner):
                raise TrainingBusyError(f"your training run ({job.trainable.label}) is still running; "
                                        "one run at a time per server")
            raise TrainingBusyError(f"{job.busy_text()} One run at a time per server.")

    def start(self, key: str, data: str, steps: int, batch: int, out: Path, owner: str = "",
              data_note: str = "") -> TrainingJob:
        trainables = available_trainables()
        if key not in trainables:
            raise ComposerError(f"no trainer for {key!r}; available: {', '.join(trainables)}")
        if not 1 <= steps <= MAX_STEPS:
            raise ComposerError(f"steps must be 1-{MAX_STEPS}")
        if not 1 <= batch <= 512:
            raise ComposerError("batch size must be 1-512")
        self.current()  # adopt an orphan first, so it counts
        with self._lock:
            if self.job is not None and self.job.running:
                job = self.job
                if job.owned_by(owner):
                    raise TrainingBusyError(f"your training run ({job.trainable.label}) is still running; "
                                            "one run at a time per server")
                raise TrainingBusyError(f"{job.busy_text()} One run at a time per server.")
            job = TrainingJob(trainables[key], Path(out), int(steps), int(batch), data, owner=owner_hash(owner),
                              data_note=data_note)
            job.start()
            self.job = job
            tmp = self.lock_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(job.to_lock()))
            os.replace(tmp, self.lock_path)
            return job

    def stop(self, owner: str | None = None) -> TrainingJob | None:
        """Stop the run; with ``owner``, only when that owner started it (else :class:`NotOwnerError`)."""
        job = self.current()
        if job is None or not job.running:
            return job
        if owner is not None and not job.owned_by(owner):
            raise NotOwnerError(f"This run belongs to another visitor; only they can stop it. {job.busy_text()}")
        job.stop()
        self._release(job)
        return job


JOBS = JobManager()
