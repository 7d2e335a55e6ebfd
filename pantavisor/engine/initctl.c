/* initctl.c: the engine's end of the initctl channel (pantavisor/initctl.h): one fixed-size
 * request, one reply, over the SOCK_SEQPACKET fd init passed as fd 3. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "initctl.h"

#define INITCTL_TIMEOUT_MS 5000

bool pv_initctl_present(int fd)
{
	struct stat st;
	int type = 0;
	socklen_t l = sizeof(type);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_SEQPACKET;
}

int pv_initctl_request_reply(int fd, unsigned op, const char *name, struct pv_initctl_reply *rep)
{
	struct pv_initctl_req req;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	memset(&req, 0, sizeof(req));
	memset(rep, 0, sizeof(*rep));
	req.op = op;
	if (name)
		strncpy(req.name, name, sizeof(req.name) - 1);
	if (send(fd, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		return -errno;
	int r = poll(&p, 1, INITCTL_TIMEOUT_MS);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	ssize_t n = recv(fd, rep, sizeof(*rep), 0);
	if (n < 0)
		return -errno;
	if (n < (ssize_t)sizeof(rep->status))
		return -EPROTO;
	return rep->status;
}

int pv_initctl_request(int fd, unsigned op, const char *name)
{
	struct pv_initctl_reply rep;
	return pv_initctl_request_reply(fd, op, name, &rep);
}
