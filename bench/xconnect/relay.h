/* relay.h: the floor baseline proxy of bench/xconnect (relay.c). */
#ifndef PVX_BENCH_RELAY_H
#define PVX_BENCH_RELAY_H

/* Listens at listen_path; each connection is relayed to a new connection to target. Runs until
 * killed; returns 1 when it cannot start. */
int pvx_bench_relay(const char *listen_path, const char *target);

#endif
