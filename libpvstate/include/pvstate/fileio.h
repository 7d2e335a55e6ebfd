/* pvstate/fileio.h: crash-safe storage writes and content hashing.
 * A write is temp file + fsync + rename + fsync of the directory: after a crash the path holds
 * either the old or the new bytes, never a mix. sha256 comes from OpenSSL's libcrypto. */
#ifndef PVSTATE_FILEIO_H
#define PVSTATE_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "pvstate/error.h"

int pv_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct pv_error *err);
/* Reads a whole file up to max bytes (-EFBIG past it). *out is NUL-terminated; caller frees. */
int pv_file_read_all(const char *path, size_t max, char **out, size_t *len, struct pv_error *err);
int pv_fsync_dir(const char *dir);
/* mkdir -p with mode for each created component. */
int pv_mkdir_p(const char *path, mode_t mode);
/* rm -rf that never follows symlinks and never crosses mount points. */
int pv_remove_tree(const char *path);

int pv_sha256_buf(const void *data, size_t len, char hex[65]);
int pv_sha256_file(const char *path, char hex[65], struct pv_error *err);
int pv_sha256_fd(int fd, char hex[65]);

/* Streaming hash for uploads. */
struct pv_sha256_ctx;
struct pv_sha256_ctx *pv_sha256_new(void);
int pv_sha256_update(struct pv_sha256_ctx *c, const void *data, size_t len);
int pv_sha256_final(struct pv_sha256_ctx *c, char hex[65]); /* also frees c */
void pv_sha256_abort(struct pv_sha256_ctx *c);

#endif
