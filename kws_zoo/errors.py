"""Exceptions that mean "bad input", printed as one line by the CLI (anything else is a bug)."""
from kws_zoo.audio import AudioError


def _user_errors() -> tuple:
    from kws_zoo.datasets.pipeline import BadFilesError
    from kws_zoo.inference import ModelLoadError
    from kws_zoo.recipe import RecipeError
    from kws_zoo.train import RunDirError

    return (AudioError, BadFilesError, ModelLoadError, RecipeError, RunDirError, FileNotFoundError, KeyError,
            ValueError)


USER_ERRORS = _user_errors()
