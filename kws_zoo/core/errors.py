"""Every exception kws_zoo raises for bad input. The CLI prints these as one line and exits 2; anything else
is a bug and keeps its traceback. Each subclasses the built-in a caller would expect (ValueError for bad
values, RuntimeError for a broken environment) so `except ValueError` still works."""
from __future__ import annotations

from collections.abc import Sequence


class KwsZooError(Exception):
    """Base of the errors that mean "fix your input or environment", never "fix kws_zoo"."""


class ConfigError(KwsZooError, ValueError):
    """A config value of the wrong key, type or range."""


class RecipeError(ConfigError):
    """A recipe that cannot be trained as written: its message names the file and the field."""


class AudioError(KwsZooError, ValueError):
    """A file that cannot be used as audio; str(err) is '<path>: <problem>'."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class BadFilesError(KwsZooError, ValueError):
    """Unreadable audio files; str() lists every one so a dataset can be fixed in one pass."""

    def __init__(self, errors: Sequence[AudioError]):
        self.errors = list(errors)
        listing = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} unreadable audio file(s) (fix or remove them, or set "
                         f"skip_bad_files=True to drop them):\n{listing}")


class DataError(KwsZooError, ValueError):
    """A dataset folder that is missing, empty or laid out wrongly; the message names the folder."""


class ModelLoadError(KwsZooError, ValueError):
    """A model path that does not hold a usable model of this zoo."""


class ModelError(KwsZooError, ValueError):
    """An unknown model name or a model argument it does not take."""


class RunDirError(KwsZooError, RuntimeError):
    """A run directory that holds something else than the run asked for."""


class StreamingError(KwsZooError, ValueError):
    """A model that cannot be streamed (a layer mixes time steps in a way no ring buffer reproduces)."""


class ExportError(KwsZooError, ValueError):
    """A model that cannot be exported as asked (e.g. float ops left in an int8 graph)."""


class DeviceError(KwsZooError, ValueError):
    """A .tflite the device side cannot read or run (not a flatbuffer, unknown op, arena too small)."""


class EngineError(KwsZooError, RuntimeError):
    """A TTS engine failed or produced unusable audio."""


class EngineMissing(EngineError):
    """A TTS binary or voice is not installed; the message names the apt package."""


class ExtraMissing(KwsZooError, RuntimeError):
    """An optional extra is not installed; the message names the pip command (pip install kws_zoo[scale])."""


class DownloadError(KwsZooError, RuntimeError):
    """A pretrained file that could not be fetched or failed its check (hash, size, archive member); nothing of
    it is left in the cache. The message names the file and every URL tried."""


class ToolMissing(KwsZooError, RuntimeError):
    """A command-line tool kws_zoo runs (valgrind) is not installed; the message names it."""


USER_ERRORS = (KwsZooError,)
