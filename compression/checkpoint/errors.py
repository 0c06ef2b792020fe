"""User-input error type shared by the CLI, the offline stage and the server's loaders.

A `PressoInputError` carries one line meant for the user (it names the file or field). The CLI prints
it and exits with status 2; the HTTP layer maps it to a 400.
"""


class PressoInputError(ValueError):
    """Bad input from the user: a missing file, an unknown name, an out-of-range option."""
