/*
 * Aggregate-only access.
 *
 * A registered researcher asks for a study's data; the grant allows aggregates only: counts,
 * means and ranges per kind and day, never a reading. It is refused when fewer than k patients
 * consent to the study (k is the deployment's parameter). The serving manager applies k again at
 * every read: it refuses when fewer than k consenting patients remain, and leaves out any
 * kind-and-day group with readings of fewer than k patients.
 *
 * Parameters: k, the smallest cohort (default 5); duration_ms, how long a grant lasts (default 30 days).
 */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) {
    if (ml_requester_role() != ML_ROLE_RESEARCHER) {
        ml_deny_text("aggregate-only access is for registered researchers");
        return;
    }
    char study[64];
    int32_t study_len = ml_request_study(study, sizeof study);
    if (study_len < 0) {
        ml_deny_text("the request names no study");
        return;
    }
    if (ml_request_patient(0, 0) >= 0) {
        ml_deny_text("an aggregate request may not name a single patient");
        return;
    }
    int64_t k = ml_param("k", 1, 5);
    if (k < 1) {
        ml_deny_text("the deployment's k is below 1");
        return;
    }
    int32_t cohort = ml_consent_count(study, study_len);
    if (cohort < k) {
        char buffer[200];
        ml_text reason = {buffer, 0, sizeof buffer};
        ml_text_append_cstr(&reason, "the cohort of study ");
        ml_text_append(&reason, study, study_len);
        ml_text_append_cstr(&reason, " has ");
        ml_text_append_int(&reason, cohort);
        ml_text_append_cstr(&reason, " consenting patients, fewer than k = ");
        ml_text_append_int(&reason, k);
        ml_deny_built(&reason);
        return;
    }
    int64_t duration = ml_param("duration_ms", 11, 30 * ML_DAY_MS);
    if (duration < 1) {
        ml_deny_text("the deployment's duration_ms is not positive");
        return;
    }
    ml_grant_aggregates(k, ml_block_time() + duration);
}
