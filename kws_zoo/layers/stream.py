"""Stream: run a convolution or pooling over time on new frames plus a ring buffer of the frames before.

A layer whose time window spans k_eff = (k - 1) * dilation + 1 frames with time stride s needs, beside
the n new frames of a step (n a multiple of s), the last k_eff - s frames it has already seen: the
buffer [state | new] then holds exactly the windows that end in the new frames, so the wrapped layer
(time padding 'valid') emits n / s frames, the ones a whole-window run would emit at the same times.
The state is the buffer's newest k_eff - s frames.

Two places for the state:
  external  call([x, state]) -> [y, new_state]: the graph keeps nothing between calls (state-free);
            the caller (firmware, a Python loop) feeds new_state back. Any batch size.
  internal  the state is a non-trainable variable read and assigned in call(x) -> y; converts to
            TFLite VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE. Batch 1 (one device, one stream).
Built only by kws_zoo.streaming.to_streaming, which sizes the state and copies the weights.
"""
from __future__ import annotations

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError

MODES = ("external", "internal")


@keras.saving.register_keras_serializable(package="kws_zoo")
class Stream(keras.layers.Wrapper):
    """Wraps `layer` (time padding 'valid'); `state_frames` = its time window minus its time stride."""

    def __init__(self, layer: keras.layers.Layer, state_frames: int, mode: str = "external", **kwargs):
        super().__init__(layer, **kwargs)
        if mode not in MODES:
            raise ConfigError(f"{self.name}: mode must be one of {MODES}, got {mode!r}")
        if int(state_frames) < 1:
            raise ValueError(f"{self.name}: state_frames must be >= 1 (a layer without state needs no Stream)")
        self.state_frames = int(state_frames)
        self.mode = mode
        self.state = None

    def state_shape(self, frame_shape) -> tuple:
        """Shape of the state, batch included, for input frames shaped [B, n, ...]."""
        return (frame_shape[0], self.state_frames, *frame_shape[2:])

    def build(self, input_shape):
        frame_shape = tf.TensorShape(input_shape[0] if self.mode == "external" else input_shape).as_list()
        if len(frame_shape) != 4 or None in frame_shape[2:]:
            raise ValueError(f"{self.name}: needs [B, frames, F, C] input with static F and C, got {frame_shape}")
        if self.mode == "internal":
            if frame_shape[0] not in (None, 1):
                raise ValueError(f"{self.name}: internal state holds one stream; batch must be 1, got {frame_shape[0]}")
            self.state = self.add_weight(name="state", shape=self.state_shape([1, *frame_shape[1:]]),
                                         initializer="zeros", trainable=False)
        buffer = [frame_shape[0], self.state_frames + frame_shape[1], *frame_shape[2:]]
        if not self.layer.built:
            self.layer.build(buffer)
        super().build(input_shape)

    def call(self, inputs):
        if self.mode == "external":
            x, state = inputs
        else:
            x, state = inputs, self.state
        buffer = tf.concat([tf.cast(state, x.dtype), x], axis=1)
        new_state = buffer[:, -self.state_frames:]
        y = self.layer(buffer)
        if self.mode == "external":
            return [y, new_state]
        self.state.assign(new_state)
        return y

    def reset_state(self) -> None:
        if self.state is not None:
            self.state.assign(tf.zeros_like(self.state))

    def get_config(self) -> dict:
        return {**super().get_config(), "state_frames": self.state_frames, "mode": self.mode}
