"""The one exception type that reaches the user as a one-line message."""


class CodegenError(Exception):
    """A problem with the user's input or environment.

    The CLI prints `codegen: error: <message>` on one line and exits with status 1; the
    message names the problem and, where there is one, the way out.
    """


class UnsupportedError(CodegenError):
    """The model uses an operator, option or type that the generator does not support."""


class ModelFormatError(CodegenError):
    """The file is not a valid TensorFlow Lite model."""
