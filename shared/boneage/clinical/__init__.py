"""Clinical interpretation of a bone age: SDS against Greulich & Pyle, the flag, adult height.

Pure functions, no I/O: ``interpret`` and ``predict_adult_height``. Tables and their sources are in
``boneage.clinical.tables``.
"""

from boneage.clinical.adult_height import (
    HEIGHT_REASON_MESSAGES,
    AdultHeight,
    HeightReason,
    predict_adult_height,
)
from boneage.clinical.interpretation import (
    ADVANCED,
    DELAYED,
    REASON_MESSAGES,
    WITHIN_NORMAL_LIMITS,
    Interpretation,
    SdsReason,
    interpret,
    normalise_sex,
)

__all__ = [
    "ADVANCED", "DELAYED", "WITHIN_NORMAL_LIMITS", "REASON_MESSAGES", "HEIGHT_REASON_MESSAGES",
    "AdultHeight", "HeightReason", "Interpretation", "SdsReason",
    "interpret", "normalise_sex", "predict_adult_height",
]
