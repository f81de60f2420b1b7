"""fmacomp: learned music compression and classification from compressed latents.

Importing the package has no side effects: no devices, meshes, seeds or flags are touched.
"""

__version__ = '0.1.0'
