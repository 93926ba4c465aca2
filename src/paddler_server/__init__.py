"""Litestar applications and the `paddler` command line that assemble the library."""
