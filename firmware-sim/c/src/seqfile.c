#include "seqfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PATH_MAX_BYTES 1024

int seqfile_read(const char *path, uint64_t *last, char *error, size_t error_cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT) {
            *last = 0;
            return 0;
        }
        snprintf(error, error_cap, "cannot open the seq file %s: %s", path, strerror(errno));
        return -1;
    }
    char text[32];
    ssize_t n = read(fd, text, sizeof text - 1);
    int read_errno = errno;
    close(fd);
    if (n < 0) {
        snprintf(error, error_cap, "cannot read the seq file %s: %s", path, strerror(read_errno));
        return -1;
    }
    text[n] = '\0';
    uint64_t value = 0;
    ssize_t i = 0;
    for (; i < n && text[i] >= '0' && text[i] <= '9'; i++) {
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            snprintf(error, error_cap, "the seq file %s holds a number too large", path);
            return -1;
        }
        value = value * 10 + digit;
    }
    if (i == 0 || !(i == n || (text[i] == '\n' && i + 1 == n))) {
        snprintf(error, error_cap,
                 "the seq file %s does not hold the last seq as a decimal number and a newline; "
                 "fix or remove it only if you know the device's highest seq (reusing a seq loses readings)",
                 path);
        return -1;
    }
    *last = value;
    return 0;
}

int seqfile_write(const char *path, uint64_t seq, char *error, size_t error_cap) {
    char temporary[PATH_MAX_BYTES + 8];
    char directory[PATH_MAX_BYTES];
    size_t path_len = strlen(path);
    if (path_len >= PATH_MAX_BYTES) {
        snprintf(error, error_cap, "the seq file's path is over %d bytes", PATH_MAX_BYTES - 1);
        return -1;
    }
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(directory, sizeof directory, ".");
    } else if (slash == path) {
        snprintf(directory, sizeof directory, "/");
    } else {
        snprintf(directory, sizeof directory, "%.*s", (int)(slash - path), path);
    }

    char text[32];
    int text_len = snprintf(text, sizeof text, "%llu\n", (unsigned long long)seq);
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(error, error_cap, "cannot create %s: %s", temporary, strerror(errno));
        return -1;
    }
    ssize_t written = write(fd, text, (size_t)text_len);
    if (written != text_len) {
        snprintf(error, error_cap, "cannot write %s: %s", temporary, written < 0 ? strerror(errno) : "short write");
        close(fd);
        return -1;
    }
    if (fsync(fd) != 0) {
        snprintf(error, error_cap, "cannot fsync %s: %s", temporary, strerror(errno));
        close(fd);
        return -1;
    }
    if (close(fd) != 0) {
        snprintf(error, error_cap, "cannot close %s: %s", temporary, strerror(errno));
        return -1;
    }
    if (rename(temporary, path) != 0) {
        snprintf(error, error_cap, "cannot rename %s to %s: %s", temporary, path, strerror(errno));
        return -1;
    }
    int dir = open(directory, O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        snprintf(error, error_cap, "cannot open the directory %s to fsync it: %s", directory, strerror(errno));
        return -1;
    }
    int synced = fsync(dir);
    int sync_errno = errno;
    close(dir);
    if (synced != 0) {
        snprintf(error, error_cap, "cannot fsync the directory %s: %s", directory, strerror(sync_errno));
        return -1;
    }
    return 0;
}
