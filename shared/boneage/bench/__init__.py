"""The inference benchmark (``make bench``, ``boneage bench``): latency, throughput, cold start,
memory, compute efficiency and accuracy per artifact.

Writes ``build/bench/report.json`` and ``build/bench/report.md``. For each config (demo, clinical,
seed_equivalent) and each backend x precision it measures, each in a fresh process:
- cold start: process spawn -> first assessed phantom, imports, load and warm-up included;
- p50/p90 of one image through both networks (batch 1), throughput at batch 4 and 8;
- peak RSS; GFLOP/image (torch's flop counter); achieved GFLOP/s and its share of the host's
  peak for that precision, measured in this run (``boneage.engine.peak``);
- the output delta against fp32 eager on a seeded phantom set (and the MAE change where the weights
  are trained, i.e. demo).
Then, for clinical, an end-to-end stage breakdown through the local emulator (moto server, the
real handler): natively and in a subprocess capped to AVX2 (ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA).
Combinations that cannot win are skipped and listed with the reason (e.g. compiled bf16 on a host
whose bf16 is not native). Built artifacts are cached under ``build/bench/model`` and reused when
their weights hash and torch version match; the seed-equivalent AOTInductor packages, which take
minutes to compile on 2 vCPUs, are compiled within a time budget (``--aoti-budget``) and cached
under ``build/cache/aoti/<key>`` by everything that changes the compiled code (``aoti_cache``).

Modules: ``driver`` (the command line and the run), ``planner`` (what to measure on this host),
``artifacts`` (cached builds), ``aoti_cache`` (the big configs' compiled packages), ``worker`` (one artifact in a fresh process), ``e2e`` and ``oracle``
(the end-to-end run through the local stack), ``summary`` (per-artifact figures and the accuracy
gate), ``report`` (report.md) with ``cost`` (Lambda pricing), ``decode`` (decoding per format), ``load``
(uploads through the live local deployment) and ``pacs`` (instances pushed by ``storescu`` through the
DICOM gateway and back into Orthanc: C-STORE -> results in PACS, p50/p90 and total).
Workers run as ``python -m boneage.bench``. The benchmark runs from a repository checkout (it builds
with ``scripts/build_model.py`` and its end-to-end part needs the ``dev`` extra: ``boneage.devstack``).
"""
