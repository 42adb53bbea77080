"""Exceptions of the NER engine, each carrying what the caller needs to fix the problem."""

from __future__ import annotations


class NerError(Exception):
    """Base class for every error `ner` raises on purpose."""


class CheckpointError(NerError):
    """A model folder or hub id could not be loaded: missing, corrupt or mismatched files."""


class PickleRefused(CheckpointError):
    """The checkpoint has only pickle weights and the caller did not opt in with `allow_pickle=True`."""


class InputError(NerError, ValueError):
    """Texts or spans handed to the model are malformed (wrong type, offsets out of range, ...)."""
