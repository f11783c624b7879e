"""Reading and writing: images read faithfully (:mod:`~gradviz.io.images`), outputs written
atomically and never over a user's files (:mod:`~gradviz.io.outputs`), and the figure style
shared by every rendering module (:mod:`~gradviz.io.plotting`)."""
