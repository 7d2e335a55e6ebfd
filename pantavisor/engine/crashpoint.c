/* crashpoint.c: the PV_TEST_CRASH_AT hook: a crash-injection test names one point of the update
 * sequence and the engine dies there exactly as a power cut or kill -9 would leave it. */
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
	pv_log(PV_LOG_WARN, "crashpoint", "PV_TEST_CRASH_AT=%s: killing the engine here", name);
	/* once per boot: the respawned engine inherits the environment but must recover, not
	 * crash again at the same point */
	unsetenv("PV_TEST_CRASH_AT");
	sync();
	kill(getpid(), SIGKILL);
}
