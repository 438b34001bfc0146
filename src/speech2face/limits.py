"""What the product accepts, defined once and importable without torch (the CLI reads them while
parsing arguments): clip lengths, input length, wave-array rates, image sizes."""

MIN_CLIP_SECONDS, MAX_CLIP_SECONDS = 3.0, 6.0  # s: the clip lengths a reconstruction may ask for (the paper: 6)
MAX_INPUT_SECONDS = 600.0  # s: decoding stops here (files and arrays alike); the rest is not analysed
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4_000, 768_000  # Hz: a wave array's rate must lie in between
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before they are decoded (6000 × 6000 is 36 MP)
MIN_IMAGE_SIDE = 32  # px: nothing smaller can hold a face dlib finds
