"""``HistogramCallback``: Keras' TensorBoard callback with histgpu histograms (and gradients).

::

    from histgpu.keras import HistogramCallback

    model.fit(x, y, epochs=10,
              callbacks=[HistogramCallback("logs/fit", histogram_freq=1, gradients=True)])

It *is* a ``keras.callbacks.TensorBoard`` (same arguments, same ``train``/``validation``
runs, epoch scalars, graph, ...) whose weight histograms are computed by histgpu, so the
run layout and the tags (``<weight.path>/histogram``) are exactly those of
``keras.callbacks.TensorBoard(histogram_freq=1)``. With ``gradients=True`` it also logs
``<weight.path>/gradient``: the gradient of each trainable weight from the last training
batch of every logged epoch, as handed to the optimizer (after loss-scale unscaling,
before clipping). That is something Keras' callback cannot do.

How gradients are captured (TensorFlow backend): the optimizer's ``apply`` is wrapped so
that, only while a flag variable is set, each gradient is copied into a buffer variable
inside the compiled train step (a plain assign, so it also works under XLA). The flag is
raised just for the last batch of a logged epoch, so other steps pay one predicate; the
buffers cost one copy of the trainable weights in memory. The histograms themselves are
computed at epoch end from the buffers, outside the train step. The wrapper is removed at
the end of ``fit`` and the train function rebuilt on the next ``fit``.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional

import keras

import histgpu.summary as _summary

__all__ = ["HistogramCallback"]


def _weight_tag(weight: Any) -> str:
    """The tag stem Keras' TensorBoard callback uses for ``weight`` (``path``, ':' -> '_')."""
    return str(getattr(weight, "path", None) or weight.name).replace(":", "_")


class HistogramCallback(keras.callbacks.TensorBoard):
    """Keras TensorBoard callback whose histograms are computed by histgpu.

    Parameters
    ----------
    log_dir : str, optional
        Root of the runs (``<log_dir>/train``, ``<log_dir>/validation``), as in Keras.
    histogram_freq : int, optional
        Log histograms every this many epochs (default 1; 0 disables them).
    gradients : bool, optional
        Also log gradient histograms ``<weight.path>/gradient`` (TensorFlow backend,
        single-device training). Default False.
    buckets : int, optional
        Buckets per histogram (default 30, as ``tf.summary.histogram``).
    nonfinite : {"omit", "raise"}, optional
        Non-finite weights/gradients: leave out and report (default) or raise. See
        :mod:`histgpu.summary` for how they are shown in TensorBoard.
    **kwargs
        Any other argument of ``keras.callbacks.TensorBoard`` (``write_graph``,
        ``update_freq``, ``profile_batch``, ...).
    """

    def __init__(
        self,
        log_dir: str = "logs",
        histogram_freq: int = 1,
        *,
        gradients: bool = False,
        buckets: Optional[int] = None,
        nonfinite: str = "omit",
        **kwargs: Any,
    ):
        super().__init__(log_dir=log_dir, histogram_freq=histogram_freq, **kwargs)
        self.gradients = bool(gradients)
        self.buckets = buckets
        self.nonfinite = nonfinite
        self._grad_buffers: Dict[int, Any] = {}
        self._grad_weights: List[Any] = []
        self._grad_flag: Any = None
        self._grad_flag_value = False
        self._grad_optimizer: Any = None
        self._grad_captured = False
        self._epoch_logged = False

    # ------------------------------------------------------------------ weights

    def _log_weights(self, epoch: int) -> None:
        """Keras' hook for weight histograms, with histgpu doing the counting."""
        with self._train_writer.as_default():
            for layer in self.model.layers:
                for weight in layer.weights:
                    name = _weight_tag(weight)
                    _summary.histogram(
                        f"{name}/histogram", weight, step=epoch, buckets=self.buckets, nonfinite=self.nonfinite
                    )
                    if self.write_images:
                        self._log_weight_as_image(weight, f"{name}/image", epoch)
            if self.gradients and self._grad_captured:
                for weight in self._grad_weights:
                    _summary.histogram(
                        f"{_weight_tag(weight)}/gradient",
                        self._grad_buffers[id(weight)],
                        step=epoch,
                        buckets=self.buckets,
                        nonfinite=self.nonfinite,
                    )
                self._grad_captured = False
            self._train_writer.flush()

    # ---------------------------------------------------------------- gradients

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        super().on_train_begin(logs)
        if self.gradients and self.histogram_freq:
            self._install_gradient_capture()

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._remove_gradient_capture()
        super().on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        super().on_epoch_begin(epoch, logs)
        self._epoch_logged = bool(self.histogram_freq) and epoch % self.histogram_freq == 0

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        super().on_train_batch_begin(batch, logs)
        if self._grad_flag is None:
            return
        steps = (self.params or {}).get("steps")
        per_call = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        # Capture only in the last call of a logged epoch (every call if the length is unknown).
        want = self._epoch_logged and (steps is None or batch + per_call >= steps)
        if want != self._grad_flag_value:
            self._grad_flag.assign(want)
            self._grad_flag_value = want
        if want:
            self._grad_captured = True

    def _install_gradient_capture(self) -> None:
        import tensorflow as tf

        if keras.backend.backend() != "tensorflow":
            raise ValueError("HistogramCallback(gradients=True) needs the TensorFlow backend")
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not self.model.trainable_weights:
            warnings.warn("HistogramCallback: no optimizer or trainable weights; gradients are not logged")
            return
        inner = getattr(optimizer, "inner_optimizer", None) or optimizer  # unscaled gradients
        if "apply" in vars(inner):
            return  # already wrapped (by another instance)
        self._grad_weights = list(self.model.trainable_weights)
        self._grad_buffers = {
            id(w): tf.Variable(tf.zeros(w.shape, w.dtype), trainable=False, name=f"histgpu_grad_{i}")
            for i, w in enumerate(self._grad_weights)
        }
        self._grad_flag = tf.Variable(False, trainable=False, name="histgpu_capture_gradients")
        self._grad_flag_value = False
        buffers, flag, original = self._grad_buffers, self._grad_flag, inner.apply

        def apply(grads: Any, trainable_variables: Any = None) -> Any:
            grads = list(grads)
            variables = list(trainable_variables) if trainable_variables is not None else self._grad_weights

            def capture() -> Any:
                for g, v in zip(grads, variables):
                    buf = buffers.get(id(v))
                    if g is None or buf is None:
                        continue
                    if isinstance(g, tf.IndexedSlices):
                        g = tf.convert_to_tensor(g)
                    buf.assign(tf.cast(g, buf.dtype))
                return tf.constant(True)

            tf.cond(flag, capture, lambda: tf.constant(False))
            return original(grads, trainable_variables)

        inner.apply = apply
        self._grad_optimizer = inner
        # The train step may already be traced without the wrapper (an earlier fit): retrace.
        self.model.make_train_function(force=True)

    def _remove_gradient_capture(self) -> None:
        if self._grad_optimizer is not None:
            vars(self._grad_optimizer).pop("apply", None)
            self._grad_optimizer = None
            self.model.train_function = None  # the next fit traces a step without the wrapper
        self._grad_flag = None
        self._grad_flag_value = False
