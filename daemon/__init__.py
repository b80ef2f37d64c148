"""The dvfs FUSE daemon (pyfuse3 + trio), built on the public names of ``vfs``."""
