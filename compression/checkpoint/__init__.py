"""presso.compression.checkpoint: the on-disk contract between the offline stage and the server.

The only part of presso.compression the server may import: model-directory resolution, presso file
versions and the user-input error type.
"""

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.model_dir import resolve_model_dir

__all__ = ["PressoInputError", "resolve_model_dir"]
