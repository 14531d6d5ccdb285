"""The local stack for development: the AWS emulator with ``template.yaml`` deployed, the handler
module, the demo's sample uploads, and the live local deployment of ``make local`` (``local``: the
stack plus the function's event source mapping played by ``poller``). Used by ``scripts/`` (demo, invoke_local, redrive, local_stack),
the benchmark's end-to-end run and the tests; never by the service itself.

The hospital's side (``make demo``'s PACS loop, the PACS tests, the PACS bench figure): ``orthanc``
(Orthanc as the PACS, its own process and config), ``dcmtk`` (echoscu/storescu/storescp), ``studies``
(phantom CR/DX studies with fake identity), ``proxy`` (a relay to AWS that can be cut) and ``pacs``
(``PacsLoop``: Orthanc, the gateway process and a live deployment wired together; ``pacs_demo``).

Development only: it needs the ``dev`` extra (``pip install -e '.[dev]'``: moto server, aws-sam-translator,
cfn-lint) and a repository checkout (it reads ``template.yaml`` and ``functions/assess/app.py``). Nothing
in the runtime import graph imports this package, and importing it imports none of the dev extra:
those libraries are loaded when a stack starts.
"""

from __future__ import annotations

from .handler import load_env_vars, load_finalizer, load_handler
from .hospitals import HospitalAccess, onboard
from .samples import SampleUpload, sample_uploads
from .stack import ROOT, LambdaContext, LocalStack

__all__ = ["ROOT", "HospitalAccess", "LambdaContext", "LocalStack", "SampleUpload", "load_env_vars", "load_finalizer",
           "load_handler", "onboard", "sample_uploads"]
