"""The parts of the AWS provider's behaviour a preview depends on, emulated offline.

- :mod:`.names`: auto-naming and name limits (the provider's ``Check``).
- :mod:`.unknowns`: which outputs are known in a preview.
- :mod:`.replacements`: which changes force a replacement.
- :mod:`.emulator`: all three, per registration.

:class:`~sarkops.plan.provider.emulator.ProviderEmulator` applies them, in the engine's order,
to every custom resource the program registers: Check (fill names, collect failures), diff against the prior state, then
the preview outputs.
"""
