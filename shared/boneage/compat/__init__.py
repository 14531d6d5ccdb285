"""The only places private APIs of third-party libraries are used: one module per library.

Where a library offers no public API for what we need, the private one is wrapped here, next to
the reason, and ``tests/unit/compat`` pins the shape we rely on (names, signatures, behaviour) so a
library upgrade fails there first, with a message naming the call, instead of deep inside a build
or an assessment. ``pyproject.toml`` bounds each library to the releases those tests pass on.
``tests/unit/test_architecture.py`` fails when a private API is used anywhere else.
"""
