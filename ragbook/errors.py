"""Every error ragbook raises, in one tree.

::

    RagbookError                        catch this for "anything ragbook refused or could not do"
     ├── SettingsError                  an argument or setting is invalid (also ValueError, TypeError)
     │    └── TemplateError             a prompt template is malformed or unsafe
     ├── LoadError                      one file cannot be read (also ValueError)
     ├── IndexFormatError               an index folder is damaged or from another version (ValueError)
     ├── IndexLockedError               another process is writing the index (also TimeoutError)
     ├── ModelMismatchError             the embedding model is not the index's (ValueError)
     ├── ModelNotFoundError             a model is not installed or not where it was (RuntimeError)
     ├── BundleError                    a .ragbook file cannot be opened safely (ValueError)
     ├── LLMError                       a language model failed (RuntimeError)
     │    └── LLMTimeoutError           no complete answer before the deadline (also TimeoutError)
     ├── DataFormatError                a question set or data set file is malformed (ValueError)
     ├── MissingDependencyError         an optional package is not installed (also ImportError)
     ├── NotFoundError                  a path the user named does not exist (FileNotFoundError)
     ├── MagicError                     a notebook magic was used wrongly (ValueError)
     └── ServerError                    an assistant's server refused or failed a request (ConnectionError)

Each class also keeps the built-in base it had before (``except ValueError`` still works).
"""

from __future__ import annotations

__all__ = [
    "RagbookError", "SettingsError", "TemplateError", "LoadError", "IndexFormatError", "IndexLockedError",
    "ModelMismatchError", "ModelNotFoundError", "BundleError", "LLMError", "LLMTimeoutError",
    "DataFormatError", "MissingDependencyError", "NotFoundError", "MagicError", "ServerError",
]


class RagbookError(Exception):
    """The root of every error ragbook raises; the message says what is wrong and what to do."""


class SettingsError(RagbookError, ValueError, TypeError):
    """An argument or setting is invalid: an unknown key, a value out of range, a wrong type."""


class TemplateError(SettingsError):
    """A prompt template is malformed, or uses fields, format specs or lookups that are not allowed."""


class LoadError(RagbookError, ValueError):
    """A file could not be turned into a document; the message says why and what to do."""


class IndexFormatError(RagbookError, ValueError):
    """A folder is not a readable ragbook index (missing, damaged, or from another version)."""


class IndexLockedError(RagbookError, TimeoutError):
    """Another process holds the index folder's write lock."""


class ModelMismatchError(RagbookError, ValueError):
    """The embedding model in use is not the one the index was built with."""


class ModelNotFoundError(RagbookError, RuntimeError):
    """A model is not installed, or not where it was recorded."""


class BundleError(RagbookError, ValueError):
    """A ``.ragbook`` file that cannot be opened: damaged, tampered with, or from another version."""


class LLMError(RagbookError, RuntimeError):
    """A language model failed to load or to answer; the message says what to do."""


class LLMTimeoutError(LLMError, TimeoutError):
    """A language model did not finish its answer before the deadline."""


class DataFormatError(RagbookError, ValueError):
    """A question set or evaluation data file is malformed; the message names the file and line."""


class MissingDependencyError(RagbookError, ImportError):
    """An optional package is needed; the message gives the command that installs it."""


class NotFoundError(RagbookError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class MagicError(RagbookError, ValueError):
    """A ``%ragbook`` or ``%%ask`` magic was used wrongly."""


class ServerError(RagbookError, ConnectionError):
    """A ``ragbook serve`` server (``ragbook.connect``) refused or failed a request, or cannot be reached.

    ``status`` is the HTTP status (0 when no answer came); ``retry_after`` the seconds the server asked to wait.
    """

    def __init__(self, message: str, *, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
