"""AdamW that updates only the rows a sparse gradient names (the "lazy" Adam)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="multimodal_tf")
class LazyAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, with sparse-row updates for embedding tables.

    A batch of 32 posts names a few thousand rows of the bag's 200,000-row
    embedding table, and its gradient arrives as `tf.IndexedSlices`; Keras's
    AdamW densifies it and then decays the moments, applies weight decay and
    updates every row of the table, every step (about 60% of the default
    model's training step). For a variable whose gradient is sparse, this
    optimizer gathers the named rows, updates their moments, weight decay and
    values as AdamW would, and scatters them back; the other rows are left
    alone until a batch names them (as TF-Addons' `LazyAdam` and PyTorch's
    `SparseAdam` do). Dense gradients (and every gradient with `amsgrad`) get
    AdamW's update unchanged. The arguments and `get_config` are AdamW's.

    Example:
    >>> import numpy as np
    >>> optimizer = LazyAdamW(learning_rate=2e-3, weight_decay=1e-4)
    >>> table = keras.Variable(np.ones((5, 2), "float32"))
    >>> optimizer.apply([tf.IndexedSlices(tf.ones((1, 2)), tf.constant([3]))], [table])
    >>> [bool((np.asarray(table)[row] != 1).any()) for row in range(5)]
    [False, False, False, True, False]
    """

    def _backend_apply_gradients(self, grads, trainable_variables):
        # Weight decay runs before update_step, over every variable: leave the
        # sparse ones to update_step, which decays only the rows it updates.
        self._sparse_keys = {
            self._var_key(variable)
            for gradient, variable in zip(grads, trainable_variables, strict=True)
            if isinstance(gradient, tf.IndexedSlices) and not self.amsgrad
        }
        return super()._backend_apply_gradients(grads, trainable_variables)

    def _use_weight_decay(self, variable):
        if self._var_key(variable) in getattr(self, "_sparse_keys", ()):
            return False
        return super()._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        learning_rate = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = learning_rate * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        # A row named twice in the batch gets the sum of its gradients, as dense.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, dtype), position, tf.shape(rows)[0]
        )
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        m = tf.gather(momentum, rows)
        v = tf.gather(velocity, rows)
        m = m + (values - m) * (1 - beta_1)
        v = v + (tf.square(values) - v) * (1 - beta_2)
        self.assign(momentum, tf.IndexedSlices(m, rows))
        self.assign(velocity, tf.IndexedSlices(v, rows))
        change = m * alpha / (tf.sqrt(v) + self.epsilon)
        # AdamW's own decay (its exclusions apply), at the rate this step already read.
        if self.weight_decay and super()._use_weight_decay(variable):
            decay = tf.cast(self.weight_decay, dtype) * learning_rate
            change += tf.gather(variable, rows) * decay
        self.assign_sub(variable, tf.IndexedSlices(change, rows))
