"""Reading and writing: images read faithfully (:mod:`~gradviz.io.images`), outputs written
atomically and never over a user's files (:mod:`~gradviz.io.outputs`, with the folder manifests of
:mod:`~gradviz.io.manifest`), the figure style shared by every rendering module
(:mod:`~gradviz.io.plotting`) and numbers as pages print them (:mod:`~gradviz.io.text`)."""
