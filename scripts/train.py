#!/usr/bin/env python3
"""Train the bone age model: the same code and flags as ``boneage train`` (see --help)."""

import sys

from boneage.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
