"""The transport-free core: what a garment is, how it is cropped, classified, stored and queued.

Nothing in this package knows about gRPC; services and workers are thin layers over it.
"""

import os

# Must happen before TensorFlow or Keras is first imported anywhere: quiet TF's C++ logs, pin Keras to TF.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
