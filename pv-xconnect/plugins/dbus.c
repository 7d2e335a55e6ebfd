/* plugins/dbus.c: the `dbus` link type: a D-Bus proxy that authenticates every
 * consumer to the provider's bus as the uid of the link's role and, when the
 * link names an interface, refuses (AccessDenied) method calls and signals to
 * other interfaces.
 *
 * Identity: the bus trusts SO_PEERCRED, which the kernel takes from the
 * connecting thread's credentials, so a rewritten `AUTH EXTERNAL <hex uid>`
 * alone would be rejected unless our socket really is that uid. We connect to
 * the provider from a short-lived thread whose own (per-thread, raw syscall)
 * euid/egid are the role's, and send our own `AUTH EXTERNAL` for that uid; the
 * consumer's AUTH line is never forwarded. SASL is handled on a byte stream
 * (AUTH, BEGIN and the first message may come in one read). Messages are framed
 * with dbus_message_demarshal_bytes_needed and their headers read with
 * dbus_message_demarshal; the original bytes are forwarded, never
 * re-marshalled. fds (NEGOTIATE_UNIX_FD) travel with recvmsg/sendmsg and are
 * handed on per message, so a refused message's fds are closed rather than
 * attributed to the next one. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include "plugins/plugin.h"

#define LINE_MAX_LEN (16u * 1024)  /* one SASL line */
#define BUF_LIMIT    (256u * 1024) /* stop reading a side while this much waits to be written */
#define READ_CHUNK   (64u * 1024)
#define FDS_PER_READ 64
#define FDS_MAX	     1024 /* fds queued per direction before the connection is dropped */
#define NOBODY	     65534

struct buf {
	char *d;
	size_t len, cap;
};

struct fdq {
	int *v;
	size_t n, cap;
};

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *d = realloc(b->d, cap);
		if (!d)
			return -ENOMEM;
		b->d = d;
		b->cap = cap;
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_eat(struct buf *b, size_t n)
{
	if (!n)
		return;
	memmove(b->d, b->d + n, b->len - n);
	b->len -= n;
}

static int fdq_push(struct fdq *q, int fd)
{
	if (q->n >= FDS_MAX)
		return -EMFILE;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		int *v = realloc(q->v, cap * sizeof(int));
		if (!v)
			return -ENOMEM;
		q->v = v;
		q->cap = cap;
	}
	q->v[q->n++] = fd;
	return 0;
}

/* Moves the first n fds of from to the end of to (or closes them when to is
 * NULL). */
static int fdq_move(struct fdq *from, struct fdq *to, size_t n)
{
	int rc = 0;
	size_t i = 0;
	for (; i < n && rc == 0; i++) {
		if (!to)
			close(from->v[i]);
		else if ((rc = fdq_push(to, from->v[i])) < 0)
			break;
	}
	/* what moved (or was closed) leaves from, so no fd is owned twice */
	if (i)
		memmove(from->v, from->v + i, (from->n - i) * sizeof(int));
	from->n -= i;
	return rc;
}

static void fdq_free(struct fdq *q)
{
	for (size_t i = 0; i < q->n; i++)
		close(q->v[i]);
	free(q->v);
}

struct dconn;
struct dlink {
	struct pvx_link *l;
	int provider; /* O_PATH of the provider's bus socket */
	uid_t uid;
	gid_t gid;
	const char *iface; /* NULL: no filtering */
	struct pvx_listener *ls;
	struct dconn *conns;
	size_t n_conns;
	uint64_t denied;
};

enum cstate { C_NUL, C_AUTH, C_MSG };

struct dconn {
	struct dlink *dl;
	struct dconn *prev, *next;
	int fd[2]; /* 0 consumer, 1 provider */
	uv_poll_t poll[2];
	int ev[2];
	int handles;
	struct buf cin, pout; /* consumer bytes not processed / bytes for the provider */
	struct buf pin, cout; /* provider bytes not framed / bytes for the consumer */
	struct fdq cin_fds, pout_fds, cout_fds;
	enum cstate cst;
	bool p_msgs;  /* the provider side is past SASL */
	size_t cneed; /* size of the consumer message being collected (0: unknown) */
	size_t pneed; /* same for the provider side */
	char *unique; /* the consumer's unique name (from the Hello reply) */
	uint32_t serial;
	bool c_eof, p_eof, closing, detached;
};

