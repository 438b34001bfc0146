"""What runs the networks: ONNX Runtime (``ort``, the default: no torch) or torch (``pytorch``,
for weights of one's own, training and exporting). Both give the pipeline the same three calls:

- ``voice.partials(clips, workers)`` → each clip's GE2E partial embeddings (P_i, 256);
- ``voice.descriptors(embeddings, clips)`` → the face descriptors drawn (N, 128) and ``voice.center``;
- ``drawer.decode(descriptors, workers)`` → canonical faces (N, S, S, 3) uint8, ``drawer.portrait``.
"""
