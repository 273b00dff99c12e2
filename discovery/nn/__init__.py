"""Keras 3 layers and models of discovery: a conv-BiLSTM VAE with a silence head.

```
window (T, F, 1)
  -> Conv2D (relu, same) -> MaxPool (1, F) -> (T, filters)
  -> BiLSTM (sequences) -> LSTM (last state)
  -> Dense z_mean, Dense z_log_var -> Sampling -> z
                                                 |
     z_mean -> Dense (relu) -> Dense (sigmoid) --+--> P(silence)
                                                 |
     z -> RepeatVector(T) -> LSTM (sequences) -> Dense(F * C) -> (T, F, C)
       -> Conv2DTranspose (sigmoid) -> reconstruction (T, F, 1)

loss = reconstruction SSE + beta * KL + silence_weight * BCE(silence)
```
"""

from discovery.nn.decoder import build_decoder, build_silence_head
from discovery.nn.encoder import build_encoder
from discovery.nn.layers import Sampling
from discovery.nn.presets import PRESETS, get_preset
from discovery.nn.vae import VAE, BetaWarmup, WindowEmbedding, build_vae

__all__ = [
    "PRESETS",
    "VAE",
    "BetaWarmup",
    "Sampling",
    "WindowEmbedding",
    "build_decoder",
    "build_encoder",
    "build_silence_head",
    "build_vae",
    "get_preset",
]