/* ---- identity ---- */

/* uid/gid of role: numeric as is, else looked up in the provider's /etc/passwd;
 * unknown 65534. */
static void role_ids(pid_t ppid, const char *role, uid_t *uid, gid_t *gid)
{
	*uid = *gid = NOBODY;
	if (!role || !*role)
		return;
	char *end;
	errno = 0;
	unsigned long n = strtoul(role, &end, 10);
	if (isdigit((unsigned char)role[0]) && !*end && !errno && n < 0xffffffffUL) {
		*uid = *gid = (uid_t)n;
		return;
	}
	int pfd;
	if (pvx_plumb_open_in_root(ppid, "/etc/passwd", &pfd, NULL) < 0)
		return;
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", pfd);
	FILE *f = fopen(p, "re");
	close(pfd);
	if (!f)
		return;
	char line[1024];
	size_t rl = strlen(role);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, role, rl) || line[rl] != ':')
			continue;
		/* name:pw:uid:gid:... */
		char *s = strchr(line + rl + 1, ':');
		if (!s)
			break;
		unsigned long u = strtoul(s + 1, &end, 10);
		if (end == s + 1 || *end != ':')
			break;
		unsigned long g = strtoul(end + 1, &s, 10);
		if (s == end + 1 || *s != ':')
			break;
		*uid = (uid_t)u;
		*gid = (gid_t)g;
		break;
	}
	fclose(f);
}

struct as_uid {
	int pathfd;
	uid_t uid;
	gid_t gid;
	int fd;
	int rc;
};

/* Runs in its own thread: raw syscalls change only this thread's credentials
 * (glibc's wrappers would change every thread of the daemon), so the socket's
 * SO_PEERCRED is the role's. */
static void *connect_as_thread(void *arg)
{
	struct as_uid *a = arg;
	if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, -1, a->gid, -1) < 0 ||
	    syscall(SYS_setresuid, -1, a->uid, -1) < 0) {
		a->rc = -errno;
		return NULL;
	}
	/* /proc/self/fd of our own process stays reachable with the dropped
	 * credentials */
	a->rc = pvx_plumb_connect_at(a->pathfd, &a->fd);
	return NULL;
}

static int connect_as(struct dlink *dl, int *fd)
{
	if (dl->uid == 0)
		return pvx_plumb_connect_at(dl->provider, fd);
	struct as_uid a = {dl->provider, dl->uid, dl->gid, -1, 0};
	pthread_t t;
	int rc = pthread_create(&t, NULL, connect_as_thread, &a);
	if (rc)
		return -rc;
	pthread_join(t, NULL);
	if (a.rc < 0)
		return a.rc;
	*fd = a.fd;
	return 0;
}

/* ---- message headers ---- */

static size_t align_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* libdbus refuses to demarshal a message whose UNIX_FDS header promises fds it
 * was not given. For reading the headers only, a scratch copy gets that field
 * zeroed: this walks the header field array just far enough to find it (codes
 * and signatures as the spec fixes them); all validation is still libdbus's.
 * Returns the promised count, or -1 if the layout is odd. */
static long fds_zero(char *m, size_t len)
{
	bool le = m[0] == 'l';
	uint32_t alen;
	memcpy(&alen, m + 12, 4);
	if (!le)
		alen = __builtin_bswap32(alen);
	size_t p = 16, end = 16 + (size_t)alen;
	if (end > len)
		return -1;
	long nfds = 0;
	while (p < end) {
		p = align_up(p, 8);
		if (p + 3 > end)
			return -1;
		unsigned code = (unsigned char)m[p];
		if (m[p + 1] != 1 || m[p + 3] != 0)
			return -1;
		char sig = m[p + 2];
		p += 4;
		uint32_t v;
		switch (sig) {
		case 's':
		case 'o':
			p = align_up(p, 4);
			if (p + 4 > end)
				return -1;
			memcpy(&v, m + p, 4);
			if (!le)
				v = __builtin_bswap32(v);
			p += 4 + (size_t)v + 1;
			break;
		case 'g':
			if (p >= end)
				return -1;
			p += 1 + (unsigned char)m[p] + 1;
			break;
		case 'u':
			p = align_up(p, 4);
			if (p + 4 > end)
				return -1;
			if (code == DBUS_HEADER_FIELD_UNIX_FDS) {
				memcpy(&v, m + p, 4);
				if (!le)
					v = __builtin_bswap32(v);
				nfds = (long)v;
				memset(m + p, 0, 4);
			}
			p += 4;
			break;
		default:
			return -1;
		}
	}
	return p == end ? nfds : -1;
}

