"""Recordings -> features, windows and silence, one file at a time.

    audio.py        files -> float32 mono samples at the configured rate (streamed)
    features.py     samples -> normalised log spectrogram, frames first
    windowing.py    features -> sliding windows with exact times
    silence.py      frame energy -> sound / silence (targets for the silence head)
    annotations.py  `start_s,end_s,label` tables beside recordings
    recording.py    one file analysed: features, windows, silence targets
"""
