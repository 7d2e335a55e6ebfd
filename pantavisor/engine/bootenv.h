/* bootenv.h: the bootloader environment contract (spec §4.3): pv_rev (committed) and pv_try
 * (revision under test) kept in a U-Boot env file, a GRUB env block or the appengine's env file. */
#ifndef PV_ENGINE_BOOTENV_H
#define PV_ENGINE_BOOTENV_H

#include <stdbool.h>
#include <stddef.h>

#include "pvstate/error.h"

enum pv_bootenv_type {
	PV_BOOTENV_UBOOT,     /* <storage>/boot/uboot.txt: NUL-separated key=value, 64 KiB block */
	PV_BOOTENV_GRUB,      /* <storage>/boot/grubenv: 1024-byte GRUB environment block */
	PV_BOOTENV_APPENGINE, /* <storage>/boot/uboot.txt as pv-appengine reads it (no padding) */
};

struct pv_bootenv {
	enum pv_bootenv_type type;
	char path[4096];
};

/* Picks the backend: type is PV_BOOTLOADER_TYPE's value ("uboot", "uboot-pvk", "grub"), NULL or
 * "" for the default (appengine when appengine, else uboot). Unknown type: -EINVAL naming it. */
int pv_bootenv_open(struct pv_bootenv *b, const char *storage, const char *type, bool appengine,
		    struct pv_error *err);

/* out = the key's value, "" when unset (missing, or written as `key=`). A missing env file is
 * an empty env; an unreadable or malformed one is an error naming the file. */
int pv_bootenv_get(const struct pv_bootenv *b, const char *key, char *out, size_t n,
		   struct pv_error *err);

/* Sets several keys in one crash-safe write (temp, fsync, rename, fsync dir): kv is
 * {"key", "value", ..., NULL}; value "" unsets the key. Other keys are kept. The uboot backend
 * also unsets pv_trying whenever pv_try is written. */
int pv_bootenv_set(const struct pv_bootenv *b, const char *const *kv, struct pv_error *err);

#endif
