"""Errors that end a sarkops command with exit status 2 and one clear message."""

from __future__ import annotations


class SarkopsError(Exception):
    """A configuration or program problem the user must fix; printed as ``error: <message>``.

    The command line turns every subclass into exit status 2 and prints only the message (no
    traceback), so the message must name the file, key, value or token involved.
    """


class ConfigFileError(SarkopsError):
    """``Pulumi.yaml`` or ``Pulumi.<stack>.yaml`` is missing, unreadable or inconsistent."""


class PolicyPackError(SarkopsError):
    """A policy pack cannot be loaded, or its configuration is invalid."""


class ProgramError(SarkopsError):
    """The Pulumi program failed while it ran under the mocks."""
