"""The training/validation split of a dataset: by patient, never by slice or by case (no torch).

``dataset.toml``'s ``[split]`` gives explicit ``validation`` cases (a patient torn across both sides is refused)
or a ``validation_fraction`` of the patients (at least one; shuffled by ``seed``). Fewer than two patients, or a
split that leaves one side empty, is refused with the reason.
"""
from __future__ import annotations

import random
from typing import Mapping, Sequence

DATASET_FILE = "dataset.toml"
DEFAULT_VALIDATION_FRACTION = 0.2


class SplitError(ValueError):
    """No split by patient is possible; the message says why."""


def split_by_patient(cases: Sequence[tuple[str, str]], config: Mapping) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training, validation) case ids of ``(case id, patient)`` pairs; every case of a patient on one side."""
    if not isinstance(config, dict):
        raise SplitError(f"{DATASET_FILE}: [split] must be a table")
    patients: dict[str, list[str]] = {}
    for case, patient in cases:
        patients.setdefault(patient, []).append(case)
    if len(patients) < 2:
        who = next(iter(patients)) if patients else "-"
        raise SplitError(f"{len(cases)} case(s) of {len(patients)} patient(s) (PatientID {who!r}): a training and "
                           "a validation split need at least 2 patients (name the patients in dataset.toml: "
                           "[patients], or patient_key = \"case\")")
    ids = {case for case, _ in cases}
    if "validation" in config:
        chosen = [str(v) for v in config["validation"]]
        unknown = [v for v in chosen if v not in ids]
        if unknown:
            raise SplitError(f"{DATASET_FILE}: validation case {', '.join(unknown)} is not in the dataset")
        val_patients = {patient for case, patient in cases if case in chosen}
        torn = sorted(p for p in val_patients if not set(patients[p]) <= set(chosen))
        if torn:
            raise SplitError(f"{DATASET_FILE}: patient {', '.join(torn)} has cases on both sides of the split; "
                               "a split goes by patient")
    else:
        fraction = float(config.get("validation_fraction", DEFAULT_VALIDATION_FRACTION))
        if not 0.0 < fraction < 1.0:
            raise SplitError(f"{DATASET_FILE}: split.validation_fraction must be between 0 and 1")
        order = sorted(patients)
        random.Random(int(config.get("seed", 0))).shuffle(order)
        n_val = max(1, int(round(fraction * len(order))))
        val_patients = set(order[:n_val])
    if len(val_patients) >= len(patients) or not val_patients:
        raise SplitError(f"{len(patients)} patients: a training and a validation split need at least one "
                           "patient each")
    validation = tuple(case for case, patient in cases if patient in val_patients)
    training = tuple(case for case, patient in cases if patient not in val_patients)
    return training, validation
