"""User-facing errors.

Every problem a user can cause (a bad file, an out-of-range setting, an untrusted
checkpoint) raises a subclass of :class:`HDMError` whose message is one line that names
the file or option and says what to do. The CLI prints ``error: <message>`` and exits
non-zero; the studio shows the message in a dialog. Anything else is a bug.
"""

from __future__ import annotations


class HDMError(Exception):
    """Base class: a problem with the user's input, explained in one line."""


class ConfigError(HDMError, ValueError):
    """An option or setting is out of range or inconsistent."""


class DataError(HDMError, ValueError):
    """A dataset or data file is missing, unreadable or malformed."""


class CheckpointError(HDMError):
    """A checkpoint is missing, truncated, of another model, or untrusted."""


class OutputError(HDMError, OSError):
    """An output file or folder cannot be written where the user asked (a folder in the way, a parent
    that is a file, no permission, a read-only or full disk), or writing it would destroy an input.

    Also an :class:`OSError`, so code that already catches ``OSError`` around a write keeps working.
    """


class Cancelled(Exception):  # noqa: N818 - reads naturally at the raise site
    """A long job stopped because its cancel token was set (not an error).

    ``partial``: what the job had made when it stopped, where it can be used (a stopped training run's
    :class:`~engine.training.Trainer`, its ``model()`` samples), else None.
    """

    def __init__(self, *args: object, partial: object = None) -> None:
        super().__init__(*args)
        self.partial = partial
