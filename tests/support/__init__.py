"""Test helpers: the TFLM oracle, a flatbuffer model writer and TensorFlow model factories."""
