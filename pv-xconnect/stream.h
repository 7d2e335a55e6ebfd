/* stream.h: the byte-stream core shared by the rewriting plugins (rest, dbus): a consumer
 * connection paired with a provider connection on the loop, with a per-plugin rewrite callback.
 *
 * The core owns everything that is not protocol: accepting on the injected socket, connecting
 * to the provider through /proc/<pid>/root (a cached O_PATH fd, or the plugin's own connect),
 * reading and writing non-blocking sockets, buffers capped per direction (a side is not read
 * while what it produced waits to be written: backpressure), SCM_RIGHTS carried with the bytes,
 * half-close, teardown of every live connection. A plugin only says what one direction's bytes
 * become. */
#ifndef PVX_STREAM_H
#define PVX_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xconnect.h"

enum { PVX_CONSUMER = 0, PVX_PROVIDER = 1 };

/* A byte buffer consumed from the front: the data is d[off, off+len). */
struct pvx_buf {
	char *d;
	size_t off, len, cap;
};
int pvx_buf_add(struct pvx_buf *b, const void *p, size_t n);
void pvx_buf_eat(struct pvx_buf *b, size_t n);
static inline char *pvx_buf_data(const struct pvx_buf *b)
{
	return b->d + b->off;
}

/* fds received and not handed on yet. */
struct pvx_fdq {
	int *v;
	size_t n, cap;
};
int pvx_fdq_push(struct pvx_fdq *q, int fd);
/* Moves the first n fds of from to the end of to (closes them when to is NULL). */
int pvx_fdq_move(struct pvx_fdq *from, struct pvx_fdq *to, size_t n);

struct pvx_stream;
struct pvx_stream_link;

struct pvx_stream_side {
	int fd;
	uv_poll_t poll;
	int ev;
	struct pvx_buf in;  /* read from this side, not processed yet */
	struct pvx_buf out; /* to be written to this side */
	struct pvx_fdq in_fds, out_fds;
	size_t need;	  /* set by the plugin: size of the unit being collected (0: unknown) */
	uint64_t written; /* bytes written to this side so far */
	bool eof;	  /* nothing more is read from this side */
	bool shut;	  /* we shut down writing to it */
};

struct pvx_stream_ops {
	/* What bytes read from side `from` become. `in` holds them (the side's buffer, or the
	 * read buffer itself when nothing was pending: parsed in place); the callback consumes
	 * from its front with pvx_buf_eat and appends results to the other side's out (or to its
	 * own side's out, for an answer of ours). What it leaves is kept for the next call.
	 * NULL: the bytes go to the other side unchanged. Returns 0, or -errno to close. */
	int (*process[2])(struct pvx_stream *s, int from, struct pvx_buf *in);
	/* Optional: side's input ended (its bytes were processed). */
	void (*on_eof)(struct pvx_stream *s, int side);
	/* Optional: after the connection is set up / before its memory goes. */
	void (*on_start)(struct pvx_stream *s);
	void (*on_free)(struct pvx_stream *s);
	/* Optional: connects to the provider (default: through the link's cached O_PATH fd). */
	int (*connect)(struct pvx_stream_link *sl, int *fd);
	size_t priv_size;   /* per-connection plugin state at s->priv (zeroed) */
	size_t limit;	    /* per-direction buffer cap */
	size_t read_chunk;  /* bytes per read */
	bool fds;	    /* carry SCM_RIGHTS */
	bool eof_closes[2]; /* that side's end closes the connection once what it sent is out;
			       otherwise the other side gets a half-close (SHUT_WR) */
};

struct pvx_stream {
	const struct pvx_stream_ops *ops;
	struct pvx_stream_link *sl;
	struct pvx_stream *prev, *next;
	struct pvx_stream_side side[2];
	void *priv;
	int handles;
	bool closing, detached;
};

/* A link served by streams: the listener in the consumer, the provider's O_PATH fd, the live
 * connections, and the plugin's own link state (opaque). */
struct pvx_stream_link {
	struct pvx_link *l;
	const struct pvx_stream_ops *ops;
	void *opaque; /* the plugin's link state (zeroed, allocated with this) */
	pid_t provider_pid;
	int provider; /* O_PATH of the provider socket (re-resolved when it was re-created) */
	struct pvx_listener *ls;
	struct pvx_stream *conns;
	size_t n_conns;
};

/* A plugin's link_add for a stream link: allocates the stream link with `extra` zeroed bytes of
 * plugin state at sl->opaque, opens the provider's socket in its root (-ENOENT etc. while it is
 * not there: the link is pending), injects the listening socket at the link's target and sets
 * l->priv. provider_pid may differ from the link's (the hosted bus). Nothing is accepted before
 * the loop runs again, so the caller may still fill its state in. */
int pvx_stream_link_add(struct pvx_link *l, pid_t provider_pid, const struct pvx_stream_ops *ops,
			size_t extra, struct pv_error *err);
/* A plugin's link_remove / link_conns for a stream link: removes the socket from the consumer,
 * closes every live connection, frees l->priv. */
void pvx_stream_link_remove(struct pvx_link *l);
size_t pvx_stream_link_conns(const struct pvx_link *l);

/* The side stops being read (as at its end of input); the half-close/close rules apply. */
void pvx_stream_finish(struct pvx_stream *s, int side);
void pvx_stream_close(struct pvx_stream *s);

#endif
