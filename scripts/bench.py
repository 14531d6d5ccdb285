"""``make bench``: latency, throughput, cold start, memory, compute efficiency and accuracy per artifact.

    python scripts/bench.py [--out build/bench] [--configs clinical,seed_equivalent,demo] [--repeats 6]
    python scripts/bench.py --e2e-only        # re-run the clinical end-to-end part into report.json
    python scripts/bench.py --markdown-only   # rewrite report.md from report.json
    python scripts/bench.py --pacs-only       # just the PACS figure (storescu -> gateway -> service -> Orthanc)

Writes ``report.json`` and ``report.md`` under ``--out``. The benchmark is ``boneage.bench`` (see
``--help`` for what it measures); ``boneage bench`` runs the same and prints its headline figures.
"""

import sys

from boneage.bench.driver import main

if __name__ == "__main__":
    sys.exit(main())
