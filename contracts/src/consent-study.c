/*
 * Consent-based study access.
 *
 * A registered researcher asks for readings of some kinds and time range for a study. The
 * request is granted when the requester is a researcher, the request names a study and no single
 * patient, and at least one patient consents to the study now. The grant covers the readings of
 * the kinds and time range asked for, of the patients who consent to the study; the serving
 * manager checks the consents again at every read, so a withdrawn consent stops further reads.
 * Patients appear by their pseudonymous ids only.
 *
 * Parameters: duration_ms, how long a grant lasts (default 90 days).
 */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) {
    if (ml_requester_role() != ML_ROLE_RESEARCHER) {
        ml_deny_text("consent-based study access is for registered researchers");
        return;
    }
    char study[64];
    int32_t study_len = ml_request_study(study, sizeof study);
    if (study_len < 0) {
        ml_deny_text("the request names no study");
        return;
    }
    if (ml_request_patient(0, 0) >= 0) {
        ml_deny_text("a study request may not name a single patient");
        return;
    }
    int32_t consenting = ml_consent_count(study, study_len);
    if (consenting == 0) {
        char buffer[160];
        ml_text reason = {buffer, 0, sizeof buffer};
        ml_text_append_cstr(&reason, "no patient consents to study ");
        ml_text_append(&reason, study, study_len);
        ml_deny_built(&reason);
        return;
    }
    int64_t duration = ml_param("duration_ms", 11, 90 * ML_DAY_MS);
    if (duration < 1) {
        ml_deny_text("the deployment's duration_ms is not positive");
        return;
    }
    ml_grant(ml_block_time() + duration);
}
