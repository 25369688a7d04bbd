"""Keep TensorFlow's native log lines (oneDNN, cpu_feature_guard, XLA, absl) off the terminal.

They are written by C++ code straight to file descriptor 2, so Python logging cannot filter them: the
environment has to say so before TensorFlow is first imported. POEMBOT_LOG_LEVEL=DEBUG (or --verbose)
lets them through.
"""
from __future__ import annotations

import os
import sys
import tempfile

# What TensorFlow's C++ side prints on import however TF_CPP_MIN_LOG_LEVEL is set: absl logs to
# fd 2 before it is initialised (TensorFlow 2.21 on a CPU where oneDNN's custom ops are on).
IMPORT_NOISE = ("absl::InitializeLog", "I0000", "W0000", "oneDNN custom operations", "cpu_feature_guard",
                "XLA service", "To enable the following instructions")

# TF_CPP_MIN_LOG_LEVEL 3: errors only, for TensorFlow's own logging and (TF >= 2.16) the absl logging
# that XLA and cpu_feature_guard use; GLOG/ABSL for libraries that read those instead.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_CPP_MAX_VLOG_LEVEL": "-1", "GLOG_minloglevel": "3",
             "ABSL_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}


def verbose_requested() -> bool:
    from protocol.settings import ConfigError, LogSettings

    try:
        return LogSettings.from_env().log_level == "DEBUG"
    except ConfigError:          # not verbose: the role's own start-up reports the bad value
        return False


def quiet_native_logs() -> None:
    """Set the quiet environment (for this process and the children it starts) unless DEBUG is asked for.

    A value the user set is kept; TensorFlow must not have been imported yet for this to work."""
    if verbose_requested():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow now with fd 2 pointed at a temporary file, then pass on every line that
    is not its start-up noise (an error while importing still reaches the terminal). For commands
    that need TensorFlow; a no-op when DEBUG is asked for or TensorFlow is already in."""
    if "tensorflow" in sys.modules or verbose_requested():
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass                 # the command's own import says what is missing, in its words
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not any(n in line for n in IMPORT_NOISE)))
