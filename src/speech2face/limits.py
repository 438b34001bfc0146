"""What the product accepts, defined once and importable without torch (the CLI reads them while
parsing arguments): clip lengths, input length, wave-array rates, image sizes."""

CLIP_SECONDS = 6.0  # s: the default clip, the paper's input length
MIN_CLIP_SECONDS, MAX_CLIP_SECONDS = 3.0, 6.0  # s: the clip lengths a reconstruction may ask for
PREPARED_CLIP_SECONDS = (3.0, 6.0)  # s: the clip lengths training shards are prepared at
MAX_INPUT_SECONDS = 600.0  # s: decoding stops here (files and arrays alike); the rest is not analysed
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4_000, 768_000  # Hz: a wave array's rate must lie in between
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before they are decoded (6000 × 6000 is 36 MP)
MIN_IMAGE_SIDE = 32  # px: nothing smaller can hold a face dlib finds
MAX_VARIATIONS = 12  # faces one request may ask for (each is drawn: ~15 ms on a CPU core)
SERVE_TIMEOUT_SECONDS = 30.0  # s: a server request not answered by then gets 503 (speech2face serve --timeout)
MAX_MATCH_PHOTOS = 32  # photos one /api/match request may rank