/* Headers of the complete message m (libdbus-validated), with its fd count.
 * NULL if invalid. */
static DBusMessage *parse_msg(const char *m, size_t len, long *nfds)
{
	char *copy = malloc(len);
	if (!copy)
		return NULL;
	memcpy(copy, m, len);
	*nfds = fds_zero(copy, len);
	DBusMessage *msg = NULL;
	if (*nfds >= 0) {
		DBusError e;
		dbus_error_init(&e);
		msg = dbus_message_demarshal(copy, (int)len, &e);
		dbus_error_free(&e);
	}
	free(copy);
	return msg;
}

static bool iface_allowed(const struct dlink *dl, DBusMessage *msg)
{
	static const char *const basics[] = {DBUS_INTERFACE_DBUS, DBUS_INTERFACE_INTROSPECTABLE,
					     DBUS_INTERFACE_PEER, DBUS_INTERFACE_PROPERTIES, NULL};
	const char *iface = dbus_message_get_interface(msg);
	if (!dl->iface)
		return true;
	/* a call without INTERFACE may be dispatched by member name to any interface of the
	 * service (libdbus matches it): only the bus driver itself may be called that way */
	if (!iface) {
		const char *dest = dbus_message_get_destination(msg);
		return dest && !strcmp(dest, DBUS_SERVICE_DBUS);
	}
	if (!strcmp(iface, dl->iface))
		return true;
	for (size_t i = 0; basics[i]; i++)
		if (!strcmp(iface, basics[i]))
			return true;
	return false;
}

/* Queues our AccessDenied reply to msg for the consumer (at a message boundary
 * of cout). */
static int deny_reply(struct dconn *c, DBusMessage *msg)
{
	char text[512];
	snprintf(text, sizeof(text), "pv-xconnect: link %s/%s allows interface %s only, not %s",
		 c->dl->l->spec.consumer, c->dl->l->spec.name, c->dl->iface,
		 dbus_message_get_interface(msg) ? dbus_message_get_interface(msg)
						 : "a call without interface");
	DBusMessage *e = dbus_message_new_error(msg, DBUS_ERROR_ACCESS_DENIED, text);
	if (!e)
		return -ENOMEM;
	int rc = 0;
	char *out = NULL;
	int len = 0;
	dbus_message_set_sender(e, DBUS_SERVICE_DBUS);
	if (c->unique && !dbus_message_set_destination(e, c->unique))
		rc = -ENOMEM;
	dbus_message_set_serial(e, c->serial++);
	if (!rc && !dbus_message_marshal(e, &out, &len))
		rc = -ENOMEM;
	if (!rc)
		rc = buf_add(&c->cout, out, (size_t)len);
	dbus_free(out);
	dbus_message_unref(e);
	return rc;
}

/* ---- consumer -> provider ---- */

