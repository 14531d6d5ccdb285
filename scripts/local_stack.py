"""Keep the application's local stack up: moto on loopback with ``template.yaml`` deployed into it.

    python scripts/local_stack.py [--port 5000] [--stack-name boneage-local]

Writes the handler's environment to ``build/local-stack.env.json`` (for ``scripts/invoke_local.py``
and ``scripts/redrive.py --env-vars``); Ctrl-C stops the emulator. The stack itself is
``boneage.devstack`` (the ``dev`` extra).
"""

import sys

from boneage.devstack.stack import main

if __name__ == "__main__":
    sys.exit(main())
