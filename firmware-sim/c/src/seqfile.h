/*
 * The persisted sequence counter. The file holds the last seq the device used, as decimal text
 * and a newline. A seq is written durably (temporary file, fsync, rename, fsync of the
 * directory) before the reading that carries it is signed, so a restart or a power cut never
 * reuses a seq: at worst one seq is skipped, which the protocol allows.
 */
#ifndef MEDLEDGER_SEQFILE_H
#define MEDLEDGER_SEQFILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads the last used seq: 0 when the file does not exist. Returns -1 with the reason in error
 * when it exists but cannot be read or does not hold a number. */
int seqfile_read(const char *path, uint64_t *last, char *error, size_t error_cap);

/* Durably records seq as the last used one. Returns -1 with the reason in error. */
int seqfile_write(const char *path, uint64_t seq, char *error, size_t error_cap);

#endif
