/*
 * A treating clinician's access to one patient's readings, limited in time.
 *
 * A registered clinician asks for one patient's readings. The request is granted when the
 * requester is a clinician, the request names one patient and no study, and a registrar recorded
 * that this clinician treats this patient (a record-treatment transaction not ended since). The
 * grant expires duration_ms after the deciding block; the serving manager checks the treating
 * relationship again at every read, so ending the treatment stops further reads at once.
 *
 * Parameters: duration_ms, how long a grant lasts (default 24 hours).
 */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) {
    if (ml_requester_role() != ML_ROLE_CLINICIAN) {
        ml_deny_text("treating access is for registered clinicians");
        return;
    }
    char patient[64];
    int32_t patient_len = ml_request_patient(patient, sizeof patient);
    if (patient_len < 0) {
        ml_deny_text("the request names no patient");
        return;
    }
    if (ml_request_study(0, 0) >= 0) {
        ml_deny_text("a treating clinician's request names a patient, not a study");
        return;
    }
    char clinician[64];
    int32_t clinician_len = ml_requester_id(clinician, sizeof clinician);
    if (!ml_treating(clinician, clinician_len, patient, patient_len)) {
        char buffer[200];
        ml_text reason = {buffer, 0, sizeof buffer};
        ml_text_append(&reason, clinician, clinician_len);
        ml_text_append_cstr(&reason, " is not recorded as treating ");
        ml_text_append(&reason, patient, patient_len);
        ml_deny_built(&reason);
        return;
    }
    int64_t duration = ml_param("duration_ms", 11, ML_DAY_MS);
    if (duration < 1) {
        ml_deny_text("the deployment's duration_ms is not positive");
        return;
    }
    ml_grant(ml_block_time() + duration);
}
