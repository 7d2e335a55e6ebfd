/* crashpoint.c: the PV_TEST_CRASH_AT hook: a crash-injection test names one point of the update
 * sequence and the engine dies there exactly as a power cut or kill -9 would leave it. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashpoint.h"
#include "engine.h"

void pv_crashpoint(const char *name)
{
	const char *at = getenv("PV_TEST_CRASH_AT");
	if (!at || !*at || strcmp(at, name) != 0)
		return;
	/* init respawns the engine with init's own environment, so unsetenv() here would not
	 * stop the next engine from dying at the same point during its recovery: with
	 * PV_TEST_CRASH_MARK set, the crash fires only for whoever creates that file first */
	const char *mark = getenv("PV_TEST_CRASH_MARK");
	if (mark && *mark) {
		int fd = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return;
		close(fd);
	}
	pv_log(PV_LOG_WARN, "crashpoint", "PV_TEST_CRASH_AT=%s: killing the engine here", name);
	sync();
	kill(getpid(), SIGKILL);
}
