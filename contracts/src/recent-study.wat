;; Recent study access, written in WebAssembly text (WAT) as an example of a contract without C.
;;
;; A registered researcher asks for a study's readings over a time range no longer than the
;; deployment allows; the request is granted when at least one patient consents to the study,
;; pseudonymous ids only, and the serving manager returns only the readings of consenting patients
;; (consent is checked again at every read). For studies that need recent data only: a grant
;; can never reach further back than max_range_ms.
;;
;; Parameters: max_range_ms, the longest range a request may ask for (default 7 days);
;; duration_ms, how long a grant lasts (default 7 days).
;;
;; Built by scripts/build-contracts.sh with `medledger contract compile` (WasmKit's WAT parser).
(module
  (import "medledger" "requester_role" (func $requester_role (result i32)))
  (import "medledger" "request_study" (func $request_study (param i32 i32) (result i32)))
  (import "medledger" "request_patient" (func $request_patient (param i32 i32) (result i32)))
  (import "medledger" "request_from" (func $request_from (result i64)))
  (import "medledger" "request_to" (func $request_to (result i64)))
  (import "medledger" "consent_count" (func $consent_count (param i32 i32) (result i32)))
  (import "medledger" "param" (func $param (param i32 i32 i64) (result i64)))
  (import "medledger" "block_time" (func $block_time (result i64)))
  (import "medledger" "grant" (func $grant (param i64)))
  (import "medledger" "deny" (func $deny (param i32 i32)))

  (memory (export "memory") 1 1)
  ;; Bytes 0-63 take the request's study id; the texts follow.
  (data (i32.const 64) "recent-study access is for registered researchers")
  (data (i32.const 128) "the request names no study")
  (data (i32.const 160) "a study request may not name a single patient")
  (data (i32.const 208) "the requested time range is longer than the deployment's max_range_ms")
  (data (i32.const 288) "no patient consents to the study")
  (data (i32.const 320) "max_range_ms")
  (data (i32.const 336) "duration_ms")

  (func (export "decide")
    (local $study_len i32)
    ;; Researchers only (ML_ROLE_RESEARCHER is 1).
    (if (i32.ne (call $requester_role) (i32.const 1))
      (then (call $deny (i32.const 64) (i32.const 49)) (return)))
    ;; A study, and no single patient.
    (local.set $study_len (call $request_study (i32.const 0) (i32.const 64)))
    (if (i32.lt_s (local.get $study_len) (i32.const 0))
      (then (call $deny (i32.const 128) (i32.const 26)) (return)))
    (if (i32.ge_s (call $request_patient (i32.const 0) (i32.const 0)) (i32.const 0))
      (then (call $deny (i32.const 160) (i32.const 45)) (return)))
    ;; The range may not be longer than max_range_ms (7 days by default).
    (if (i64.gt_s
          (i64.sub (call $request_to) (call $request_from))
          (call $param (i32.const 320) (i32.const 12) (i64.const 604800000)))
      (then (call $deny (i32.const 208) (i32.const 69)) (return)))
    ;; Someone must consent to the study.
    (if (i32.eqz (call $consent_count (i32.const 0) (local.get $study_len)))
      (then (call $deny (i32.const 288) (i32.const 32)) (return)))
    (call $grant
      (i64.add (call $block_time)
        (call $param (i32.const 336) (i32.const 11) (i64.const 604800000)))))
)