static int auth_line(struct dconn *c, const char *ln, size_t n)
{
	if (n >= 4 && !memcmp(ln, "AUTH", 4) && (n == 4 || ln[4] == ' ')) {
		const char *mech = ln + 4;
		while (mech < ln + n && *mech == ' ')
			mech++;
		size_t ml = 0;
		while (mech + ml < ln + n && mech[ml] != ' ')
			ml++;
		if (ml != 8 || memcmp(mech, "EXTERNAL", 8)) {
			/* only EXTERNAL (which we answer for) is offered */
			static const char rej[] = "REJECTED EXTERNAL\r\n";
			return buf_add(&c->cout, rej, sizeof(rej) - 1);
		}
		/* whatever identity the consumer claimed, the bus hears the role's */
		char id[16], line[64];
		int il = snprintf(id, sizeof(id), "%u", (unsigned)c->dl->uid);
		int k = snprintf(line, sizeof(line), "AUTH EXTERNAL ");
		for (int i = 0; i < il; i++)
			k += snprintf(line + k, sizeof(line) - (size_t)k, "%02x",
				      (unsigned char)id[i]);
		k += snprintf(line + k, sizeof(line) - (size_t)k, "\r\n");
		return buf_add(&c->pout, line, (size_t)k);
	}
	/* Our AUTH carries its initial response, so the bus never asks for DATA: a DATA line
	 * (sd-bus sends "AUTH EXTERNAL\r\nDATA\r\n" in one go) would only earn an ERROR that the
	 * client would take as the answer to its next command. */
	if (n >= 4 && !memcmp(ln, "DATA", 4) && (n == 4 || ln[4] == ' '))
		return 0;
	int rc = buf_add(&c->pout, ln, n);
	if (!rc)
		rc = buf_add(&c->pout, "\r\n", 2);
	if (!rc && n == 5 && !memcmp(ln, "BEGIN", 5))
		c->cst = C_MSG;
	return rc;
}

/* Consumes what it can of cin. <0: close the connection. */
static int consumer_process(struct dconn *c)
{
	struct dlink *dl = c->dl;
	while (c->cin.len) {
		if (c->cst == C_NUL) {
			if (c->cin.d[0] != '\0')
				return -EPROTO;
			buf_eat(&c->cin, 1);
			if (buf_add(&c->pout, "", 1) < 0)
				return -ENOMEM;
			c->cst = C_AUTH;
			continue;
		}
		if (c->cst == C_AUTH) {
			char *e = memmem(c->cin.d, c->cin.len, "\r\n", 2);
			if (!e)
				return c->cin.len < LINE_MAX_LEN ? 0 : -EPROTO;
			size_t n = (size_t)(e - c->cin.d);
			int rc = auth_line(c, c->cin.d, n);
			if (rc < 0)
				return rc;
			buf_eat(&c->cin, n + 2);
			continue;
		}
		if (c->cin.len < 16)
			return 0;
		int need = dbus_message_demarshal_bytes_needed(c->cin.d, (int)c->cin.len);
		if (need < 0)
			return -EPROTO;
		c->cneed = (size_t)need;
		if (need == 0 || (size_t)need > c->cin.len)
			return 0;
		size_t len = (size_t)need;
		long nfds = -1;
		DBusMessage *msg = dl->iface ? parse_msg(c->cin.d, len, &nfds) : NULL;
		if (dl->iface && !msg)
			return -EINVAL;
		bool pass = true;
		if (msg) {
			int t = dbus_message_get_type(msg);
			pass =
			    (t != DBUS_MESSAGE_TYPE_METHOD_CALL && t != DBUS_MESSAGE_TYPE_SIGNAL) ||
			    iface_allowed(dl, msg);
		}
		if (msg && (size_t)nfds > c->cin_fds.n) {
			dbus_message_unref(msg);
			return 0; /* its fds have not arrived yet */
		}
		int rc = 0;
		if (pass) {
			rc = buf_add(&c->pout, c->cin.d, len);
			if (!rc)
				rc = fdq_move(&c->cin_fds, &c->pout_fds,
					      msg ? (size_t)nfds : c->cin_fds.n);
		} else {
			dl->denied++;
			pvx_log(PVX_INFO, "link %s/%s: denied %s %s.%s to %s (only %s allowed)",
				dl->l->spec.consumer, dl->l->spec.name,
				dbus_message_get_type(msg) == DBUS_MESSAGE_TYPE_SIGNAL ? "signal"
										       : "call",
				dbus_message_get_interface(msg) ? dbus_message_get_interface(msg)
								: "(no interface)",
				dbus_message_get_member(msg),
				dbus_message_get_destination(msg)
				    ? dbus_message_get_destination(msg)
				    : "(none)",
				dl->iface);
			fdq_move(&c->cin_fds, NULL, (size_t)nfds);
			if (dbus_message_get_type(msg) == DBUS_MESSAGE_TYPE_METHOD_CALL &&
			    !dbus_message_get_no_reply(msg))
				rc = deny_reply(c, msg);
		}
		if (msg)
			dbus_message_unref(msg);
		if (rc < 0)
			return rc;
		buf_eat(&c->cin, len);
		c->cneed = 0;
	}
	return 0;
}

