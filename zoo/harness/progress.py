"""Progress on the terminal and in `train.log`: each phase said as it starts, a rich bar
with throughput and ETA on a TTY, plain lines at a steady pace otherwise.

Nothing here reads a device value: the trainer hands in scalars it already fetched at its
log cadence, so progress adds no host synchronisation to the hot loop.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from zoo.errors import ZooWarning

PLAIN_EVERY_SECONDS = 30.0  # piped output: one progress line at most this often
ANNOUNCE_AFTER = 3.0  # piped output: a phase's start is said once it has taken this long


def _fmt(values: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in values.items())


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes}m{s:02d}s" if minutes else f"{seconds:.1f}s"


class EpochProgress:
    """Reports phases, steps within an epoch, validation batches, and one line per epoch.

    `writing_log(path)` and `keep_log()` also append every logged line (with the time) to
    a file, whatever the terminal shows: `train.log` in the workdir.
    """

    def __init__(self, total_epochs: int, *, quiet: bool = False,
                 plain_every: float = PLAIN_EVERY_SECONDS, announce_after: float = ANNOUNCE_AFTER):
        self.total_epochs = total_epochs
        self.quiet = quiet
        self.console = Console(stderr=True)
        self.interactive = sys.stderr.isatty() and not quiet
        self.plain_every, self.announce_after = plain_every, announce_after
        self._file = None
        self._held: list[str] | None = None  # lines for the log file, before it is written
        self._unsaid: list[str] | None = None  # notes for the terminal, before a phase is said
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._task = None

    @contextlib.contextmanager
    def writing_log(self, path: Path, *, enabled: bool = True) -> Iterator[None]:
        """Meanwhile, every logged line also goes to `path` (appended, line-buffered) once
        `keep_log()` has been called: until then lines are held, so a run refused before
        it starts (bad input) writes nothing."""
        self._log_path, self._held = path, ([] if enabled else None)
        try:
            yield
        finally:
            self.stop_bar()
            self._close_file()
            self._held = None

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # what the full disk would not take is lost: the run goes on

    def keep_log(self) -> None:
        """Starts writing the log file: the lines held so far, then every new one."""
        if self._held is None or self._file is not None:
            return
        try:
            self._file = open(self._log_path, "a", buffering=1)
        except OSError:
            return
        self._write("".join(self._held))

    def log(self, message: str, *, terminal: bool = True, file: bool = True) -> None:
        """One line on stderr (flushed: piped output shows it as it happens) and in the log
        file; `terminal=False`: the log file only, `file=False`: the terminal only."""
        if terminal and not self.quiet:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)
            self.console.file.flush()
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        if not file:
            return
        if self._file is not None:
            self._write(line)
        elif self._held is not None:
            self._held.append(line)

    def _write(self, text: str) -> None:
        """Into the log file; a full disk or a vanished workdir ends the log file, never
        the run (its checkpoints report the disk themselves). A background thread's line
        that comes as the file closes is lost."""
        file = self._file
        if file is None:
            return
        try:
            file.write(text)
        except ValueError:  # closed by the run's end meanwhile
            pass
        except OSError:
            self._close_file()

    @contextlib.contextmanager
    def relaying(self) -> Iterator[None]:
        """Meanwhile, zoo's warnings (`ZooWarning`: e.g. images upsampled for the model)
        are logged as `zoo: warning: ...` lines, in the log file too (others as before),
        and so are the `zoo` loggers' INFO records (`zoo.data`: data made on a first run).
        Orbax's absl and asyncio records and exceptions no caller can catch
        (`sys.unraisablehook`: tensorstore's callbacks after a failed save) go to the log
        file only: they are background threads' view of what zoo reports in one line."""
        shown = warnings.showwarning

        def show(message, category, *args, **kwargs):
            if not issubclass(category, ZooWarning):
                return shown(message, category, *args, **kwargs)
            if self.quiet:
                shown(message, category, *args, **kwargs)
            self.log(f"zoo: warning: {message}")

        relay, to_file = _Relay(self), _FileOnly(self)
        zoo_log = logging.getLogger("zoo")
        storage_logs = [logging.getLogger(name) for name in ("absl", "asyncio")]
        level, propagate = zoo_log.level, [log.propagate for log in storage_logs]
        zoo_propagates = zoo_log.propagate
        zoo_log.addHandler(relay)
        zoo_log.setLevel(logging.INFO)
        zoo_log.propagate = False  # the relay says it: not again through a root handler
        # (importing orbax gives the root logger one, so every line came out twice)
        for log in storage_logs:
            log.addHandler(to_file)
            log.propagate = False
        unraisable = sys.unraisablehook
        sys.unraisablehook = lambda hook: self.log(
            f"unraisable: {hook.exc_type.__name__}: {hook.exc_value}", terminal=False)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = show
                yield
        except BaseException:
            # A failed run's storage threads report its failure again (unretrieved futures,
            # a closed event loop) until the process exits: they stay routed here, to the
            # closed log, so the error's one line is the last on stderr.
            raise
        else:
            for log, was in zip(storage_logs, propagate):
                log.removeHandler(to_file)
                log.propagate = was
            sys.unraisablehook = unraisable
        finally:
            zoo_log.removeHandler(relay)
            zoo_log.setLevel(level)
            zoo_log.propagate = zoo_propagates

    def note(self, message: str) -> None:
        """A line from a `zoo` logger: in the log file now; on the terminal now, or, inside
        a phase not yet announced, once (if) it is."""
        self.log(message, terminal=False)
        with self._lock:
            if self._unsaid is not None:
                self._unsaid.append(message)
                return
        self.log(message, file=False)

    def _announce(self, what: str) -> None:
        """The timer's call: the phase's start line, then the notes held back."""
        with self._lock:
            self.log(f"{what} ...", file=False)
            for message in self._unsaid or ():
                self.log(message, file=False)
            self._unsaid = None

    @contextlib.contextmanager
    def phase(self, what: str) -> Iterator[list[str]]:
        """Says `what ...` as it starts, then what came of it (the strings the caller
        appends to the yielded list, else "done") and how long it took.

        On a TTY the start is a spinner; piped, the start line is printed only once the
        phase has taken `announce_after` seconds, and the outcome only after such a long
        phase, so quick phases and a quick refusal (bad input: zoo's one error line) add
        nothing to the terminal; `note`s made meanwhile wait for the announcement too.
        The log file always gets everything.
        """
        self.log(f"{what} ...", terminal=False)
        t0, outcome = time.perf_counter(), []
        if self.interactive:
            waiting = self.console.status(what)
        else:
            self._unsaid = []  # notes held until the phase is announced
            waiting = _Later(self.announce_after, lambda: self._announce(what))
        try:
            with waiting:
                yield outcome
        finally:
            with self._lock:
                self._unsaid = None
        seconds = time.perf_counter() - t0
        self.log(f"{what}: {', '.join(outcome) or 'done'} in {_duration(seconds)}",
                 terminal=seconds >= self.announce_after)

    def start_epoch(self, epoch: int, steps: int, done: int = 0) -> None:
        self._t0, self._examples, self._status = time.perf_counter(), 0, ""
        self._epoch, self._steps, self._done, self._last_line = epoch, steps, done, self._t0
        if self.interactive:
            self._start_bar(f"epoch {epoch + 1}/{self.total_epochs}", steps, done)

    def _start_bar(self, title: str, total: int, done: int = 0) -> None:
        self._bar = Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                             TextColumn("{task.fields[status]}"),
                             console=self.console, transient=True)
        self._bar.start()
        self._task = self._bar.add_task(title, total=total, completed=done, status="")

    def advance(self, step_in_epoch: int, examples: int, values: Mapping[str, float] | None) -> None:
        """Called every step; `values` are scalars freshly fetched at the log cadence, else None."""
        self._examples = examples
        if values:
            self._status = _fmt(values)
        if self._bar is not None:
            self._bar.update(self._task, completed=step_in_epoch,
                             status=f"{self.throughput():,.0f} ex/s {self._status}")
        elif not self.interactive and time.perf_counter() - self._last_line >= self.plain_every:
            self._last_line = time.perf_counter()
            self.log(self._plain_line(step_in_epoch))

    def _plain_line(self, step_in_epoch: int) -> str:
        """Where the epoch stands, for piped output: steps, throughput, ETA, last scalars."""
        elapsed = time.perf_counter() - self._t0
        done = step_in_epoch - self._done
        left = (self._steps - step_in_epoch) * elapsed / max(done, 1)
        return (f"epoch {self._epoch + 1}/{self.total_epochs} step {step_in_epoch}/{self._steps} "
                f"({self.throughput():,.0f} ex/s, eta {_duration(left)}) {self._status}").rstrip()

    def throughput(self) -> float:
        return self._examples / max(time.perf_counter() - self._t0, 1e-9)

    @contextlib.contextmanager
    def evaluating(self, split: str, batches: int) -> Iterator[Callable[[], None]]:
        """A bar over `split`'s batches on a TTY (validation, testing); yields the function
        to call after each batch."""
        if not self.interactive:
            yield lambda: None
            return
        self.stop_bar()  # the epoch's, if any: its line follows validation
        self._start_bar(f"  {split}", batches)
        bar, task = self._bar, self._task
        try:
            yield lambda: bar.advance(task)
        finally:
            bar.stop()
            self._bar = None

    def stop_bar(self) -> None:
        """Takes the live bar off the terminal (also when an epoch ends in an error,
        so the error is not drawn over)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def end_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        self.stop_bar()
        self.log(f"epoch {epoch + 1}/{self.total_epochs} {_fmt(values)} "
                 f"({self.throughput():,.0f} ex/s, {time.perf_counter() - self._t0:.1f}s)")


class _Later:
    """`with _Later(seconds, say):` calls `say()` from a timer thread if the block is
    still running after `seconds`."""

    def __init__(self, seconds: float, say: Callable[[], object]):
        self._timer = threading.Timer(seconds, say)
        self._timer.daemon = True

    def __enter__(self) -> None:
        self._timer.start()

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


class _Relay(logging.Handler):
    """The `zoo` loggers' records as progress lines."""

    def __init__(self, progress: EpochProgress):
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.note(record.getMessage())


class _FileOnly(logging.Handler):
    """A library's warnings and errors as lines of the log file alone."""

    def __init__(self, progress: EpochProgress):
        super().__init__(logging.WARNING)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.log(f"{record.name}: {record.levelname.lower()}: {record.getMessage()}",
                          terminal=False)
