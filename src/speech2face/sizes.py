"""Sizes shared by the data, the models, the CLI and the server, defined once (torch-free)."""

FACE_SIZE = 224  # px, side of the aligned face crop and of the drawn portrait
DESCRIPTOR_DIM = 128  # dlib's ResNet face descriptor
SPEAKER_DIM = 256  # GE2E speaker embedding
N_LANDMARKS = 68  # dlib's landmark model
BACKGROUND_RGB = (236, 236, 236)  # the plain light background portraits are drawn on
