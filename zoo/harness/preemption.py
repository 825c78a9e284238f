"""Stopping cleanly when asked: SIGTERM or SIGINT finish the step, checkpoint, exit 0.

Schedulers and spot instances send SIGTERM some seconds before killing a job. In one
process zoo's own handler just raises a flag that the loop reads between steps (no
device sync). Under `jax.distributed` every process must save the same step, so JAX's
preemption service (started by `jax.distributed.initialize`, which takes SIGTERM) picks
the step and orbax's `reached_preemption` reports it; SIGINT is forwarded to that
service as a SIGTERM. A second SIGINT aborts at once. Whether JAX is distributed is
asked only when needed, never by initialising a backend, so `jax.distributed` may be
initialised after the handlers are installed.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import jax
import orbax.checkpoint as ocp


class Preempted(Exception):
    """Raised by `fit` once the checkpoint of an interrupted run is on disk."""

    def __init__(self, signal_name: str, step: int, epoch: int):
        super().__init__(f"stopped by {signal_name} at step {step} (epoch {epoch + 1})")
        self.signal_name, self.step, self.epoch = signal_name, step, epoch


class StopSignal:
    """Catches SIGTERM and SIGINT for the duration of a `with` block."""

    def __init__(self):
        self._previous: dict[int, object] = {}
        self.received: str | None = None

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread: nothing to catch here
        signals = [signal.SIGINT]
        if not jax.distributed.is_initialized():  # else SIGTERM stays with JAX's service
            signals.append(signal.SIGTERM)
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now, without the checkpoint
        self.received = signal.Signals(signum).name
        # os.write, not print: a handler may interrupt a print to the same stream.
        os.write(2, f"zoo: {self.received}: finishing this step to save a checkpoint "
                    f"(Ctrl-C again to abort)\n".encode())
        if jax.distributed.is_initialized():
            os.kill(os.getpid(), signal.SIGTERM)  # let JAX's service agree on a step

    def requested(self, step: int) -> bool:
        """Whether to checkpoint and stop now, before running `step`.

        Called on every process at every step: under `jax.distributed` it is the sync
        point itself, so no process may skip it.
        """
        if jax.distributed.is_initialized():
            if ocp.multihost.reached_preemption(step):
                self.received = self.received or "SIGTERM"
                return True
            return False
        return self.received is not None
