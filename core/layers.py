"""Continuo's own keras layers: the embedding that also scores the next word, and the LSTM that trains on a CPU."""

from __future__ import annotations

import keras  # imported by build_model only, after backend.load_keras() has started both quietly
import tensorflow as tf


class UnrolledLSTM(keras.layers.Layer):
    """keras.layers.LSTM's weights (kernel, recurrent_kernel and bias, gates in the order i, f, c, o) and
    function over windows of a fixed length, computed for speed on a CPU:

    - the inputs of every step meet the kernel in one large matrix product instead of one per step;
    - the steps are unrolled, so TensorFlow schedules them as one graph;
    - with `matmul_dtype="bfloat16"` the matrix products run in bfloat16 (native on CPUs with AVX-512 BF16
      or AMX) while the gates and the cell state stay float32. keras' mixed precision, which keeps the whole
      cell in bfloat16, learned far slower (README, How it works: Training).
    - with `weight_drop`, each training step drops that share of the recurrent weights (DropConnect, as in
      Merity et al. 2017's AWD-LSTM): a regulariser that leaves the served LSTM unchanged.

    Training only: its weights are copied into a keras LSTM, whose loop cuDNN can run, for saving.
    """

    def __init__(
        self,
        units: int,
        return_sequences: bool = False,
        go_backwards: bool = False,
        matmul_dtype="float32",
        weight_drop: float = 0.0,
        **kw,
    ):
        super().__init__(**kw)
        self.units, self.return_sequences, self.go_backwards = units, return_sequences, go_backwards
        self.matmul_dtype = tf.as_dtype(matmul_dtype)
        self.weight_drop = weight_drop  # share of the recurrent weights dropped in each training step

    def build(self, input_shape) -> None:
        units = self.units

        def forget_bias_one(shape, dtype=None):  # keras' unit_forget_bias
            return tf.concat([tf.zeros(units), tf.ones(units), tf.zeros(2 * units)], 0)

        gates = 4 * units
        self.kernel = self.add_weight(shape=(input_shape[-1], gates), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(units, gates), initializer="orthogonal", name="recurrent_kernel")
        self.bias = self.add_weight(shape=(gates,), initializer=forget_bias_one, name="bias")

    def _product(self, x, kernel):
        return tf.cast(tf.matmul(tf.cast(x, self.matmul_dtype), kernel), tf.float32)

    def call(self, x, training=None):
        steps, features = x.shape[1], x.shape[2]
        batch = tf.shape(x)[0]
        recurrent_kernel = self.recurrent_kernel
        if training and self.weight_drop > 0:  # one mask for every step and row of the batch (DropConnect)
            recurrent_kernel = tf.nn.dropout(recurrent_kernel, self.weight_drop)
        kernel, recurrent_kernel = (tf.cast(k, self.matmul_dtype) for k in (self.kernel, recurrent_kernel))
        # the input's share of every gate, for all steps at once, time-major so each step's rows are contiguous
        by_time = tf.reshape(tf.transpose(x, [1, 0, 2]), [-1, features])
        inputs = tf.unstack(tf.reshape(self._product(by_time, kernel) + self.bias, [steps, batch, 4 * self.units]))
        h = c = tf.zeros([batch, self.units])
        outputs = [None] * steps
        for t in reversed(range(steps)) if self.go_backwards else range(steps):
            i, f, g, o = tf.split(inputs[t] + self._product(h, recurrent_kernel), 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = outputs[t] = tf.sigmoid(o) * tf.tanh(c)
        return tf.stack(outputs, 1) if self.return_sequences else h


class TiedEmbedding(keras.layers.ReversibleEmbedding):
    """keras' ReversibleEmbedding with a bias per word: called with `reverse=True` on vectors of its width, its
    one matrix scores the next word. Weight tying (Press & Wolf 2017; Inan et al. 2017) halves the word
    weights to learn from a small corpus; the bias, which keras' layer lacks, carries each word's frequency
    (README, Quality on held-out text)."""

    def build(self, input_shape=None) -> None:
        super().build(input_shape)
        self.output_bias = self.add_weight(shape=(self.input_dim,), initializer="zeros", name="output_bias")

    def call(self, inputs, reverse: bool = False):
        outputs = super().call(inputs, reverse=reverse)
        return outputs + self.output_bias if reverse else outputs

    @property
    def variable_serialization_spec(self):
        """The variables saved and loaded, in order: keras' own, then the bias."""
        spec = super().variable_serialization_spec
        spec[None] = [*spec[None], "output_bias"]  # unquantized, the only mode Continuo saves
        return spec


CUSTOM_OBJECTS = {"TiedEmbedding": TiedEmbedding}  # what loading a saved model needs besides keras' own layers
