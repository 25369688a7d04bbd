"""Keep TensorFlow's native log lines (oneDNN, cpu_feature_guard, XLA, absl) off the terminal.

They are written by C++ code straight to file descriptor 2, so Python logging cannot filter them: the
environment has to say so before TensorFlow is first imported. POEMBOT_LOG_LEVEL=DEBUG (or --verbose)
lets them through.
"""
from __future__ import annotations

import os

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
