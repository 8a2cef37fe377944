"""The serving path the score job imports: image decoding, face detection, the net, prediction."""
