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
computed at epoch end from the buffers, outside the train step.

The wrapper and its buffers are removed on every way out of ``fit``. Keras calls
``on_train_end`` only when ``fit`` returns, so the capture also removes itself

* at once when an exception (a ``KeyboardInterrupt``, an error) leaves a train step or
  this callback's own logging;
* when the model next trains (``fit``, ``train_on_batch``: both start with the model's
  ``make_train_function``) if ``fit`` was left from elsewhere, e.g. another callback
  raising; a later ``fit`` therefore never runs the capturing train step.

The train function is then rebuilt on the next ``fit``.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional

import keras
import numpy as np

import histgpu.summary as _summary
from histgpu import _batch, _options

__all__ = ["HistogramCallback"]


def _check_histogram_freq(value: Any) -> int:
    """An epoch count >= 0; ``bool`` and floats are refused rather than read as 1 or truncated."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"histogram_freq must be an integer number of epochs (0 disables histograms), "
                        f"not {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"histogram_freq must be >= 0 (0 disables histograms), got {value}")
    return int(value)


def _check_buckets(value: Any) -> Optional[int]:
    """``buckets`` as :func:`histgpu.summary.histogram` takes it, checked now, not at the first log."""
    if value is not None:
        _options.bucket_count(value)  # TypeError for bool/float/str, ValueError above 2**24
        value = int(value)
    return value


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
        Buckets per histogram (default 30, as ``tf.summary.histogram``; negative means 0).
    nonfinite : {"omit", "raise"}, optional
        Non-finite weights/gradients: leave out and report (default) or raise. See
        :mod:`histgpu.summary` for how they are shown in TensorBoard.
    **kwargs
        Any other argument of ``keras.callbacks.TensorBoard`` (``write_graph``,
        ``update_freq``, ``profile_batch``, ...).

    Raises
    ------
    TypeError
        If ``histogram_freq`` or ``buckets`` is not an integer (``bool`` and floats
        included) or ``gradients`` is not a bool.
    ValueError
        If ``histogram_freq`` is negative, ``buckets`` above 2**24, or ``nonfinite``
        not one of ``"omit"``, ``"raise"``.
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
        # Checked here: Keras takes any value, and a bad one would fail only at the first log.
        histogram_freq = _check_histogram_freq(histogram_freq)
        if not isinstance(gradients, (bool, np.bool_)):
            raise TypeError(f"gradients must be True or False, not {type(gradients).__name__} {gradients!r}")
        buckets = _check_buckets(buckets)
        _options.nonfinite_mode(nonfinite)
        super().__init__(log_dir=log_dir, histogram_freq=histogram_freq, **kwargs)
        self.gradients = bool(gradients)
        self.buckets = buckets
        self.nonfinite = nonfinite
        self._grad_buffers: Dict[int, Any] = {}
        self._grad_weights: List[Any] = []
        self._grad_flag: Any = None
        self._grad_flag_value = False
        self._grad_optimizer: Any = None
        self._grad_model: Any = None
        self._grad_captured = False
        self._epoch_logged = False

    # ------------------------------------------------------------------ weights

    def _log_weights(self, epoch: int) -> None:
        """Keras' hook for weight histograms, with histgpu doing the counting."""
        with self._removing_capture_on_error():
            self._write_histograms(epoch)

    def _write_histograms(self, epoch: int) -> None:
        """Every weight's histogram (and every gradient's) through the train writer, all in one
        ``histgpu.summary.histograms`` call: the values ``tf.summary.histogram`` per weight
        would write, in one event of the same run file (with ``write_images``, per weight,
        each followed by its image, in Keras' order)."""
        with self._train_writer.as_default():
            pairs = [(f"{_weight_tag(w)}/histogram", w) for layer in self.model.layers for w in layer.weights]
            if self.write_images:
                for name, weight in pairs:
                    _summary.histogram(name, weight, step=epoch, buckets=self.buckets, nonfinite=self.nonfinite)
                    self._log_weight_as_image(weight, f"{name[:-len('/histogram')]}/image", epoch)
                pairs = []
            if self.gradients and self._grad_captured and self._grad_optimizer is not None:
                pairs += [(f"{_weight_tag(w)}/gradient", self._grad_buffers[id(w)]) for w in self._grad_weights]
                self._grad_captured = False
            if pairs:
                _summary.histograms(pairs, step=epoch, buckets=self.buckets, nonfinite=self.nonfinite)
            with _batch.phase("TensorFlow writer"):
                self._train_writer.flush()

    # ---------------------------------------------------------------- gradients

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        super().on_train_begin(logs)
        self._remove_gradient_capture()  # left by an earlier fit that raised
        if self.gradients and self.histogram_freq:
            with self._removing_capture_on_error():
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
        with self._removing_capture_on_error():
            self._set_capture_flag(batch)

    def _set_capture_flag(self, batch: int) -> None:
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
            warnings.warn("HistogramCallback: no optimizer or trainable weights; gradients are not logged",
                          stacklevel=2)
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
        self._grad_model = self.model
        # The train step may already be traced without the wrapper (an earlier fit): retrace.
        type(self.model).make_train_function(self.model, force=True)
        self.model.train_function = _GuardedTrainFunction(self.model.train_function, self._remove_gradient_capture)
        # The next fit/train_on_batch starts with make_train_function: if this capture is
        # still installed then, the fit that installed it was left by an exception.
        object.__setattr__(self.model, "make_train_function", self._next_training_hook(self.model))

    def _next_training_hook(self, model: Any) -> Callable[..., Any]:
        def make_train_function(force: bool = False) -> Any:
            self._remove_gradient_capture()
            return type(model).make_train_function(model, force=force)

        return make_train_function

    @contextlib.contextmanager
    def _removing_capture_on_error(self) -> Iterator[None]:
        try:
            yield
        except BaseException:  # KeyboardInterrupt included: fit is being left
            self._remove_gradient_capture()
            raise

    def _remove_gradient_capture(self) -> None:
        """Restore the optimizer and the model and drop the buffers (safe to call any time)."""
        if self._grad_optimizer is not None:
            vars(self._grad_optimizer).pop("apply", None)
            self._grad_optimizer = None
        model, self._grad_model = self._grad_model, None
        if model is not None:
            vars(model).pop("make_train_function", None)
            if isinstance(model.train_function, _GuardedTrainFunction):
                model.train_function = None  # the next fit traces a step without the wrapper
        self._grad_buffers = {}
        self._grad_weights = []
        self._grad_flag = None
        self._grad_flag_value = False
        self._grad_captured = False


class _GuardedTrainFunction:
    """The model's traced train function, removing the gradient capture when a step raises.

    The end of the data (``StopIteration``, ``OutOfRangeError``) is how ``fit`` normally
    leaves an epoch of unknown length, so it passes through; anything else means ``fit``
    is being left. Other attributes are the traced function's (Keras' graph writer reads them).
    """

    def __init__(self, traced: Any, on_error: Callable[[], None]):
        self._traced = traced
        self._on_error = on_error

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import tensorflow as tf

        try:
            return self._traced(*args, **kwargs)
        except (StopIteration, tf.errors.OutOfRangeError):
            raise
        except BaseException:
            self._on_error()
            raise

    def __getattr__(self, name: str) -> Any:
        if name in ("_traced", "_on_error"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._traced, name)
