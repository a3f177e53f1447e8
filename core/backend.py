"""Loads TensorFlow and Keras once, keeping TensorFlow's C++ start-up logging off the user's terminal."""
from __future__ import annotations

import os
import sys
import tempfile
from functools import lru_cache

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@lru_cache(maxsize=None)
def load_keras():
    """Import TensorFlow and Keras with file descriptor 2 redirected, so absl's lines cannot reach
    the screen (they ignore TF_CPP_MIN_LOG_LEVEL and would garble a full-screen terminal app)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf
            import keras

            tf.constant(0)  # initialises the devices, which logs too
            tf.get_logger().setLevel("ERROR")  # one compiled function per batch size is by design, not "retracing"
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))  # show what went wrong
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return keras
