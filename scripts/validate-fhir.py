"""Validates a FHIR JSON Bundle of Observations with the fhir.resources package (PyPI).

    python validate-fhir.py FILE [--expect N]

fhir.resources models FHIR R5 by default and R4B (4.3.0, the revision of R4 whose Bundle and
Observation are R4's) in fhir.resources.R4B: the file is checked against R4B. Exits 1 naming
what is wrong.
"""
import json
import sys

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation


def main() -> int:
    path = sys.argv[1]
    expect = int(sys.argv[sys.argv.index("--expect") + 1]) if "--expect" in sys.argv else None
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    data = json.loads(text)
    bundle = Bundle.model_validate(data)
    if bundle.type != "collection":
        print(f"the bundle's type is {bundle.type!r}, not 'collection'")
        return 1
    entries = bundle.entry or []
    for index, entry in enumerate(entries):
        resource = data["entry"][index]["resource"]
        if resource.get("resourceType") != "Observation":
            print(f"entry {index} is a {resource.get('resourceType')}, not an Observation")
            return 1
        observation = Observation.model_validate(resource)
        codings = [c for c in observation.code.coding or [] if c.system == "http://loinc.org"]
        if not codings:
            print(f"entry {index}: no LOINC code")
            return 1
        quantities = [observation.valueQuantity] if observation.valueQuantity else [
            component.valueQuantity for component in observation.component or []
        ]
        if not quantities or any(q is None or q.system != "http://unitsofmeasure.org" for q in quantities):
            print(f"entry {index}: a value without a UCUM quantity")
            return 1
        if observation.status != "final" or observation.effectiveDateTime is None:
            print(f"entry {index}: not final, or no effectiveDateTime")
            return 1
    if expect is not None and len(entries) != expect:
        print(f"{len(entries)} entries, expected {expect}")
        return 1
    print(f"valid FHIR R4B Bundle: {len(entries)} Observation(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
