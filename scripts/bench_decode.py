"""Decode + normalise time per format for a 2500x2048 12-bit radiograph-like image; prints JSON.

    python scripts/bench_decode.py [--repeats 5]

The same figures ``make bench`` files under ``decode`` in report.json (``boneage.bench.decode``).
"""

from boneage.bench.decode import main

if __name__ == "__main__":
    main()
