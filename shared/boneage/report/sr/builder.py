"""The Structured Report as highdicom builds it from scratch (~100 ms): the reference for the template.

``build_dataset`` is what every template is made from (``template``) and what the SR falls back to
when a template cannot represent a result exactly; ``build_from_scratch`` encodes it.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.valuerep import DA, DT, TM

from boneage.report.derived import MANUFACTURER, describe_series, encode, prepare_source, software_version
from boneage.report.sr.content import (
    ALGORITHM_NAME,
    CODE_FLAGS,
    CODE_INTERPRETATION,
    CODE_PROCEDURE,
    SR_SERIES_NUMBER,
    SRIdentity,
    coding_scheme_identification,
    sr_measurements,
)
from boneage.result import AssessmentResult


def build_dataset(source: Dataset, result: AssessmentResult, identity: SRIdentity,
                  values: list[float] | None = None) -> hd.sr.ComprehensiveSR:
    """The SR built from scratch by highdicom: the reference the per-shape templates are made from.

    ``values`` replaces the measurement values (same count and order as ``sr_measurements``); the
    template builder uses it to plant recognisable numbers.
    """
    source = prepare_source(source)
    algorithm = hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=software_version(result))
    side = {"L": codes.SCT.Left, "R": codes.SCT.Right}.get(result.laterality or "")
    finding_site = hd.sr.FindingSite(anatomic_location=codes.SCT.BoneStructureOfHand, laterality=side)

    items = sr_measurements(result)
    if values is not None:
        items = [(name, value, unit) for (name, _, unit), value in zip(items, values, strict=True)]
    measurements = [hd.sr.Measurement(name=name, value=value, unit=unit, algorithm_id=algorithm)
                    for name, value, unit in items]
    evaluations = []
    if result.interpretation in CODE_FLAGS:
        evaluations.append(hd.sr.QualitativeEvaluation(name=CODE_INTERPRETATION, value=CODE_FLAGS[result.interpretation]))

    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=identity.tracking_uid, identifier="left hand bone age"),
        algorithm_id=algorithm,
        finding_sites=[finding_site],
        measurements=measurements,
        qualitative_evaluations=evaluations or None,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=identity.observer_uid, name="boneage", manufacturer_name=MANUFACTURER,
            model_name=software_version(result),
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CODE_PROCEDURE,
        imaging_measurements=[group],
    )
    created = identity.created
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report,
        series_instance_uid=identity.series_instance_uid,
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,       # machine output, nobody has verified it
        is_verified=False,
        series_description=describe_series(result, "structured report"),
        content_date=created.date(),
        content_time=created.time(),
    )
    # highdicom stamps these with its own clock; one moment for the whole object, the injected one.
    sr.InstanceCreationDate = DA(created.date())
    sr.InstanceCreationTime = TM(created.time())
    sr.ContributingEquipmentSequence[-1].ContributionDateTime = DT(created)
    sr.CodingSchemeIdentificationSequence = [coding_scheme_identification()]
    sr.SoftwareVersions = software_version(result)
    return sr


def build_from_scratch(source: Dataset, result: AssessmentResult, identity: SRIdentity | None = None) -> bytes:
    """The encoded SR as highdicom builds it (~100 ms): the reference for the template path."""
    return encode(build_dataset(source, result, identity or SRIdentity.fresh()))
