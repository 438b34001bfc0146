"""The index groups of dlib's 68 facial landmarks, defined once (the detector, the decoder's
targets, the canonical measures and the craniofacial ones all read them)."""

JAW = list(range(0, 17))
BROWS = list(range(17, 27))
NOSE = list(range(27, 36))
LEFT_EYE = list(range(36, 42))  # the eye on the image's left
RIGHT_EYE = list(range(42, 48))
OUTER_LIP = list(range(48, 60))
INNER_LIP = list(range(60, 68))
MOUTH = OUTER_LIP + INNER_LIP
UPPER_INNER_LIP = [61, 62, 63]
LOWER_INNER_LIP = [67, 66, 65]  # facing the upper ones, point for point
LOWER_OUTER_LIP = [55, 56, 57, 58, 59]
