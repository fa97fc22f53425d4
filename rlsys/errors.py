"""Every error class rlsys raises on purpose, in one place. The command line prints the
message of a `UserFacingError` (and `ConfigError`) without a stack: each one says what is
wrong and what to do."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem, with the file and key named in the message."""


class DataError(ValueError):
    """A data file or dataset that cannot be read as the config says (file, line and field named)."""


class ModelNotFoundError(FileNotFoundError):
    """A model path or built-in name that resolves to no model folder."""


class RewardError(ValueError):
    """A reward term that cannot be built (unknown name, bad kwargs, user code that fails to load)."""


class RewardModelError(ValueError):
    """A reward-model checkpoint that cannot score (not a sequence classifier, no pad token)."""


class WordListError(FileNotFoundError):
    """A language-purity reward's word list that is missing or empty."""


class LogFileError(ValueError):
    """A run-folder log has a damaged row that is not its last."""


class RunError(RuntimeError):
    """A run stopped: which actor, doing what, and why."""


class Unplaceable(RunError):
    """A role that no node of the cluster can host (resources asked for and not offered):
    restarting the run would not help."""


class RunStopped(RuntimeError):
    """A run stopped on purpose (SIGTERM, SIGINT): resumable by running the same command again."""

    def __init__(self, message: str, checkpointed: bool = True) -> None:
        super().__init__(message)
        self.checkpointed = checkpointed


class SyncPeerLost(RuntimeError):
    """A member of the weight-sync group died during a broadcast; the group must be rebuilt."""


class WeightSyncError(RuntimeError):
    """An engine did not end a weight sync holding the learner's weights."""


# Printed as "rlsys: <message>" with exit status 1 (ConfigError: status 2).
USER_FACING = (RunError, DataError, ModelNotFoundError, RewardError, FileNotFoundError, FileExistsError)
