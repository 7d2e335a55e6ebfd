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
 * attributed to the next one. Sockets, buffers, backpressure and teardown are
 * the stream core's (stream.c). */
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
#include "stream.h"

#define LINE_MAX_LEN (16u * 1024)  /* one SASL line */
#define BUF_LIMIT    (256u * 1024) /* stop reading a side while this much waits to be written */
#define READ_CHUNK   (64u * 1024)
#define NOBODY	     65534

/* The link's own state (the stream link's opaque). */
struct dlink {
	uid_t uid;
	gid_t gid;
	const char *iface; /* NULL: no filtering */
	uint64_t denied;
};

enum cstate { C_NUL, C_AUTH, C_MSG };

/* Per connection (the stream's priv). */
struct dconn {
	enum cstate cst;
	bool p_msgs;  /* the provider side is past SASL */
	char *unique; /* the consumer's unique name (from the Hello reply) */
	uint32_t serial;
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

static int connect_as(struct pvx_stream_link *sl, int *fd)
{
	const struct dlink *dl = sl->opaque;
	if (dl->uid == 0)
		return pvx_plumb_connect_at(sl->provider, fd);
	struct as_uid a = {sl->provider, dl->uid, dl->gid, -1, 0};
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
static int deny_reply(struct pvx_stream *s, DBusMessage *msg)
{
	struct dconn *c = s->priv;
	const struct dlink *dl = s->sl->opaque;
	char text[512];
	snprintf(text, sizeof(text), "pv-xconnect: link %s/%s allows interface %s only, not %s",
		 s->sl->l->spec.consumer, s->sl->l->spec.name, dl->iface,
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
		rc = pvx_buf_add(&s->side[PVX_CONSUMER].out, out, (size_t)len);
	dbus_free(out);
	dbus_message_unref(e);
	return rc;
}

/* ---- consumer -> provider ---- */

static int auth_line(struct pvx_stream *s, const char *ln, size_t n)
{
	struct dconn *c = s->priv;
	const struct dlink *dl = s->sl->opaque;
	struct pvx_buf *pout = &s->side[PVX_PROVIDER].out;
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
			return pvx_buf_add(&s->side[PVX_CONSUMER].out, rej, sizeof(rej) - 1);
		}
		/* whatever identity the consumer claimed, the bus hears the role's */
		char id[16], line[64];
		int il = snprintf(id, sizeof(id), "%u", (unsigned)dl->uid);
		int k = snprintf(line, sizeof(line), "AUTH EXTERNAL ");
		for (int i = 0; i < il; i++)
			k += snprintf(line + k, sizeof(line) - (size_t)k, "%02x",
				      (unsigned char)id[i]);
		k += snprintf(line + k, sizeof(line) - (size_t)k, "\r\n");
		return pvx_buf_add(pout, line, (size_t)k);
	}
	/* Our AUTH carries its initial response, so the bus never asks for DATA: a DATA line
	 * (sd-bus sends "AUTH EXTERNAL\r\nDATA\r\n" in one go) would only earn an ERROR that the
	 * client would take as the answer to its next command. */
	if (n >= 4 && !memcmp(ln, "DATA", 4) && (n == 4 || ln[4] == ' '))
		return 0;
	int rc = pvx_buf_add(pout, ln, n);
	if (!rc)
		rc = pvx_buf_add(pout, "\r\n", 2);
	if (!rc && n == 5 && !memcmp(ln, "BEGIN", 5))
		c->cst = C_MSG;
	return rc;
}

/* Consumes what it can of the consumer's bytes. <0: close the connection. */
static int consumer_process(struct pvx_stream *s, int from, struct pvx_buf *in)
{
	struct dconn *c = s->priv;
	struct dlink *dl = s->sl->opaque;
	struct pvx_stream_side *cs = &s->side[from];
	struct pvx_stream_side *ps = &s->side[PVX_PROVIDER];
	while (in->len) {
		const char *d = pvx_buf_data(in);
		if (c->cst == C_NUL) {
			if (d[0] != '\0')
				return -EPROTO;
			pvx_buf_eat(in, 1);
			if (pvx_buf_add(&ps->out, "", 1) < 0)
				return -ENOMEM;
			c->cst = C_AUTH;
			continue;
		}
		if (c->cst == C_AUTH) {
			char *e = memmem(d, in->len, "\r\n", 2);
			if (!e)
				return in->len < LINE_MAX_LEN ? 0 : -EPROTO;
			size_t n = (size_t)(e - d);
			int rc = auth_line(s, d, n);
			if (rc < 0)
				return rc;
			pvx_buf_eat(in, n + 2);
			continue;
		}
		if (in->len < 16)
			return 0;
		int need = dbus_message_demarshal_bytes_needed(d, (int)in->len);
		if (need < 0)
			return -EPROTO;
		cs->need = (size_t)need;
		if (need == 0 || (size_t)need > in->len)
			return 0;
		size_t len = (size_t)need;
		long nfds = -1;
		DBusMessage *msg = dl->iface ? parse_msg(d, len, &nfds) : NULL;
		if (dl->iface && !msg)
			return -EINVAL;
		bool pass = true;
		if (msg) {
			int t = dbus_message_get_type(msg);
			pass =
			    (t != DBUS_MESSAGE_TYPE_METHOD_CALL && t != DBUS_MESSAGE_TYPE_SIGNAL) ||
			    iface_allowed(dl, msg);
		}
		if (msg && (size_t)nfds > cs->in_fds.n) {
			dbus_message_unref(msg);
			return 0; /* its fds have not arrived yet */
		}
		int rc = 0;
		if (pass) {
			rc = pvx_buf_add(&ps->out, d, len);
			if (!rc)
				rc = pvx_fdq_move(&cs->in_fds, &ps->out_fds,
						  msg ? (size_t)nfds : cs->in_fds.n);
		} else {
			dl->denied++;
			pvx_log(PVX_INFO, "link %s/%s: denied %s %s.%s to %s (only %s allowed)",
				s->sl->l->spec.consumer, s->sl->l->spec.name,
				dbus_message_get_type(msg) == DBUS_MESSAGE_TYPE_SIGNAL ? "signal"
										       : "call",
				dbus_message_get_interface(msg) ? dbus_message_get_interface(msg)
								: "(no interface)",
				dbus_message_get_member(msg),
				dbus_message_get_destination(msg)
				    ? dbus_message_get_destination(msg)
				    : "(none)",
				dl->iface);
			pvx_fdq_move(&cs->in_fds, NULL, (size_t)nfds);
			if (dbus_message_get_type(msg) == DBUS_MESSAGE_TYPE_METHOD_CALL &&
			    !dbus_message_get_no_reply(msg))
				rc = deny_reply(s, msg);
		}
		if (msg)
			dbus_message_unref(msg);
		if (rc < 0)
			return rc;
		pvx_buf_eat(in, len);
		cs->need = 0;
	}
	return 0;
}

/* ---- provider -> consumer: framed so that our replies go in between messages
 * ---- */

static int provider_process(struct pvx_stream *s, int from, struct pvx_buf *in)
{
	struct dconn *c = s->priv;
	struct pvx_stream_side *ps = &s->side[from];
	struct pvx_buf *cout = &s->side[PVX_CONSUMER].out;
	/* the bus's fds go on with the bytes that follow (it sends them with their message) */
	int rc = pvx_fdq_move(&ps->in_fds, &s->side[PVX_CONSUMER].out_fds, ps->in_fds.n);
	if (rc < 0)
		return rc;
	while (in->len) {
		const char *pd = pvx_buf_data(in);
		if (!c->p_msgs) {
			if (pd[0] == 'l' || pd[0] == 'B') {
				c->p_msgs = true; /* SASL replies never start so */
				continue;
			}
			char *e = memmem(pd, in->len, "\r\n", 2);
			if (!e)
				return in->len < LINE_MAX_LEN ? 0 : -EBADMSG;
			size_t n = (size_t)(e - pd) + 2;
			if (pvx_buf_add(cout, pd, n) < 0)
				return -ENOMEM;
			pvx_buf_eat(in, n);
			continue;
		}
		if (in->len < 16)
			return 0;
		int need = dbus_message_demarshal_bytes_needed(pd, (int)in->len);
		if (need < 0)
			return -EBADMSG;
		ps->need = (size_t)need;
		if (need == 0 || (size_t)need > in->len)
			return 0;
		if (!c->unique) {
			/* the bus's first message is the Hello reply, addressed to the new name
			 */
			long nfds;
			DBusMessage *m = parse_msg(pd, (size_t)need, &nfds);
			const char *d = m ? dbus_message_get_destination(m) : NULL;
			if (d)
				c->unique = strdup(d);
			if (m)
				dbus_message_unref(m);
		}
		if (pvx_buf_add(cout, pd, (size_t)need) < 0)
			return -ENOMEM;
		pvx_buf_eat(in, (size_t)need);
		ps->need = 0;
	}
	return 0;
}

/* ---- the connection ---- */

static void on_start(struct pvx_stream *s)
{
	struct dconn *c = s->priv;
	c->serial = 0x80000000u; /* ours, far from the bus's */
}

static void on_free(struct pvx_stream *s)
{
	struct dconn *c = s->priv;
	free(c->unique);
}

/* A bus connection is over when either side ends (after what it sent is delivered); fds
 * travel both ways. */
static const struct pvx_stream_ops dbus_ops = {
    .process = {consumer_process, provider_process},
    .on_start = on_start,
    .on_free = on_free,
    .connect = connect_as,
    .priv_size = sizeof(struct dconn),
    .limit = BUF_LIMIT,
    .read_chunk = READ_CHUNK,
    .fds = true,
    .eof_closes = {true, true},
};

static int dbus_add(struct pvx_link *l, struct pv_error *err)
{
	/* The hosted bus (provider "_pv_", no pid) lives in our own root and uses our passwd. */
	pid_t ppid = l->spec.provider_pid;
	if (ppid <= 0 && l->spec.provider && !strcmp(l->spec.provider, PV_GRAPH_PROVIDER_HOSTED))
		ppid = getpid();
	int rc = pvx_stream_link_add(l, ppid, &dbus_ops, sizeof(struct dlink), err);
	if (rc < 0)
		return rc;
	/* filled in before the loop runs again, so before any accept needs it */
	struct dlink *dl = ((struct pvx_stream_link *)l->priv)->opaque;
	const char *iface = l->spec.interface;
	dl->iface = iface && *iface && strcmp(iface, l->spec.type ? l->spec.type : "dbus") &&
			    strcmp(iface, "dbus")
			? iface
			: NULL;
	role_ids(ppid, l->spec.role, &dl->uid, &dl->gid);
	pvx_log(PVX_INFO, "link %s/%s: role %s -> uid %u, interface %s", l->spec.consumer,
		l->spec.name, l->spec.role ? l->spec.role : "(none)", (unsigned)dl->uid,
		dl->iface ? dl->iface : "(any)");
	return 0;
}

const struct pvx_plugin pvx_dbus = {
    .type = "dbus",
    .link_add = dbus_add,
    .link_remove = pvx_stream_link_remove,
    .link_conns = pvx_stream_link_conns,
};
