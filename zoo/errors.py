"""Errors a user can fix.

Every `ZooError` is printed by the CLI as one line (no traceback unless `--debug`) and
exits with status 2. The message names the problem and, where there is one, the fix.
"""

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """A problem with the user's input, environment or files, explained in one line."""


class ZooWarning(UserWarning):
    """A result that may not be what the user meant (e.g. words the model never saw);
    the CLI prints it as one `zoo: warning: ...` line, Python callers get a warning."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Returns a ' (did you mean ...?)' hint for an unknown `name`, or ''."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(repr(m) for m in matches)}?)" if matches else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> ZooError:
    """Builds the standard error for an unknown task, model, data set or key."""
    choices = sorted(choices)
    hint = closest(name, choices)
    return ZooError(f"unknown {kind} {name!r}{hint}; choose from: {', '.join(choices)}")
