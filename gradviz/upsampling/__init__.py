"""Upsampling, as in the Distill article: exact overlap arithmetic of transposed convolutions,
generators at initialisation, discriminators' input gradients and a short GAN.

Compute modules (no plotting library imported): :mod:`~gradviz.upsampling.overlap` (overlap arithmetic),
:mod:`~gradviz.upsampling.upsamplers` (the x2 layers, ``UPSAMPLERS``),
:mod:`~gradviz.upsampling.generators` (designs, generators, their metrics at init),
:mod:`~gradviz.upsampling.discriminators` (``FIRST_LAYERS``, discriminators, photo patches, input
gradients), :mod:`~gradviz.upsampling.gan` (training) and :mod:`~gradviz.upsampling.dcgan` (the
shared DCGAN init). Drawing: :mod:`~gradviz.upsampling.render`.
"""
