"""Exception and warning classes raised by scoreflow."""

from __future__ import annotations


class ScoreflowError(Exception):
    """Base class of every error scoreflow raises on purpose."""


class RegistryError(ScoreflowError):
    """A component name could not be registered or resolved."""


class UnknownComponentError(RegistryError, KeyError):
    """No component of the requested kind has this name.

    Subclasses ``KeyError`` so ``except KeyError`` keeps working, but prints its
    message plainly (``KeyError`` would quote it).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownOptionError(RegistryError, TypeError):
    """A component was given an option (keyword argument) its factory does not take.

    Subclasses ``TypeError``, what Python raises for an unexpected keyword, so ``except TypeError``
    keeps working.
    """


class DuplicateComponentError(RegistryError):
    """A plugin tried to take a name that a built-in component already owns."""


class AmbiguousComponentError(RegistryError):
    """Two plugins registered the same bare name; a qualified name is needed."""


class PluginLoadError(ScoreflowError):
    """A plugin could not be imported (raised only in strict mode)."""


class PluginError(ScoreflowError):
    """A plugin's hook failed or is malformed (raised only in strict mode)."""


class DroppedOptionsError(ScoreflowError, TypeError):
    """Options were given that the component they name would silently ignore (e.g. ``snr`` with a corrector
    instance); scoreflow refuses them instead of dropping them."""


class NonFiniteError(ScoreflowError, ValueError, FloatingPointError):
    """Sampling or integration produced NaN or infinity; the message names the component, step and time."""


class SolverError(ScoreflowError):
    """An ODE/SDE solver could not advance (e.g. its step size underflowed)."""


class IncompatibleComponentsError(ScoreflowError):
    """Components that cannot work together were combined."""


class CheckpointError(ScoreflowError):
    """A checkpoint or pretrained model is missing, corrupt, or not in scoreflow's safe format."""


class UnknownPresetError(ScoreflowError, ValueError):
    """A training preset name that no shipped preset file has."""


class RunExistsError(ScoreflowError, FileExistsError):
    """Training was asked to start in a folder that already holds a run (use resume or overwrite)."""


class TrainingDivergedError(ScoreflowError, FloatingPointError):
    """The training loss became non-finite or exploded; the message names the step and what to change."""


class RunBusyError(ScoreflowError):
    """Another live process is writing the same run folder."""


class TrainingInterrupted(ScoreflowError):
    """SIGINT or SIGTERM stopped training; a checkpoint of the current step was saved.

    ``exit_code`` is the shell convention for the signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SamplingInterrupted(ScoreflowError):
    """SIGINT or SIGTERM stopped sampling; ``samples`` holds the blocks that were finished (in order)."""

    def __init__(self, message: str, samples, nfe: int, exit_code: int) -> None:
        super().__init__(message)
        self.samples, self.nfe, self.exit_code = samples, nfe, exit_code


class IDXFormatError(ScoreflowError, ValueError):
    """An IDX (MNIST-format) file is malformed or fails its checksum."""


class TunedScheduleError(ScoreflowError, ValueError):
    """A tuned-schedule file is missing, malformed, or has no grid for the request."""


class ScoreflowPluginWarning(UserWarning):
    """A plugin failed to load or misbehaved; the rest of scoreflow keeps working."""