/* ---- provider -> consumer: framed so that our replies go in between messages
 * ---- */

static int provider_process(struct dconn *c)
{
	while (c->pin.len) {
		if (!c->p_msgs) {
			if (c->pin.d[0] == 'l' || c->pin.d[0] == 'B') {
				c->p_msgs = true; /* SASL replies never start so */
				continue;
			}
			char *e = memmem(c->pin.d, c->pin.len, "\r\n", 2);
			if (!e)
				return c->pin.len < LINE_MAX_LEN ? 0 : -EBADMSG;
			size_t n = (size_t)(e - c->pin.d) + 2;
			if (buf_add(&c->cout, c->pin.d, n) < 0)
				return -ENOMEM;
			buf_eat(&c->pin, n);
			continue;
		}
		if (c->pin.len < 16)
			return 0;
		int need = dbus_message_demarshal_bytes_needed(c->pin.d, (int)c->pin.len);
		if (need < 0)
			return -EBADMSG;
		c->pneed = (size_t)need;
		if (need == 0 || (size_t)need > c->pin.len)
			return 0;
		if (!c->unique) {
			/* the bus's first message is the Hello reply, addressed to the new name
			 */
			long nfds;
			DBusMessage *m = parse_msg(c->pin.d, (size_t)need, &nfds);
			const char *d = m ? dbus_message_get_destination(m) : NULL;
			if (d)
				c->unique = strdup(d);
			if (m)
				dbus_message_unref(m);
		}
		if (buf_add(&c->cout, c->pin.d, (size_t)need) < 0)
			return -ENOMEM;
		buf_eat(&c->pin, (size_t)need);
		c->pneed = 0;
	}
	return 0;
}

/* ---- sockets ---- */

