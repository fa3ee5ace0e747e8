"""Keras files of keras.applications.InceptionResNetV2: their layers (files), the conversion to our network
(convert), a bare weights file's layer order (weights), Dense heads (head)."""
