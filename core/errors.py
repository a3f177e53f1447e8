"""User-facing errors: each carries one line that says what was wrong and what to do."""


class ContinuoError(Exception):
    """A mistake the user can fix; front-ends show str(error) without a traceback."""


class InputFileError(ContinuoError):
    """A text file that is missing, empty, binary, not UTF-8 or too large."""


class CorpusTooSmall(ContinuoError):
    """Too little text to learn from."""


class BundleError(ContinuoError):
    """A model bundle that is missing, corrupt or of another format version."""


class SeedError(ContinuoError):
    """A seed the model cannot continue (empty, or only unknown words)."""


class ConfigError(ContinuoError, ValueError):
    """A model or training setting out of range."""


class DecodingError(ContinuoError, ValueError):
    """An invalid generation option; `field` names it, so a form can mark it (None: a clash of several)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class Cancelled(ContinuoError):
    """Training was cancelled; nothing was saved."""


class VoiceTooSmall(ContinuoError):
    """Too few of a writer's texts to count their voice and hold some out to weigh it."""