static bool blocked(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* Reads once. 1 got bytes, 0 would block, -1 eof, <-1 error. */
static int fill(int fd, struct buf *b, struct fdq *q)
{
	char tmp[READ_CHUNK];
	union {
		char b[CMSG_SPACE(sizeof(int) * FDS_PER_READ)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {tmp, sizeof(tmp)};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = ctl.b,
			   .msg_controllen = sizeof(ctl.b)};
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return blocked(errno) ? 0 : -errno;
	int rc = 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(h);
		for (size_t i = 0; i < k; i++) {
			int one;
			memcpy(&one, fds + i, sizeof(int));
			if (rc == 0)
				rc = fdq_push(q, one);
			if (rc < 0)
				close(one);
		}
	}
	if (rc < 0 || (m.msg_flags & MSG_CTRUNC))
		return rc < 0 ? rc : -EMSGSIZE;
	if (n == 0)
		return -1;
	return buf_add(b, tmp, (size_t)n) < 0 ? -ENOMEM : 1;
}

/* Writes what the socket takes; queued fds ride on the first bytes that leave.
 */
static int flush(int fd, struct buf *b, struct fdq *q)
{
	while (b->len) {
		size_t nf = q->n < FDS_PER_READ ? q->n : FDS_PER_READ;
		union {
			char b[CMSG_SPACE(sizeof(int) * FDS_PER_READ)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {b->d, b->len};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
		if (nf) {
			/* one byte per batch of fds, so a second batch has bytes of its own */
			if (q->n > nf)
				iov.iov_len = 1;
			m.msg_control = ctl.b;
			m.msg_controllen = CMSG_SPACE(sizeof(int) * nf);
			struct cmsghdr *h = CMSG_FIRSTHDR(&m);
			h->cmsg_level = SOL_SOCKET;
			h->cmsg_type = SCM_RIGHTS;
			h->cmsg_len = CMSG_LEN(sizeof(int) * nf);
			memcpy(CMSG_DATA(h), q->v, sizeof(int) * nf);
		}
		ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return blocked(errno) ? 0 : -errno;
		if (nf)
			fdq_move(q, NULL, nf);
		buf_eat(b, (size_t)n);
	}
	return 0;
}

static void conn_poll_cb(uv_poll_t *h, int status, int events);

static void conn_handle_closed(uv_handle_t *h)
{
	struct dconn *c = h->data;
	if (--c->handles)
		return;
	close(c->fd[0]);
	close(c->fd[1]);
	free(c->cin.d);
	free(c->pout.d);
	free(c->pin.d);
	free(c->cout.d);
	fdq_free(&c->cin_fds);
	fdq_free(&c->pout_fds);
	fdq_free(&c->cout_fds);
	free(c->unique);
	free(c);
}

static void conn_unlink(struct dconn *c)
{
	if (c->detached)
		return;
	struct dlink *dl = c->dl;
	if (c->prev)
		c->prev->next = c->next;
	else
		dl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	dl->n_conns--;
	c->detached = true;
}

static void conn_close(struct dconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	conn_unlink(c);
	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&c->poll[i], conn_handle_closed);
}

/* The consumer may be read: its output is not backed up and a message being
 * collected may grow up to its own size (the bus caps that). */
static bool want_consumer(const struct dconn *c)
{
	return !c->c_eof && c->pout.len < BUF_LIMIT && c->cout.len < BUF_LIMIT &&
	       (c->cin.len < BUF_LIMIT || c->cin.len < c->cneed);
}

static bool want_provider(const struct dconn *c)
{
	return !c->p_eof && c->cout.len < BUF_LIMIT &&
	       (c->pin.len < BUF_LIMIT || c->pin.len < c->pneed);
}

/* rd: bit 0 the consumer is readable, bit 1 the provider is. */
static void conn_run(struct dconn *c, int rd)
{
	int rc = 0;
	for (int pass = 0; pass < 8 && !c->closing; pass++) {
		bool progress = false;
		if ((rd & 1) && want_consumer(c)) {
			rc = fill(c->fd[0], &c->cin, &c->cin_fds);
			if (rc == -1)
				c->c_eof = true;
			else if (rc < -1)
				goto fail;
			if (rc != 0)
				progress = true;
			if (rc == 1 && (rc = consumer_process(c)) < 0)
				goto fail;
		}
		if (c->pout.len) {
			size_t before = c->pout.len;
			if ((rc = flush(c->fd[1], &c->pout, &c->pout_fds)) < 0)
				goto fail;
			progress = progress || c->pout.len != before;
		}
		if ((rd & 2) && want_provider(c)) {
			rc = fill(c->fd[1], &c->pin, &c->cout_fds);
			if (rc == -1)
				c->p_eof = true;
			else if (rc < -1)
				goto fail;
			if (rc != 0)
				progress = true;
			if (rc == 1 && (rc = provider_process(c)) < 0)
				goto fail;
		}
		if (c->cout.len) {
			size_t before = c->cout.len;
			if ((rc = flush(c->fd[0], &c->cout, &c->cout_fds)) < 0)
				goto fail;
			progress = progress || c->cout.len != before;
		}
		if ((c->p_eof && !c->cout.len) || (c->c_eof && !c->pout.len)) {
			conn_close(c); /* one side ended and what it sent was delivered */
			return;
		}
		if (!progress)
			break;
		rd = 0; /* the level-triggered poll reports what is left to read */
	}
	int want[2] = {0, 0};
	if (want_consumer(c))
		want[0] |= UV_READABLE;
	if (c->cout.len)
		want[0] |= UV_WRITABLE;
	if (want_provider(c))
		want[1] |= UV_READABLE;
	if (c->pout.len)
		want[1] |= UV_WRITABLE;
	for (int i = 0; i < 2; i++)
		if (want[i] != c->ev[i]) {
			c->ev[i] = want[i];
			if (want[i])
				uv_poll_start(&c->poll[i], want[i], conn_poll_cb);
			else
				uv_poll_stop(&c->poll[i]);
		}
	return;
fail:
	/* a protocol violation or a dead socket ends this connection only */
	pvx_log(PVX_DEBUG, "link %s/%s: connection closed: %s", c->dl->l->spec.consumer,
		c->dl->l->spec.name, strerror(rc < -1 ? -rc : EPIPE));
	conn_close(c);
}

static void conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct dconn *c = h->data;
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	int side = h == &c->poll[0] ? 0 : 1;
	conn_run(c, (events & (UV_READABLE | UV_DISCONNECT)) ? 1 << side : 0);
}

static void dbus_accept(void *opaque, int cfd)
{
	struct dlink *dl = opaque;
	const struct pv_link *s = &dl->l->spec;
	int pfd;
	int rc = connect_as(dl, &pfd);
	if (rc < 0) {
		pvx_log(PVX_WARN, "link %s/%s: provider bus %s as uid %u: %s", s->consumer, s->name,
			s->socket, (unsigned)dl->uid, strerror(-rc));
		close(cfd);
		return;
	}
	int fl = fcntl(pfd, F_GETFL);
	if (fl < 0 || fcntl(pfd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(cfd);
		close(pfd);
		return;
	}
	struct dconn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		close(pfd);
		return;
	}
	c->dl = dl;
	c->fd[0] = cfd;
	c->fd[1] = pfd;
	c->serial = 0x80000000u; /* ours, far from the bus's */
	for (int i = 0; i < 2; i++) {
		uv_poll_init(dl->l->loop, &c->poll[i], c->fd[i]);
		c->poll[i].data = c;
		c->handles++;
	}
	c->next = dl->conns;
	if (dl->conns)
		dl->conns->prev = c;
	dl->conns = c;
	dl->n_conns++;
	conn_run(c, 3);
}

static int dbus_add(struct pvx_link *l, struct pv_error *err)
{
	struct dlink *dl = calloc(1, sizeof(*dl));
	if (!dl)
		return pv_error_set(err, -ENOMEM, "out of memory");
	dl->l = l;
	const char *iface = l->spec.interface;
	dl->iface = iface && *iface && strcmp(iface, l->spec.type ? l->spec.type : "dbus") &&
			    strcmp(iface, "dbus")
			? iface
			: NULL;
	/* The hosted bus (provider "_pv_", no pid) lives in our own root and uses our passwd. */
	pid_t ppid = l->spec.provider_pid;
	if (ppid <= 0 && l->spec.provider && !strcmp(l->spec.provider, PV_GRAPH_PROVIDER_HOSTED))
		ppid = getpid();
	int rc = pvx_plumb_open_in_root(ppid, l->spec.socket, &dl->provider, err);
	if (rc == 0) {
		role_ids(ppid, l->spec.role, &dl->uid, &dl->gid);
		pvx_log(PVX_INFO, "link %s/%s: role %s -> uid %u, interface %s", l->spec.consumer,
			l->spec.name, l->spec.role ? l->spec.role : "(none)", (unsigned)dl->uid,
			dl->iface ? dl->iface : "(any)");
		rc = pvx_listener_start(l, dbus_accept, dl, &dl->ls, err);
	}
	if (rc < 0) {
		if (dl->provider >= 0)
			close(dl->provider);
		free(dl);
		return rc;
	}
	l->priv = dl;
	return 0;
}

static void dbus_remove(struct pvx_link *l)
{
	struct dlink *dl = l->priv;
	if (!dl)
		return;
	pvx_listener_stop(dl->ls);
	while (dl->conns)
		conn_close(dl->conns);
	if (dl->provider >= 0)
		close(dl->provider);
	free(dl);
	l->priv = NULL;
}

static size_t dbus_conns(const struct pvx_link *l)
{
	const struct dlink *dl = l->priv;
	return dl ? dl->n_conns : 0;
}

const struct pvx_plugin pvx_dbus = {
    .type = "dbus",
    .link_add = dbus_add,
    .link_remove = dbus_remove,
    .link_conns = dbus_conns,
};
