/* crashpoint.h: test hook for crash-injection tests: when the environment variable
 * PV_TEST_CRASH_AT names a point, the engine logs it and kills itself with SIGKILL there; with
 * PV_TEST_CRASH_MARK=<file> only the first engine to create that file does (once per test). */
#ifndef PV_ENGINE_CRASHPOINT_H
#define PV_ENGINE_CRASHPOINT_H

/* Update-sequence points (docs/updates.md lists them): step-stored, run-start, install-objects,
 * install-done, try-set, inprogress, hot-stopped, hot-switched, testing, commit-env, done,
 * rollback. A point name not matching the variable is a no-op costing one strcmp. */
void pv_crashpoint(const char *name);

#endif
