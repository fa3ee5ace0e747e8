"""Feature visualisation, the image that excites a channel most: the image's parameterisation (fourier), the
transforms it must survive (robustness), the optimisation (visualise), the server's kept images (gallery)."""
